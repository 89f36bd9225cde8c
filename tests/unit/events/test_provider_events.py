"""The providers' events read into one shape, and the signatures, without a server."""

import uuid

import pytest

from mailer.events import provider as pe
from mailer.events import signatures


def test_mailgun_failed_is_a_bounce_only_when_permanent():
    def kind(severity):
        return pe.mailgun_event(
            {
                "event": "failed",
                "severity": severity,
                "timestamp": 1.5,
                "recipient": "A@Example.COM",
            },
            "token",
        ).type

    assert (kind("permanent"), kind("temporary"), kind(None)) == ("bounced", "deferred", "deferred")


def test_mailgun_event_fields():
    mail_id = uuid.uuid4()
    event = pe.mailgun_event(
        {
            "event": "failed",
            "severity": "permanent",
            "timestamp": 1521472262.908181,
            "recipient": "Ann@Example.COM",
            "user-variables": {"mail_id": str(mail_id)},
            "message": {"headers": {"message-id": "20130503182626.18666.16540@mg.example.com"}},
            "delivery-status": {"code": 550, "message": "mailbox unknown"},
        },
        "tok",
    )
    assert (event.recipient, event.mail_id, event.message_id, event.reason, event.key) == (
        "Ann@example.com",
        str(mail_id),
        "<20130503182626.18666.16540@mg.example.com>",
        "550 mailbox unknown",
        "tok",
    )
    assert event.occurred_at.year == 2018


def test_sendgrid_event_fields():
    [bounce, blocked] = pe.sendgrid_events(
        [
            {
                "event": "bounce",
                "type": "bounce",
                "sg_event_id": "e1",
                "email": "a@b.com",
                "timestamp": 1,
                "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.0",
                "mail_id": "not-a-uuid",
            },
            {
                "event": "bounce",
                "type": "blocked",
                "sg_event_id": "e2",
                "email": "a@b.com",
                "timestamp": 1,
            },
        ]
    )
    assert (bounce.type, bounce.severity, bounce.message_id, bounce.mail_id) == (
        "bounced",
        "permanent",
        "14c5d75ce93",
        None,
    )
    assert (blocked.type, blocked.severity) == ("deferred", "temporary")


@pytest.mark.parametrize(
    "items",
    [{}, [1], [{"event": "delivered"}], [{"event": "open", "sg_event_id": "x", "timestamp": "no"}]],
)
def test_malformed_sendgrid_batches(items):
    with pytest.raises(pe.Malformed):
        pe.sendgrid_events(items)


def test_payloads_are_bounded():
    small = {"event": "delivered"}
    assert pe.bounded(small) is small
    big = pe.bounded({"event": "delivered", "blob": "x" * 20000})
    assert big["truncated"] and big["size"] > 20000 and len(big["excerpt"]) <= pe.MAX_PAYLOAD


def test_signatures_round_trip_and_refuse_changes():
    key = "mailgun-key"
    signature = signatures.mailgun_signature(key, "1529006854", "tok")
    assert signatures.mailgun_valid(key, "1529006854", "tok", signature)
    assert not signatures.mailgun_valid(key, "1529006855", "tok", signature)
    assert not signatures.mailgun_valid(key, "1529006854", "tok", None)
    private, public = signatures.new_sendgrid_keys()
    loaded = signatures.sendgrid_public_key(public)
    signed = signatures.sendgrid_sign(private, "1600000000", b"[{}]")
    assert signatures.sendgrid_valid(loaded, "1600000000", b"[{}]", signed)
    assert not signatures.sendgrid_valid(loaded, "1600000000", b"[ {}]", signed)
    assert not signatures.sendgrid_valid(loaded, "1600000000", b"[{}]", "not base64!")
    with pytest.raises(signatures.BadKey):
        signatures.sendgrid_public_key("bm90IGEga2V5")


def test_standard_webhooks_signature_of_the_specification():
    # The example of the Standard Webhooks specification.
    key = signatures.webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert (
        signatures.webhook_signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_an_echoed_mail_id_is_the_text_the_database_writes():
    mail_id = uuid.uuid4()
    spellings = [
        str(mail_id),
        str(mail_id).upper(),
        f"{{{mail_id}}}",
        f"urn:uuid:{mail_id}",
        mail_id.hex,
    ]
    assert [pe._mail_id(text) for text in spellings] == [str(mail_id)] * len(spellings)
    assert [pe._mail_id(value) for value in ("not-a-uuid", "", None, 42, [str(mail_id)])] == [
        None
    ] * 5
