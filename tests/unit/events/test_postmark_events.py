"""Postmark's webhook bodies read into our events, and its basic auth, without a server."""

import uuid
from types import SimpleNamespace

import pytest

from mailer.events.postmark import credentials_problem, postmark_event
from mailer.events.provider import Malformed

MAIL_ID = str(uuid.uuid4())
AT = "2019-11-05T16:33:54.9070259Z"


def bounce(bounce_type, **extra):
    """A Postmark Bounce record of ``bounce_type``."""
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": bounce_type,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": "Ann@Example.COM",
        "BouncedAt": AT,
        "Details": "smtp;550 5.1.1 mailbox unknown",
        "Metadata": {"mail_id": MAIL_ID},
        **extra,
    }


def test_a_delivery():
    event = postmark_event(
        {
            "RecordType": "Delivery",
            "MessageID": "m-1",
            "Recipient": "ann@example.com",
            "DeliveredAt": AT,
            "Details": "smtp;250 2.0.0 OK",
            "Metadata": {"mail_id": MAIL_ID, "user": "42"},
        }
    )
    assert (event.provider, event.type, event.recipient, event.mail_id, event.message_id) == (
        "postmark",
        "delivered",
        "ann@example.com",
        MAIL_ID,
        "m-1",
    )
    assert event.key == f"Delivery:m-1:ann@example.com:{AT}"
    assert event.occurred_at.year == 2019 and event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    "bounce_type, kind, severity",
    [
        ("HardBounce", "bounced", "permanent"),
        ("BadEmailAddress", "bounced", "permanent"),
        ("SoftBounce", "deferred", "temporary"),
        ("Transient", "deferred", "temporary"),
        ("DnsError", "deferred", "temporary"),
        ("Blocked", "deferred", "temporary"),
        ("VirusNotification", "dropped", None),
        ("AutoResponder", "other", None),
        ("SomethingNew", "other", None),
    ],
)
def test_a_bounce_by_its_type(bounce_type, kind, severity):
    event = postmark_event(bounce(bounce_type))
    assert (event.type, event.severity, event.provider_event) == (kind, severity, bounce_type)
    assert event.recipient == "Ann@example.com"
    assert event.key == "Bounce:4323372036854775807"
    assert event.reason == "smtp;550 5.1.1 mailbox unknown"


def test_a_spam_complaint():
    event = postmark_event({**bounce("SpamComplaint"), "RecordType": "SpamComplaint"})
    assert (event.type, event.key) == ("complained", "SpamComplaint:4323372036854775807")


@pytest.mark.parametrize(
    "suppress, reason, kind",
    [
        (True, "ManualSuppression", "unsubscribed"),
        (True, "HardBounce", "bounced"),
        (True, "SpamComplaint", "complained"),
        (False, None, "other"),
    ],
)
def test_a_subscription_change(suppress, reason, kind):
    body = {
        "RecordType": "SubscriptionChange",
        "MessageID": "m-1",
        "Recipient": "ann@example.com",
        "ChangedAt": "2020-02-01T10:53:34.416071Z",
        "SuppressSending": suppress,
        "SuppressionReason": reason,
    }
    assert postmark_event(body).type == kind


def test_opens_and_clicks():
    common = {"MessageID": "m", "Recipient": "a@example.com", "ReceivedAt": AT}
    assert postmark_event({**common, "RecordType": "Open"}).type == "opened"
    assert postmark_event({**common, "RecordType": "Click"}).type == "clicked"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"RecordType": 3},
        {"RecordType": "Delivery", "Recipient": "a@example.com"},
        {"RecordType": "Delivery", "DeliveredAt": "yesterday"},
        {"RecordType": "Delivery", "DeliveredAt": "2019-11-05T16:33:54"},
    ],
)
def test_a_body_that_is_not_postmarks_is_malformed(body):
    with pytest.raises(Malformed):
        postmark_event(body)


def auth(username, password, kind="basic"):
    """What Werkzeug's ``request.authorization`` gives for a basic auth header."""
    return SimpleNamespace(type=kind, username=username, password=password)


def test_basic_auth_must_match_both_parts():
    assert credentials_problem(auth("pm", "secret"), "pm", "secret") is None
    assert "Wrong" in credentials_problem(auth("pm", "guess"), "pm", "secret")
    assert "Wrong" in credentials_problem(auth("other", "secret"), "pm", "secret")
    assert "Missing" in credentials_problem(None, "pm", "secret")
    assert "Missing" in credentials_problem(auth(None, None, "bearer"), "pm", "secret")
