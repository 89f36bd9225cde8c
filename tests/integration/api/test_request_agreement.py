"""The server and the OpenAPI document agree on every field of the request bodies: what
validation takes, the document's schema allows, and what it refuses, the schema does not
(issue 19, item 14: POST /mail/batch took "tags": "" while the document said a tag has a
minimum length)."""

import pytest

from integration.api.schemas import validator
from integration.api.test_openapi import MAIL
from mailer.api.templated import TEMPLATE_FIELDS
from mailer.validation.mail import ALL_FIELDS

FILE = {"filename": "a.txt", "content_type": "text/plain", "content": "aGk="}

MAIL_CASES = [
    # tags: one, a list, or none ("", null, []); each not blank, at most 128 characters
    ({"tags": ""}, True),
    ({"tags": None}, True),
    ({"tags": []}, True),
    ({"tags": "t1"}, True),
    ({"tags": ["t1", "t1", "ünï"]}, True),
    ({"tags": " "}, False),
    ({"tags": ["ok", "\u3000"]}, False),
    ({"tags": "\t"}, False),
    ({"tags": ["x" * 129]}, False),
    ({"tags": [f"t{number}" for number in range(11)]}, False),
    ({"tags": "a\u2028b"}, False),
    ({"tags": 5}, False),
    # headers and metadata: an object, or none ("", null)
    ({"headers": ""}, True),
    ({"headers": None}, True),
    ({"headers": {"X-Campaign": "spring"}}, True),
    ({"headers": {"X-Campaign": "a\nb"}}, False),
    ({"headers": "X-Campaign: spring"}, False),
    ({"metadata": ""}, True),
    ({"metadata": None}, True),
    ({"metadata": {"k": "v"}}, True),
    ({"metadata": {"k": 1}}, False),
    ({"metadata": {"k": "a\x00"}}, False),
    # attachments: a list of files, or none (null, [])
    ({"attachments": None}, True),
    ({"attachments": []}, True),
    ({"attachments": [FILE]}, True),
    ({"attachments": [{**FILE, "content_type": ""}]}, True),
    ({"attachments": [{**FILE, "content_type": None}]}, True),
    ({"attachments": [{"filename": "a.txt", "content": "aGk="}]}, True),
    ({"attachments": [{**FILE, "filename": "..."}]}, True),
    ({"attachments": [{**FILE, "filename": " a b "}]}, True),
    ({"attachments": [{**FILE, "filename": " "}]}, False),
    ({"attachments": [{**FILE, "filename": "."}]}, False),
    ({"attachments": [{**FILE, "filename": ".."}]}, False),
    ({"attachments": [{**FILE, "filename": "a/b"}]}, False),
    ({"attachments": [{**FILE, "filename": "a\u2028b"}]}, False),
    ({"attachments": [{**FILE, "content_type": "pdf"}]}, False),
    ({"attachments": [{**FILE, "size": 2}]}, False),
    ({"attachments": ""}, False),
    # content_id: a bare token makes an inline part; none ("", null) an attached file
    ({"attachments": [{**FILE, "content_id": "logo@example.com"}]}, True),
    ({"attachments": [{**FILE, "content_id": "image001.png@01D9C5A1.2B3C4D50"}]}, True),
    ({"attachments": [{**FILE, "content_id": ""}]}, True),
    ({"attachments": [{**FILE, "content_id": None}]}, True),
    ({"attachments": [{**FILE, "content_id": "<logo@example.com>"}]}, False),
    ({"attachments": [{**FILE, "content_id": "my logo"}]}, False),
    ({"attachments": [{**FILE, "content_id": "images/logo"}]}, False),
    ({"attachments": [{**FILE, "content_id": "logo\r\nBcc: x@example.com"}]}, False),
    ({"attachments": [{**FILE, "content_id": "x" * 256}]}, False),
    ({"attachments": [{**FILE, "content_id": 5}]}, False),
    # send_at: a time with a zone, or none ("", null)
    ({"send_at": ""}, True),
    ({"send_at": None}, True),
    ({"send_at": "2020-01-01T00:00:00Z"}, True),
    ({"send_at": "tomorrow"}, False),
]


@pytest.mark.parametrize(("fields", "accepted"), MAIL_CASES)
def test_a_mail_and_a_batch_agree_with_the_document(client, spec, fields, accepted):
    body = {**MAIL, **fields}
    assert validator(spec, "MailRequest").is_valid(body) is accepted
    answer = client.post("/mail", json=body)
    assert answer.status_code == (202 if accepted else 400), answer.get_json()
    batch = client.post("/mail/batch", json=[MAIL, body])
    assert batch.status_code == (202 if accepted else 400), batch.get_json()


@pytest.mark.parametrize(
    ("fields", "accepted"),
    [({"tags": ""}, True), ({"tags": " "}, False), ({"send_at": ""}, True), ({"cc": ""}, True)],
)
def test_a_form_agrees_with_the_document(client, spec, fields, accepted):
    body = {**MAIL, **fields}
    assert validator(spec, "MailForm").is_valid(body) is accepted
    assert client.post("/mail", data=body).status_code == (202 if accepted else 400)


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"address": "a@example.com"}, True),
        ({"address": ["a@example.com"]}, True),
        ({"address": "a@example.com", "reason": None, "detail": ""}, True),
        ({"address": "a@example.com", "reason": "bounce", "detail": "x" * 1000}, True),
        ({"address": ["a@example.com", "b@example.com"]}, False),
        ({"address": ""}, False),
        ({"address": None}, False),
        ({"address": "a@example.com", "detail": "x" * 1001}, False),
        ({"address": "a@example.com", "detail": "a\x00b"}, False),
        ({"address": "a@example.com", "reason": "spite"}, False),
        ({"address": "a@example.com", "colour": "red"}, False),
    ],
)
def test_a_suppression_agrees_with_the_document(client, spec, body, accepted):
    assert validator(spec, "SuppressionRequest").is_valid(body) is accepted
    answer = client.post("/suppressions", json=body)
    assert answer.status_code in ((200, 201) if accepted else (400,)), answer.get_json()


@pytest.fixture
def spec(client):
    """The document as the API serves it."""
    return client.get("/api/spec").get_json()


def test_the_document_lists_every_field_validation_reads(spec):
    properties = spec["components"]["schemas"]["MailRequest"]["properties"]
    assert set(properties) == set(ALL_FIELDS) | set(TEMPLATE_FIELDS)
    assert set(spec["components"]["schemas"]["MailForm"]["properties"]) < set(properties)
