"""Issue 19, items 16, 17 and 19: provider events as the providers (and django-anymail's test
payloads) shape them: Mailgun's ``rejected`` without a ``recipient``, SendGrid's
``group_unsubscribe``, and a legacy form-encoded Mailgun webhook."""

import secrets
import time

from signed import MAILGUN_SIGNING_KEY, sendgrid_event, sendgrid_request

from mailer.events.signatures import mailgun_signature

MESSAGE_ID = "20180622220256.1.B31A451A2E5422BB@sandbox55887.mailgun.org"
RECIPIENT = "recipient@example.org"


def signed_mailgun(event_data):
    """A Mailgun webhook body for ``event_data``, signed now."""
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    return {
        "signature": {
            "timestamp": timestamp,
            "token": token,
            "signature": mailgun_signature(MAILGUN_SIGNING_KEY, timestamp, token),
        },
        "event-data": event_data,
    }


def rejected(to):
    """django-anymail's sample of Mailgun's ``rejected`` event (no recipient field), to ``to``."""
    return {
        "event": "rejected",
        "timestamp": time.time(),
        "log-level": "warn",
        "reject": {"reason": "Sandbox subdomains are for test purposes only.", "description": ""},
        "message": {
            "headers": {
                "to": to,
                "message-id": MESSAGE_ID,
                "from": "test@sandbox55887.mailgun.org",
                "subject": "Test Subject",
            }
        },
    }


def mail_of(client, mail_id):
    """The mail as GET /mail/<id> shows it."""
    return client.get(f"/mail/{mail_id}").get_json()


# --- Item 16: Mailgun's rejected event names its recipient only in the To header ---------------


def test_a_mailgun_rejection_finds_its_recipient_in_the_to_header(client, sent):
    mail_id = sent(to=f"Recipient Name <{RECIPIENT}>", message_id=f"<{MESSAGE_ID}>")
    body = signed_mailgun(rejected(f"Recipient Name <{RECIPIENT}>"))
    answer = client.post("/webhooks/mailgun", json=body)
    assert answer.status_code == 200 and answer.get_json()["new"] == 1
    mail = mail_of(client, mail_id)
    assert mail["status"] == "bounced"
    [recipient] = mail["recipients"]
    assert (recipient["address"], recipient["status"]) == (RECIPIENT, "bounced")
    assert recipient["reason"] == "Sandbox subdomains are for test purposes only."
    assert [(e["type"], e["recipient"]) for e in mail["events"]] == [("dropped", RECIPIENT)]


def test_a_rejection_to_several_addresses_moves_no_recipient(client, sent):
    mail_id = sent(to=[RECIPIENT, "other@example.org"], message_id=f"<{MESSAGE_ID}>")
    body = signed_mailgun(rejected(f"{RECIPIENT}, other@example.org"))
    assert client.post("/webhooks/mailgun", json=body).status_code == 200
    mail = mail_of(client, mail_id)
    assert {r["status"] for r in mail["recipients"]} == {"sent"}
    assert [(e["type"], e["recipient"]) for e in mail["events"]] == [("dropped", None)]


# --- Item 17: SendGrid's group_unsubscribe is an unsubscribe ------------------------------------


def test_a_sendgrid_group_unsubscribe_unsubscribes_its_recipient(client, sent, sql):
    mail_id = sent(to=RECIPIENT, provider="sendgrid", message_id="W86EgYT6SQKk0lRflfLRsA")
    event = sendgrid_event(
        "group_unsubscribe",
        RECIPIENT,
        sg_message_id="W86EgYT6SQKk0lRflfLRsA.filter0425p1las1-14525-0.0",
        asm_group_id=10,
        useragent="Mozilla/4.0",
        ip="192.168.0.1",
        url="http://www.sendgrid.com/",
    )
    raw, headers = sendgrid_request([event])
    answer = client.post("/webhooks/sendgrid", data=raw, headers=headers)
    assert answer.status_code == 200 and answer.get_json()["new"] == 1
    mail = mail_of(client, mail_id)
    assert [(r["address"], r["status"]) for r in mail["recipients"]] == [
        (RECIPIENT, "unsubscribed")
    ]
    # An unsubscribed recipient counts as reached: the mail is delivered, and the address is
    # suppressed for good.
    assert mail["status"] == "delivered"
    assert [(e["type"], e["event"]) for e in mail["events"]] == [
        ("unsubscribed", "group_unsubscribe")
    ]
    assert sql("SELECT address, reason, expires_at FROM suppression") == [
        {"address": RECIPIENT, "reason": "unsubscribe", "expires_at": None}
    ]


# --- Item 19: a legacy form-encoded Mailgun webhook ---------------------------------------------


def test_a_legacy_form_encoded_mailgun_webhook_is_told_the_format_we_take(client, sql):
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    form = {  # what Mailgun's legacy webhooks post
        "event": "delivered",
        "recipient": RECIPIENT,
        "Message-Id": f"<{MESSAGE_ID}>",
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(MAILGUN_SIGNING_KEY, timestamp, token),
    }
    answer = client.post("/webhooks/mailgun", data=form)
    assert answer.status_code == 400
    [error] = answer.get_json()["errors"]
    assert error["field"] == "body"
    assert "Mailgun's current webhooks" in error["message"]
    assert "application/json" in error["message"] and "legacy form-encoded" in error["message"]
    assert sql("SELECT count(*) AS n FROM delivery_event")[0]["n"] == 0
