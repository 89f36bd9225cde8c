"""The API answers the same bytes in debug mode as in production: ``GET /mail`` (written by the
shapes' writers) and every other resource's JSON take one path in both."""

import pytest

from app import create_app


@pytest.fixture
def debug_client(settings, app):
    """A client of the app in debug mode, on the same database as ``client``."""
    return create_app({**settings, "DEBUG": True}).test_client()


def test_debug_mode_answers_the_same_bytes(app, client, debug_client, mail):
    assert debug_client.application.debug and not app.debug
    mail_id = client.post("/mail", json={**mail, "tags": ["t1"]}).get_json()["id"]
    for path in ("/mail", "/mail?limit=1", f"/mail/{mail_id}", "/suppressions", "/health"):
        production, debug = client.get(path), debug_client.get(path)
        assert production.status_code == debug.status_code == 200, path
        assert debug.get_data() == production.get_data(), path
        assert debug.headers["Content-Type"] == production.headers["Content-Type"], path
