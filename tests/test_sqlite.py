"""The quick start's embedded SQLite database: the API and the admin work on it too."""

import os
import re
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime

import pytest
from flask_migrate import upgrade

from app import create_app
from models import db

pytestmark = pytest.mark.sqlite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIL = {"from": "sender@example.com", "to": "rcpt@example.com", "subject": "Hello",
        "text": "Plain body"}


@pytest.fixture
def db_path(tmp_path):
    """Where the SQLite database file lives."""
    return tmp_path / "mail.db"


@pytest.fixture
def client(db_path):
    """A client of an app on a freshly migrated SQLite database."""
    application = create_app({"TESTING": True, "SECRET_KEY": "test",
                              "DATABASE_URL": f"sqlite:///{db_path}", "API_KEYS": "",
                              "ADMIN_PASSWORD": ""})
    with application.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
    yield application.test_client()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def stored(db_path, mail_id):
    """The row of ``mail_id``, read with sqlite3 directly rather than the app's session."""
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM email WHERE id = ?", (uuid.UUID(mail_id).hex,)
                            ).fetchone()


def error_fields(response, status):
    """The fields a JSON error with ``status`` names."""
    assert response.status_code == status, response.data
    body = response.get_json()
    assert body["success"] is False and body["message"]
    return [error["field"] for error in body["errors"]]


def test_form_post_is_stored_and_read_back(client, db_path):
    response = client.post("/mail", data="from=bcambel@gmail.com&to=bcambel@gmail.com"
                           "&subject=Hello&text=This email will be sent via a Mail gateway",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202
    mail_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/mail/{mail_id}"
    assert stored(db_path, mail_id)["status"] == "queued"
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["mail"] == "This email will be sent via a Mail gateway"
    assert body["result"] is None and body["attempts"] == 0


def test_json_post_and_timestamps(client, db_path):
    response = client.post("/mail", json={**MAIL, "cc": ["a@example.com", "b@example.com"],
                                          "html": "<p>Hi</p>"})
    assert response.status_code == 202
    mail_id = response.get_json()["id"]
    assert stored(db_path, mail_id)["cc"] == "a@example.com, b@example.com"
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["id"] == mail_id and body["cc"] == ["a@example.com", "b@example.com"]
    for key in ("created_at", "updated_at"):
        assert datetime.fromisoformat(body[key]).tzinfo is not None  # SQLite stores them naive


def test_errors(client):
    assert error_fields(client.post("/mail", json={**MAIL, "to": "nope"}), 400) == ["to"]
    assert "subject" in error_fields(client.post("/mail", json={**MAIL, "subject": 1}), 400)
    assert error_fields(client.post("/mail", data="{", content_type="application/json"),
                        400) == ["body"]
    assert error_fields(client.post("/mail", data="x", content_type="text/plain"), 415)
    error_fields(client.get(f"/mail/{uuid.uuid4()}"), 404)
    error_fields(client.get("/mail/nope"), 404)
    error_fields(client.delete("/mail"), 405)


def test_admin_lists_filters_and_details(client):
    mail_id = client.post("/mail", json={**MAIL, "subject": "Findable"}).get_json()["id"]
    assert "Findable" in client.get("/admin/email/?search=findable").get_data(as_text=True)
    page = client.get("/admin/email/?flt0_status_equals=failed").get_data(as_text=True)
    assert "Findable" not in page
    assert client.get("/admin/").status_code == 200
    details = client.get(f"/admin/email/details/?id={mail_id}")
    assert details.status_code == 200 and "Findable" in details.get_data(as_text=True)


def test_admin_retry(client, db_path):
    mail_id = client.post("/mail", json=MAIL).get_json()["id"]
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE email SET status = 'failed', attempts = 3 WHERE id = ?",
                     (uuid.UUID(mail_id).hex,))
    page = client.get("/admin/email/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/admin/email/action/", data={"action": "retry", "rowid": mail_id,
                                              "csrf_token": token})
    row = stored(db_path, mail_id)
    assert (row["status"], row["attempts"]) == ("queued", 0)
