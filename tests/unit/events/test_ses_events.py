"""SES's events through SNS read into ``Event``s, and SNS's signatures checked (no HTTP)."""

import json

import pytest

from devkit.sandbox.sns import Signer
from mailer.events.provider import Malformed
from mailer.events.ses import ses_events, signature_holds, string_to_sign

MAIL_ID = "9f0b7c1e-4d0a-4d7e-9a51-0c2f3e8b6a11"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
SIGNER = Signer()


def ses_event(kind, detail_name=None, detail=None, destination=("a@example.com",)):
    """An SES event as SNS carries it: JSON text."""
    event = {
        "eventType": kind,
        "mail": {
            "timestamp": "2026-01-01T10:00:00.000Z",
            "messageId": "0100-abc-000000",
            "destination": list(destination),
            "tags": {"mail_id": [MAIL_ID], "ses:configuration-set": ["events"]},
        },
    }
    if detail_name:
        event[detail_name] = {"timestamp": "2026-01-01T10:00:05.000Z", **(detail or {})}
    return json.dumps(event)


def read(kind, detail_name=None, detail=None, **extra):
    """``(type, recipient, severity, reason)`` of each Event read from an SES event."""
    events = ses_events("sns-1", ses_event(kind, detail_name, detail, **extra))
    assert {(event.mail_id, event.message_id) for event in events} <= {(MAIL_ID, "0100-abc-000000")}
    return [(event.type, event.recipient, event.severity, event.reason) for event in events]


def test_a_delivery_is_one_event_per_recipient_keyed_by_the_sns_message():
    events = ses_events(
        "sns-1",
        ses_event(
            "Delivery",
            "delivery",
            {"recipients": ["A@Example.com", "b@example.com"], "smtpResponse": "250 ok"},
        ),
    )
    assert [(e.type, e.recipient, e.reason, e.key) for e in events] == [
        ("delivered", "A@example.com", "250 ok", "sns-1:A@example.com"),
        ("delivered", "b@example.com", "250 ok", "sns-1:b@example.com"),
    ]
    assert events[0].occurred_at.isoformat() == "2026-01-01T10:00:05+00:00"
    assert events[0].provider == "ses" and events[0].provider_event == "Delivery"


@pytest.mark.parametrize(
    "bounce_type, wanted, severity",
    [
        ("Permanent", "bounced", "permanent"),
        ("Transient", "deferred", "temporary"),
        ("Undetermined", "deferred", "temporary"),
    ],
)
def test_bounces_by_their_type(bounce_type, wanted, severity):
    failed = {"emailAddress": "a@example.com", "status": "5.1.1", "diagnosticCode": "smtp; 550"}
    detail = {"bounceType": bounce_type, "bouncedRecipients": [failed]}
    assert read("Bounce", "bounce", detail) == [(wanted, "a@example.com", severity, "smtp; 550")]


def test_the_other_events():
    complaint = {"complainedRecipients": [{"emailAddress": "a@example.com"}]}
    assert read("Complaint", "complaint", complaint) == [
        ("complained", "a@example.com", None, None)
    ]
    delayed = {"delayedRecipients": [{"emailAddress": "a@example.com", "status": "4.4.1"}]}
    assert read("DeliveryDelay", "deliveryDelay", delayed) == [
        ("deferred", "a@example.com", "temporary", "4.4.1")
    ]
    assert read(
        "Reject", "reject", {"reason": "Bad content"}, destination=["a@x.org", "b@x.org"]
    ) == [
        ("dropped", "a@x.org", None, "Bad content"),
        ("dropped", "b@x.org", None, "Bad content"),
    ]
    assert read("Send", "send") == [("accepted", "a@example.com", None, None)]
    assert read("Open", "open") == [("opened", None, None, None)]
    assert read("Rendering Failure", "failure") == [("other", None, None, None)]


def test_legacy_notifications_name_their_type_in_notification_type():
    text = json.loads(ses_event("x", "bounce", {"bounceType": "Permanent"}))
    del text["eventType"]
    text["notificationType"] = "Bounce"
    text["bounce"]["bouncedRecipients"] = [{"emailAddress": "a@example.com"}]
    [event] = ses_events("sns-2", json.dumps(text))
    assert event.type == "bounced" and event.recipient == "a@example.com"


@pytest.mark.parametrize("text", ["not json", "[]", '{"eventType": "Delivery"}', None])
def test_what_is_not_an_ses_event_is_malformed(text):
    with pytest.raises(Malformed):
        ses_events("sns-3", text)


def test_the_string_to_sign_lists_the_signed_fields_in_order():
    message = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": TOPIC,
        "Message": "body",
        "Timestamp": "t",
        "SigningCertURL": "https://x",
        "UnsubscribeURL": "https://y",
    }
    assert (
        string_to_sign(message)
        == (
            f"Message\nbody\nMessageId\nm\nTimestamp\nt\nTopicArn\n{TOPIC}\nType\nNotification\n"
        ).encode()
    )
    confirmation = {
        **message,
        "Type": "SubscriptionConfirmation",
        "Token": "k",
        "SubscribeURL": "u",
    }
    assert b"SubscribeURL\nu\nTimestamp\nt\nToken\nk\n" in string_to_sign(confirmation)


@pytest.mark.parametrize("version", ["1", "2"])
def test_signatures_hold_in_both_versions_and_break_when_anything_changes(version):
    message = SIGNER.notification("http://127.0.0.1:1", TOPIC, {"eventType": "Send"}, version)
    key = SIGNER.key.public_key()
    assert signature_holds(key, message)
    assert not signature_holds(key, {**message, "Message": "{}"})
    assert not signature_holds(key, {**message, "SignatureVersion": "2" if version == "1" else "1"})
    assert not signature_holds(key, {**message, "Signature": "not base64!"})
    assert not signature_holds(Signer().key.public_key(), message)
