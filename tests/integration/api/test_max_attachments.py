"""``MAX_ATTACHMENTS``: a mail with more files than the setting allows is a 400 naming
``attachments``, in JSON, in a form and in a batch; the document states the same bound."""

import base64
import io

import pytest

from app import create_app
from integration.api.schemas import validator
from mailer.config import DEFAULTS

FILE = {
    "filename": "a.txt",
    "content_type": "text/plain",
    "content": base64.b64encode(b"hi").decode(),
}


def files(count):
    """``count`` small attachments."""
    return [{**FILE, "filename": f"f{number}.txt"} for number in range(count)]


def test_the_default_is_100():
    assert DEFAULTS["MAX_ATTACHMENTS"] == 100


def test_more_than_the_default_is_refused_naming_the_field(client, mail):
    assert client.post("/mail", json={**mail, "attachments": files(100)}).status_code == 202
    refused = client.post("/mail", json={**mail, "attachments": files(101)})
    assert refused.status_code == 400
    assert refused.get_json()["errors"] == [
        {"field": "attachments", "message": "At most 100 attachments (MAX_ATTACHMENTS)"}
    ]


@pytest.fixture
def two(settings, app):
    """A client of the app with MAX_ATTACHMENTS = 2, on the same database as ``client``."""
    return create_app({**settings, "MAX_ATTACHMENTS": "2"}).test_client()


def test_the_setting_bounds_json_forms_and_batches(two, mail):
    assert two.post("/mail", json={**mail, "attachments": files(2)}).status_code == 202
    refused = two.post("/mail", json={**mail, "attachments": files(3)})
    assert refused.status_code == 400
    assert [error["field"] for error in refused.get_json()["errors"]] == ["attachments"]
    form = {
        **mail,
        "attachment": [(io.BytesIO(b"hi"), f"f{number}.txt") for number in range(3)],
    }
    refused = two.post("/mail", data=form, content_type="multipart/form-data")
    assert refused.status_code == 400
    assert [error["field"] for error in refused.get_json()["errors"]] == ["attachments"]
    batch = two.post("/mail/batch", json=[mail, {**mail, "attachments": files(3)}])
    assert batch.status_code == 400
    assert [error["field"] for error in batch.get_json()["errors"]] == ["[1].attachments"]


def test_the_document_states_the_setting(client, two, mail):
    for api, most in ((client, 100), (two, 2)):
        spec = api.get("/api/spec").get_json()
        schema = spec["components"]["schemas"]["MailRequest"]["properties"]["attachments"]
        assert schema["maxItems"] == most
        check = validator(spec, "MailRequest")
        assert check.is_valid({**mail, "attachments": files(most)})
        assert not check.is_valid({**mail, "attachments": files(most + 1)})
