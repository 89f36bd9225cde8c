"""The sandbox's Postmark: real HTTP against a Sandbox on threads of this process, no mocks."""

import base64

import pytest
import requests

from devkit.sandbox import Sandbox
from devkit.sandbox.events import postmark_events

TOKEN = "pm-test-token"


@pytest.fixture(scope="module")
def server():
    """One sandbox for the module (reset before each test by ``sb``)."""
    with Sandbox(postmark_token=TOKEN).start() as sandbox:
        yield sandbox


@pytest.fixture
def sb(server):
    """The shared sandbox with clean messages, requests and behaviour."""
    server.reset()
    return server


@pytest.fixture
def http():
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def payload(**overrides):
    """A valid Postmark /email body, with ``overrides`` (None removes a field)."""
    body = {
        "From": "Shop <shop@example.com>",
        "To": "ann@example.com, Bob <bob@example.com>",
        "Subject": "Hi",
        "TextBody": "Hello",
        "MessageStream": "outbound",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def post(http, sb, body, token=TOKEN):
    """POST to Postmark's /email with the server token."""
    return http.post(f"{sb.url}/email", json=body, headers={"X-Postmark-Server-Token": token})


def test_success_shape_and_recorded_fields(sb, http):
    body = payload(
        Cc="carl@example.com",
        Bcc="dora@example.com",
        ReplyTo="help@example.com",
        HtmlBody="<p>Hello</p>",
        Headers=[{"Name": "X-Campaign", "Value": "spring"}],
        Tag="welcome",
        Metadata={"mail_id": "m-1"},
        Attachments=[
            {"Name": "a.txt", "Content": base64.b64encode(b"abc").decode(), "ContentType": "t/p"}
        ],
    )
    answer = post(http, sb, body)
    assert answer.status_code == 200
    sent = answer.json()
    assert (sent["ErrorCode"], sent["Message"], sent["To"]) == (0, "OK", body["To"])
    [record] = sb.messages("postmark")
    assert record["id"] == sent["MessageID"]
    assert record["to"] == ["ann@example.com", "Bob <bob@example.com>"]
    assert (record["cc"], record["bcc"]) == (["carl@example.com"], ["dora@example.com"])
    assert (record["tag"], record["custom"]) == ("welcome", {"mail_id": "m-1"})
    assert record["headers_in"] == {"X-Campaign": "spring"}
    assert record["attachments"][0]["size"] == 3


def test_an_attachment_with_a_content_id_is_recorded_inline(sb, http):
    logo = {"Name": "logo.png", "Content": base64.b64encode(b"PNG").decode()}
    logo.update(ContentType="image/png", ContentID="cid:logo@example.com")
    bill = {"Name": "bill.pdf", "Content": base64.b64encode(b"%PDF").decode()}
    answer = post(http, sb, payload(Attachments=[logo, {**bill, "ContentType": "a/pdf"}]))
    assert answer.status_code == 200
    [record] = sb.messages("postmark")
    assert [(f["disposition"], f["content_id"]) for f in record["attachments"]] == [
        ("inline", "logo@example.com"),
        ("attachment", None),
    ]


def test_the_message_id_is_the_one_given_in_headers_else_postmarks(sb, http):
    given = payload(Headers=[{"Name": "Message-ID", "Value": "<m-1@shop.example>"}])
    assert post(http, sb, given).status_code == 200
    own = post(http, sb, payload()).json()["MessageID"]
    assert [record["message_id"] for record in sb.messages("postmark")] == [
        "<m-1@shop.example>",
        f"<{own}@mtasv.net>",
    ]


@pytest.mark.parametrize("token", ["wrong", ""])
def test_a_wrong_or_missing_token_is_401_error_code_10(sb, http, token):
    answer = post(http, sb, payload(), token=token)
    assert answer.status_code == 401 and answer.json()["ErrorCode"] == 10
    assert sb.messages() == []


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"From": None}, "'From'"),
        ({"To": None}, "Zero recipients"),
        ({"To": "not an address"}, "'To'"),
        ({"TextBody": None}, "TextBody or HtmlBody"),
        ({"Tag": ["one", "two"]}, "'Tag'"),
        ({"Tag": "x" * 1001}, "'Tag'"),
        ({"Metadata": {f"k{i}": "v" for i in range(11)}}, "metadata"),
        ({"Metadata": {"k" * 21: "v"}}, "metadata"),
        ({"Metadata": {"k": "v" * 81}}, "metadata"),
        ({"Metadata": {"key": "a", "KEY": "b"}}, "metadata"),
        ({"To": ", ".join(f"r{i}@example.com" for i in range(51))}, "50 recipients"),
    ],
)
def test_an_invalid_request_is_422_error_code_300(sb, http, overrides, words):
    answer = post(http, sb, payload(**overrides))
    assert answer.status_code == 422
    assert answer.json()["ErrorCode"] == 300 and words in answer.json()["Message"]
    assert sb.messages() == []


def test_reject_to_is_postmarks_inactive_recipient(sb, http):
    sb.configure("postmark", reject_to="bob@")
    answer = post(http, sb, payload())
    assert answer.status_code == 422
    assert answer.json()["ErrorCode"] == 406
    assert "Found inactive addresses: bob@example.com." in answer.json()["Message"]


def test_injected_faults_answer_in_postmarks_shape(sb, http):
    sb.configure("postmark", status=429, retry_after=5, count=1)
    answer = post(http, sb, payload())
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "5")
    assert answer.json()["ErrorCode"] == 429
    sb.set_behaviour("postmark", {"status": 422, "body": '{"ErrorCode": 405, "Message": "No"}'})
    answer = post(http, sb, payload())
    assert (answer.status_code, answer.json()["ErrorCode"]) == (422, 405)


def test_its_events_follow_each_outcome():
    record = {
        "id": "m-1",
        "from": "shop@example.com",
        "subject": "Hi",
        "to": ["ann@example.com"],
        "cc": ["Bob <bob@example.com>", "carl@example.com"],
        "bcc": ["dora@example.com"],
        "custom": {"mail_id": "x"},
        "tag": "welcome",
    }
    outcomes = {"bob@example.com": "bounce", "carl@example.com": "defer"}
    outcomes["dora@example.com"] = "complain"
    events = postmark_events(record, {"outcomes": outcomes})
    assert [
        (e["RecordType"], e.get("Type"), e.get("Recipient") or e.get("Email")) for e in events
    ] == [
        ("Delivery", None, "ann@example.com"),
        ("Bounce", "HardBounce", "bob@example.com"),
        ("Bounce", "SoftBounce", "carl@example.com"),
        ("Delivery", None, "dora@example.com"),
        ("SpamComplaint", "SpamComplaint", "dora@example.com"),
    ]
    assert all(e["MessageID"] == "m-1" and e["Metadata"] == {"mail_id": "x"} for e in events)
