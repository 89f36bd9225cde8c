"""What each way in stored, read back with ``GET /inbound/<id>`` (issue 25).

The record's shape is the issue's (id, received_at, source, envelope, from, to, cc, subject,
text, html, stripped_text, headers, attachments, the spam verdict, in_reply_to_mail_id), read
through the helpers below.
"""

import uuid

import pytest
from helpers import serving
from unit.inbound.payloads import IMAGE

from app import create_app
from integration.inbound.posts import (
    CREDENTIALS,
    SUPPORT,
    mailgun_form,
    post_mailgun_form,
    written,
)
from integration.inbound.test_inbound_ways import REPLY, WAYS
from integration.smtp.door import API_KEY, certificates, connect, running_door, send_data
from integration.smtp.test_inbound_door import received_id, reply_to_shop

pytestmark = pytest.mark.committed
ATTACHMENTS = [
    {"filename": "order.pdf", "content_type": "application/pdf", "size": len(b"%PDF-1.4")},
    {"filename": "logo.png", "content_type": "image/png", "size": len(IMAGE)},
]


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, and the sandbox posting to it; yields the
    app's test client."""
    application = create_app(settings)
    with serving(application) as url:
        sandbox.configure_events(url=url, **CREDENTIALS)
        yield application.test_client()


def record(client, answer):
    """The inbound mail a 200 answer names, as ``GET /inbound/<id>`` shows it."""
    inbound_id = answer["answer"]["id"] if "answer" in answer else answer["id"]
    shown = client.get(f"/inbound/{inbound_id}")
    assert shown.status_code == 200, shown.get_data(as_text=True)
    return shown.get_json()


def header(shown, name):
    """The first value of header ``name`` in a record's ``headers`` (pairs or objects)."""
    for item in shown["headers"]:
        key, value = (item["name"], item["value"]) if isinstance(item, dict) else item
        if key.lower() == name.lower():
            return value
    return None


def spam_verdict(shown):
    """The record's spam verdict: "spam", "ham" or None."""
    return shown["spam_verdict"]


def envelope(shown):
    """The record's envelope: (from, [to])."""
    return shown["envelope_from"], shown["envelope_to"]


def files(shown):
    """The record's attachments as name, type and size."""
    return [
        {key: item[key] for key in ("filename", "content_type", "size")}
        for item in shown["attachments"]
    ]


@pytest.mark.parametrize("provider, raw", WAYS)
def test_each_way_stores_the_reply_as_it_was_written(live, sandbox, provider, raw):
    [answer] = sandbox.post_inbound(provider, raw=raw, stripped_text="Thanks.", **REPLY)
    shown = record(live, answer)
    assert uuid.UUID(shown["id"]) and shown["received_at"]
    assert shown["source"] == provider
    assert shown["from"] == "Ann Example <ann@example.com>"
    assert shown["to"] == [SUPPORT]
    assert shown["cc"] == ["carl@example.com"]
    assert shown["subject"] == "Re: Your order"
    assert shown["text"].strip() == "Thanks, that works."
    assert shown["html"].strip() == REPLY["html"]
    assert header(shown, "In-Reply-To") == "<mail-1@shop.example.com>"
    assert files(shown) == ATTACHMENTS
    assert SUPPORT in envelope(shown)[1]
    if provider != "postmark":  # Postmark gives no envelope sender but its Return-Path
        assert envelope(shown)[0] == "ann@example.com"
    parsed_reply = (provider == "mailgun" and not raw) or provider == "postmark"
    assert shown["stripped_text"] == ("Thanks." if parsed_reply else None)


@pytest.mark.parametrize(
    "provider, spam, verdict",
    [("mailgun", True, "spam"), ("mailgun", False, "ham"), ("postmark", True, "spam")],
)
def test_the_providers_spam_verdict_is_kept(live, sandbox, provider, spam, verdict):
    [answer] = sandbox.post_inbound(provider, spam=spam, spam_score=6.5, **REPLY)
    assert spam_verdict(record(live, answer)) == verdict


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid", "postmark"])
def test_a_retry_of_the_same_delivery_is_stored_once(live, sandbox, provider):
    first, again = sandbox.post_inbound(provider, times=2, **REPLY)
    assert first["answer"]["kind"] == "stored"
    assert again["answer"] == {**first["answer"], "kind": "replay"}


def test_a_forged_mailgun_post_stores_nothing(live):
    token = "d" * 50
    forged = post_mailgun_form(live, mailgun_form(token=token, key="not-the-key"))
    assert forged.status_code == 401
    genuine = post_mailgun_form(live, mailgun_form(token=token))
    assert genuine.get_json()["kind"] == "stored"  # not a replay of the forged one


@pytest.mark.parametrize(
    "provider, password",
    [("sendgrid", "sendgrid_inbound_password"), ("postmark", "postmark_password")],
)
def test_a_post_with_wrong_basic_auth_stores_nothing(live, provider, password):
    path, body, headers = written(provider, {password: "a-guess"}, **REPLY)
    assert live.post(path, data=body, headers=headers).status_code == 401
    right = written(provider, **REPLY)[2]["Authorization"]
    answer = live.post(path, data=body, headers={**headers, "Authorization": right})
    assert answer.get_json()["kind"] == "stored"  # the same delivery, stored the first time now


def test_a_malformed_post_stores_nothing(live):
    path, body, headers = written("postmark", **REPLY)
    broken = body.replace(b'"Content": "', b'"Content": "***', 1)
    assert live.post(path, data=broken, headers=headers).status_code == 400
    assert live.post(path, data=body, headers=headers).get_json()["kind"] == "stored"


def test_a_reply_names_the_mail_it_answers(live, sandbox, mail, run_worker):
    mail_id = live.post("/mail", json={**mail, "to": "ann@example.com"}).get_json()["id"]
    run_worker(PROVIDERS="mailgun")
    [sent] = sandbox.messages("mailgun")
    [answer] = sandbox.post_inbound(
        "mailgun", **{**REPLY, "headers": {"In-Reply-To": sent["id"], "References": sent["id"]}}
    )
    assert record(live, answer)["in_reply_to_mail_id"] == mail_id


def test_the_smtp_door_stores_what_it_received_once(live, settings):
    with (
        certificates() as (_, cert, key),
        running_door(
            settings,
            API_KEYS=API_KEY,
            SMTP_TLS_CERT=cert,
            SMTP_TLS_KEY=key,
            INBOUND_DOMAINS="in.example.com",
        ) as door,
        connect(door) as smtp,
    ):
        message = reply_to_shop()
        first = received_id(send_data(smtp, message, [SUPPORT], sender="ann@example.com"))
        again = received_id(send_data(smtp, message, [SUPPORT], sender="ann@example.com"))
    assert again == first  # a client that lost the 250 sends it again: stored once
    shown = record(live, {"id": first})
    assert shown["source"] == "smtp"
    assert envelope(shown) == ("ann@example.com", [SUPPORT])
    assert shown["from"] == "Ann <ann@example.com>"
    assert shown["subject"] == "Your order"
    assert header(shown, "In-Reply-To") == "<mail-1@shop.example.com>"
    assert [a["filename"] for a in shown["attachments"]] == ["invoice.pdf"]
