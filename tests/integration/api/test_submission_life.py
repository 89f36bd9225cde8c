"""A submission's life: idempotency, scheduling, cancel and retry, listing, and richer messages."""

import base64
import contextlib
import io
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
import requests
from helpers import later, mail_rows, serving
from sqlalchemy.exc import DBAPIError

from app import create_app
from mailer.api import idempotency
from mailer.database import transaction
from mailer.queue import submit
from mailer.validation.mail import validate_mail

pytestmark = pytest.mark.committed


@pytest.fixture
def live(settings, app):
    """The app on a real loopback HTTP server with an API key; its base URL and headers."""
    application = create_app({**settings, "API_KEYS": "key-one,key-two"})
    with serving(application) as url:
        yield url, {"Authorization": "Bearer key-one"}


# --- A lost answer ------------------------------------------------------------------------------


def losing_the_first_answer(lost):
    """A ``begin`` for ``submit.enqueue_many`` whose first statement is committed but whose
    answer never arrives: the connection dies after the commit, as in a restart at that moment.
    """

    def begin(single_statement=False):
        @contextlib.contextmanager
        def block():
            with transaction(single_statement) as conn:
                yield conn
            if single_statement and not lost:
                lost.append(True)
                gone = psycopg2.OperationalError("server closed the connection unexpectedly")
                raise DBAPIError.instance(
                    None, None, gone, psycopg2.Error, connection_invalidated=True
                )

        return block()

    return begin


@pytest.mark.parametrize("with_key", [False, True])
def test_a_lost_answer_stores_the_mail_once(app, sql, mail, with_key):
    lost = []
    with app.test_request_context(
        "/mail", method="POST", headers={"Idempotency-Key": "lost-1"} if with_key else {}
    ):
        clean = validate_mail(mail)
        key = idempotency.requested(clean)
        result = submit.enqueue_many(
            losing_the_first_answer(lost),
            [clean],
            key,
            (lambda rows: (202, "{}")) if with_key else None,
        )
    assert lost, "the first statement's answer was lost"
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 1
    if isinstance(result, submit.Replay):  # the second run met the key before the mail
        assert with_key and result.stamps[1] == "queued"
    else:
        (row,) = result
        assert row["status"] == "queued" and row["created_at"] is not None
        assert str(sql("SELECT id FROM email")[0]["id"]) == row["id"]
    assert sql("SELECT count(*) AS n FROM idempotency_key")[0]["n"] == (1 if with_key else 0)


# --- Idempotency -------------------------------------------------------------------------------


def test_twenty_parallel_repeats_create_one_mail(live, mail, settings):
    base, auth = live
    headers = {**auth, "Idempotency-Key": "order-42-receipt"}

    def post(_):
        response = requests.post(f"{base}/mail", json=mail, headers=headers, timeout=30)
        return response.status_code, response.json()["id"], response.headers

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert {status for status, _, _ in answers} == {202}
    assert len({mail_id for _, mail_id, _ in answers}) == 1
    assert sum(h.get("Idempotent-Replayed") == "true" for _, _, h in answers) == 19
    assert len(mail_rows(settings["DATABASE_URL"])) == 1


def test_a_replay_answers_the_original_and_stores_nothing(client, mail, sql):
    first = client.post("/mail", json=mail, headers={"Idempotency-Key": "k1"})
    again = client.post("/mail", data=mail, headers={"Idempotency-Key": "k1"})  # same, as a form
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 1


def test_the_same_key_with_another_body_is_422(client, mail, sql):
    client.post("/mail", json=mail, headers={"Idempotency-Key": "k2"})
    response = client.post(
        "/mail", json={**mail, "subject": "Other"}, headers={"Idempotency-Key": "k2"}
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 1


def test_a_request_that_failed_validation_keeps_no_key(client, mail, sql):
    bad = client.post("/mail", json={**mail, "to": "nobody"}, headers={"Idempotency-Key": "k3"})
    assert bad.status_code == 400
    fixed = client.post("/mail", json=mail, headers={"Idempotency-Key": "k3"})
    assert fixed.status_code == 202 and "Idempotent-Replayed" not in fixed.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_400(client, mail, key):
    response = client.post("/mail", json=mail, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"


def test_keys_are_scoped_per_api_key(live, mail, settings):
    base, auth = live
    one = requests.post(
        f"{base}/mail", json=mail, timeout=10, headers={**auth, "Idempotency-Key": "shared"}
    )
    two = requests.post(
        f"{base}/mail",
        json=mail,
        timeout=10,
        headers={"Authorization": "Bearer key-two", "Idempotency-Key": "shared"},
    )
    assert one.json()["id"] != two.json()["id"]
    assert len(mail_rows(settings["DATABASE_URL"])) == 2


def test_batches_are_idempotent_too(client, mail, sql):
    batch = [mail, {**mail, "to": "other@example.com"}]
    first = client.post("/mail/batch", json=batch, headers={"Idempotency-Key": "b1"})
    again = client.post("/mail/batch", json=batch, headers={"Idempotency-Key": "b1"})
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"]
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 2


def test_an_expired_key_is_taken_anew(client, mail, sql, app):
    app.config["IDEMPOTENCY_TTL"] = 60.0
    client.post("/mail", json=mail, headers={"Idempotency-Key": "old"})
    sql("UPDATE idempotency_key SET created_at = now() - interval '2 minutes'")
    again = client.post("/mail", json=mail, headers={"Idempotency-Key": "old"})
    assert again.status_code == 202 and "Idempotent-Replayed" not in again.headers
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 2


# --- Scheduling --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "send_at, message",
    [
        ("2026-12-01T09:00:00", "time zone"),
        ("tomorrow", "ISO 8601"),
        ((datetime.now(UTC) + timedelta(days=31)).isoformat(), "MAX_SCHEDULE_DAYS"),
    ],
    ids=["without a zone", "not a time", "31 days ahead"],
)
def test_bad_send_at_is_400(client, mail, send_at, message):
    response = client.post("/mail", json={**mail, "send_at": send_at})
    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["field"] == "send_at" and message in error["message"]


def test_send_at_in_the_past_means_now(client, mail):
    body = client.post("/mail", json={**mail, "send_at": later(-3600)}).get_json()
    assert body["status"] == "queued"


# --- Cancel and retry --------------------------------------------------------------------------


def test_cancel_a_scheduled_mail_then_retry_it(client, mail, sandbox, run_worker):
    mail_id = client.post("/mail", json={**mail, "send_at": later(600)}).get_json()["id"]
    cancelled = client.post(f"/mail/{mail_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    again = client.post(f"/mail/{mail_id}/cancel")
    assert again.status_code == 409 and again.get_json()["status"] == "cancelled"
    retried = client.post(f"/mail/{mail_id}/retry")
    assert retried.status_code == 202 and retried.get_json()["status"] == "queued"
    run_worker()
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and len(sandbox.messages()) == 1
    outcomes = [(entry["outcome"], entry["actor"]) for entry in body["attempt_log"]]
    assert outcomes[:2] == [("cancelled", "api:local"), ("retried", "api:local")]


def test_cancel_or_retry_at_the_wrong_time_is_409(client, mail, run_worker):
    mail_id = client.post("/mail", json=mail).get_json()["id"]
    assert client.post(f"/mail/{mail_id}/retry").status_code == 409  # queued: nothing to retry
    run_worker()
    response = client.post(f"/mail/{mail_id}/cancel")
    assert response.status_code == 409 and response.get_json()["status"] == "sent"
    assert client.post(f"/mail/{uuid.uuid4()}/cancel").status_code == 404


# --- Listing -----------------------------------------------------------------------------------


def test_listing_filters(client, mail, sql):
    ids = {
        name: client.post("/mail", json={**mail, **extra}).get_json()["id"]
        for name, extra in {
            "plain": {},
            "tagged": {"tags": ["welcome"]},
            "to_ann": {"to": "Ann <ann@Example.COM>"},
        }.items()
    }
    sql("UPDATE email SET status = 'failed' WHERE id = :id", id=uuid.UUID(ids["plain"]))

    def listed(query):
        response = client.get(f"/mail?{query}")
        assert response.status_code == 200, response.get_json()
        return [item["id"] for item in response.get_json()["mails"]]

    assert listed("") == [ids["to_ann"], ids["tagged"], ids["plain"]]  # newest first
    assert listed("status=failed") == [ids["plain"]]
    assert listed("status=failed&status=queued") == [ids["to_ann"], ids["tagged"], ids["plain"]]
    assert listed("tag=welcome") == [ids["tagged"]]
    assert listed("to=ann@example.com") == [ids["to_ann"]]  # the domain in any case
    assert listed("to=Ann@example.com") == []  # the local part as given
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert listed(f"created_after={future}") == []
    assert len(listed(f"created_before={future}")) == 3


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=nope", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=%%%", "cursor"),
        ("created_after=yesterday", "created_after"),
        ("created_after=2026-01-01T00:00:00", "created_after"),
        ("colour=red", "colour"),
    ],
)
def test_bad_listing_queries_are_400(client, query, field):
    response = client.get(f"/mail?{query}")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == field


def test_pages_return_each_mail_once_while_mail_keeps_arriving(client, mail):
    # Walk the pages 7 at a time while another mail arrives before each page.
    first = [client.post("/mail", json=mail).get_json()["id"] for _ in range(40)]
    seen, cursor = [], None
    while True:
        client.post("/mail", json=mail)  # newer than every page: must never shift them
        answer = client.get("/mail?limit=7" + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [item["id"] for item in answer["mails"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert set(first) <= set(seen)


# --- Richer messages -----------------------------------------------------------------------------

PDF = b"%PDF-1.4 a small file\n" * 20
RICH = {
    "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
    "tags": ["welcome", "onboarding"],
    "metadata": {"user": "42", "plan": "pro"},
    "attachments": [
        {
            "filename": "terms.pdf",
            "content_type": "application/pdf",
            "content": base64.b64encode(PDF).decode(),
        }
    ],
}


def test_a_content_id_in_angle_brackets_is_a_400_naming_the_field(client, mail):
    logo = {"filename": "logo.png", "content": "UE5H", "content_id": "<logo@example.com>"}
    answer = client.post("/mail", json={**mail, "attachments": [logo]})
    assert answer.status_code == 400 and answer.mimetype == "application/json"
    [error] = answer.get_json()["errors"]
    assert error["field"] == "attachments[0].content_id"
    assert "without angle brackets" in error["message"]


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_headers_tags_metadata_and_attachments_reach_each_provider(
    client, mail, sandbox, run_worker, provider
):
    body = client.post("/mail", json={**mail, **RICH}).get_json()
    assert body["attachments"] == [
        {
            "filename": "terms.pdf",
            "content_type": "application/pdf",
            "size": len(PDF),
            "content_id": None,
        }
    ]
    run_worker(PROVIDERS=provider)
    [message] = sandbox.messages(provider)
    assert message["custom"] == {"user": "42", "plan": "pro", "mail_id": body["id"]}
    assert message["headers_in"]["X-Campaign"] == "spring"
    assert message["headers_in"]["List-Unsubscribe"] == "<mailto:u@example.com>"
    tags = message["options"]["tag"] if provider == "mailgun" else message["categories"]
    assert tags == ["welcome", "onboarding"]
    [attached] = message["attachments"]
    assert (attached["filename"], attached["size"]) == ("terms.pdf", len(PDF))
    assert attached["content_type"] == "application/pdf"
    stored = client.get(f"/mail/{body['id']}").get_json()
    assert stored["metadata"] == RICH["metadata"] and stored["tags"] == RICH["tags"]


def test_multipart_file_fields_are_attachments(client, mail, sandbox, run_worker):
    data = {
        **mail,
        "attachment": (io.BytesIO(PDF), "terms.pdf", "application/pdf"),
        "tags": ["a", "b"],
        "metadata": '{"user": "7"}',
    }
    response = client.post("/mail", data=data, content_type="multipart/form-data")
    assert response.status_code == 202, response.get_json()
    run_worker(PROVIDERS="mailgun")
    [message] = sandbox.messages("mailgun")
    assert message["attachments"][0]["size"] == len(PDF) and message["custom"]["user"] == "7"


@pytest.mark.parametrize(
    "extra, field",
    [
        ({"headers": {"Subject": "spoof"}}, "headers.Subject"),
        ({"headers": {"Bad Name": "x"}}, "headers.Bad Name"),
        ({"headers": {"X-A": "a\u0085Bcc: e@example.net"}}, "headers.X-A"),
        ({"tags": [f"t{i}" for i in range(11)]}, "tags"),
        ({"metadata": {"nested": {"a": "b"}}}, "metadata.nested"),
        ({"metadata": {f"k{i}": "v" for i in range(11)}}, "metadata"),
        ({"metadata": {"mail_id": "mine"}}, "metadata.mail_id"),
        (
            {"attachments": [{"filename": "../etc/passwd", "content": "eA=="}]},
            "attachments[0].filename",
        ),
        (
            {"attachments": [{"filename": "a.txt", "content": "not base64!"}]},
            "attachments[0].content",
        ),
        (
            {"attachments": [{"filename": "a\x07.txt", "content": "eA=="}]},
            "attachments[0].filename",
        ),
    ],
)
def test_bad_extras_are_400_naming_the_field(client, mail, extra, field, sql):
    response = client.post("/mail", json={**mail, **extra})
    assert response.status_code == 400, response.get_json()
    assert field in [error["field"] for error in response.get_json()["errors"]]
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0


def test_attachments_over_the_limit_are_413(client, mail, app, sql):
    app.config["MAX_ATTACHMENT_BYTES"] = 1000
    big = {"filename": "big.bin", "content": base64.b64encode(b"x" * 1001).decode()}
    response = client.post("/mail", json={**mail, "attachments": [big]})
    assert response.status_code == 413
    assert response.get_json()["errors"][0]["field"] == "attachments"
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0
