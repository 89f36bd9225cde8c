"""Postmark's delivery events: who may post them, and each read into an ``Event``.

Postmark signs nothing: its webhook URL carries HTTP basic auth (``https://user:password@host/
webhooks/postmark``), checked here against ``POSTMARK_WEBHOOK_USERNAME`` and
``POSTMARK_WEBHOOK_PASSWORD`` in constant time (``credentials_problem``). It posts one event
per request, a JSON object whose ``RecordType`` says what happened:

| RecordType         | ours                                                         |
|--------------------|--------------------------------------------------------------|
| Delivery           | delivered                                                    |
| Bounce             | by its ``Type`` (``BOUNCE_TYPES``): bounced, deferred, ...   |
| SpamComplaint      | complained                                                   |
| SubscriptionChange | ``SuppressSending: true``: unsubscribed (bounced, complained |
|                    | when its ``SuppressionReason`` is HardBounce, SpamComplaint); |
|                    | ``false`` (reactivated): other                               |
| Open, Click        | opened, clicked                                              |
| anything else      | other                                                        |

A bounce ``Type`` is permanent (bounced: the address is suppressed) when Postmark says the
address itself is bad; temporary (deferred) when it may take mail later, or when the receiving
server refused Postmark rather than the address (``Blocked``, ``DMARCPolicy``,
``SpamNotification``: another provider may get through, as SendGrid's ``blocked`` is read);
``dropped`` (the recipient bounced, not suppressed) when the message itself was refused.

Our mail id comes back in ``Metadata.mail_id``, Postmark's ``MessageID`` is the one its send
answered. A bounce or complaint has Postmark's ``ID``, its key; the other records have none,
so their key is the record's type, message id, recipient and time, which a retry repeats.
"""

import hmac
from datetime import datetime

from mailer.events.provider import (
    BOUNCED,
    CLICKED,
    COMPLAINED,
    DEFERRED,
    DELIVERED,
    DROPPED,
    OPENED,
    OTHER,
    PERMANENT,
    TEMPORARY,
    UNSUBSCRIBED,
    Event,
    Malformed,
    _address,
    _cut,
    _mail_id,
    _object,
    _text,
    bounded_json,
)

POSTMARK = "postmark"
RECORD_TYPES = {
    "Delivery": DELIVERED,
    "SpamComplaint": COMPLAINED,
    "Open": OPENED,
    "Click": CLICKED,
}
# Postmark's bounce types ("Bounce types" of its Bounces API), by what they do to a recipient.
BOUNCE_TYPES = {
    "HardBounce": BOUNCED,  # unknown user, mailbox not found
    "BadEmailAddress": BOUNCED,  # not a valid email address
    "ManuallyDeactivated": BOUNCED,
    "Unconfirmed": BOUNCED,  # registration not confirmed
    "Transient": DEFERRED,  # delayed, e.g. network troubles
    "SoftBounce": DEFERRED,  # mailbox full, account disabled, over quota
    "DnsError": DEFERRED,  # a temporary DNS error
    "Blocked": DEFERRED,  # blocked from this ISP for content or blacklisting
    "DMARCPolicy": DEFERRED,  # rejected by the sender domain's DMARC policy
    "SpamNotification": DEFERRED,  # blocked by the user or filtered as spam or bulk
    "VirusNotification": DROPPED,  # the message was taken for a virus
    "SMTPApiError": DROPPED,  # Postmark's SMTP API did not accept it
    "TemplateRenderingFailed": DROPPED,
    "SpamComplaint": COMPLAINED,
    "Unsubscribe": UNSUBSCRIBED,
    # Subscribe, AutoResponder, AddressChange, OpenRelayTest, ChallengeVerification,
    # InboundError, Unknown: replies or tests about no delivery of ours (other).
}
SUPPRESSION_REASONS = {"HardBounce": BOUNCED, "SpamComplaint": COMPLAINED}
SEVERITY = {BOUNCED: PERMANENT, DEFERRED: TEMPORARY}
# Where each record type keeps its recipient and its time.
RECIPIENT_FIELDS = ("Email", "Recipient")
TIME_FIELDS = ("DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt")


def credentials_problem(authorization, username, password):
    """Why the request's basic auth (Werkzeug's ``request.authorization``) is not the
    configured one, or None. Both parts are compared, each in constant time."""
    if authorization is None or authorization.type != "basic":
        return "Missing: the webhook URL must carry them, https://user:password@host/..."
    username_ok = hmac.compare_digest((authorization.username or "").encode(), username.encode())
    password_ok = hmac.compare_digest((authorization.password or "").encode(), password.encode())
    return None if username_ok and password_ok else "Wrong user name or password"


def postmark_event(body):
    """The ``Event`` of one Postmark webhook body."""
    record_type = body.get("RecordType")
    if not isinstance(record_type, str) or not record_type:
        raise Malformed("The body must be a Postmark event, with its RecordType")
    kind, name = _kind(record_type, body)
    recipient = next(filter(None, (_address(body.get(f)) for f in RECIPIENT_FIELDS)), None)
    message_id = _text(body.get("MessageID"))
    at, moment = _moment(body)
    return Event(
        provider=POSTMARK,
        key=_key(record_type, body, message_id, recipient, at),
        type=kind,
        provider_event=name,
        recipient=recipient,
        mail_id=_mail_id(_object(body.get("Metadata")).get("mail_id")),
        message_id=message_id,
        severity=SEVERITY.get(kind),
        reason=_reason(body),
        occurred_at=moment,
        payload=bounded_json(body),
    )


def _kind(record_type, body):
    """Our type of the event, and Postmark's name for it (the bounce type for a bounce)."""
    if record_type == "Bounce":
        bounce_type = _text(body.get("Type")) or "Unknown"
        return BOUNCE_TYPES.get(bounce_type, OTHER), bounce_type
    if record_type == "SubscriptionChange":
        if body.get("SuppressSending") is not True:
            return OTHER, record_type
        reason = _text(body.get("SuppressionReason"))
        return SUPPRESSION_REASONS.get(reason, UNSUBSCRIBED), record_type
    return RECORD_TYPES.get(record_type, OTHER), record_type


def _moment(body):
    """The event's time as Postmark wrote it, and as an aware datetime."""
    text = next(filter(None, (_text(body.get(field)) for field in TIME_FIELDS)), None)
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        fields = " or ".join(TIME_FIELDS)
        raise Malformed(f"The event's time ({fields}) must be ISO 8601 with a zone")
    return text, moment


def _key(record_type, body, message_id, recipient, at):
    """Postmark's ``ID`` of a bounce or complaint; for the other records, which have none,
    what a retry of the same record repeats."""
    bounce_id = body.get("ID")
    if isinstance(bounce_id, int) and not isinstance(bounce_id, bool):
        return f"{record_type}:{bounce_id}"
    return f"{record_type}:{message_id}:{recipient}:{at}"


def _reason(body):
    """The receiving server's answer (``Details``) or Postmark's ``Description``."""
    words = _text(body.get("Details")) or _text(body.get("Description"))
    return _cut(words) if words else None
