"""The providers' delivery events, read into one shape (``Event``) once their signature passed.

Mailgun posts one event per request, ``{"signature": {...}, "event-data": {...}}``; SendGrid
posts a JSON array of events. Each becomes an ``Event`` with one of ``EVENT_TYPES``:

| ours         | Mailgun                          | SendGrid                       |
|--------------|----------------------------------|--------------------------------|
| accepted     | accepted                         | processed                      |
| delivered    | delivered                        | delivered                      |
| deferred     | failed, ``severity: temporary``  | deferred; bounce ``type: blocked`` |
| bounced      | failed, ``severity: permanent``  | bounce ``type: bounce``        |
| dropped      | rejected                         | dropped                        |
| complained   | complained                       | spamreport                     |
| unsubscribed | unsubscribed                     | unsubscribe, group_unsubscribe |
| opened       | opened                           | open                           |
| clicked      | clicked                          | click                          |
| other        | anything else                    | anything else (group_resubscribe, ...) |

Mailgun's ``failed`` is a bounce only when its severity is permanent: a temporary failure is a
deferral that Mailgun retries (django-anymail's issue 130 took both for bounces). Mailgun's
``rejected`` carries no ``recipient``: its address is the message's ``To`` header, and its reason
is in ``reject.reason`` (as django-anymail reads them). What each type
does to a recipient, to the suppression list and to the client's webhooks is in the tables at the
end. A body that is not what the provider sends raises ``Malformed`` (the endpoint's 400).

A SendGrid batch holds a thousand events: each is read once, into a tuple (``Event`` is a
NamedTuple, much cheaper to build than a frozen dataclass), with its payload written once as the
JSON text that is stored.
"""

import functools
import json
import math
import re
import uuid
from datetime import UTC, datetime
from email.utils import getaddresses
from json.encoder import c_make_encoder, encode_basestring
from typing import NamedTuple

from mailer.validation.addresses import bare_address
from models import BOUNCED, COMPLAINED, DEFERRED, DELIVERED, UNSUBSCRIBED

MAILGUN, SENDGRID = "mailgun", "sendgrid"
ACCEPTED, DROPPED, OPENED, CLICKED, OTHER = "accepted", "dropped", "opened", "clicked", "other"
EVENT_TYPES = (
    ACCEPTED,
    DELIVERED,
    DEFERRED,
    BOUNCED,
    DROPPED,
    COMPLAINED,
    UNSUBSCRIBED,
    OPENED,
    CLICKED,
    OTHER,
)
PERMANENT, TEMPORARY = "permanent", "temporary"
MAX_PAYLOAD = 8192  # bytes of an event's JSON that we keep; a larger one is cut (an excerpt)
MAX_REASON = 1000  # characters of a provider's reason that we keep
NUMBERS = (int, float)  # a timestamp's types (a tuple: ``int | float`` is built at every call)
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Compact JSON, as a payload is measured and stored (one encoder for every event).
COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# The C encoder that COMPACT.encode builds anew for every call, built once, since building it
# is a large part of encoding one small event (None where the json module has no C speedups).
# No check for circular references: a payload comes from json.loads.
_C_COMPACT = c_make_encoder and c_make_encoder(
    None, COMPACT.default, encode_basestring, None, ":", ",", False, False, True
)

MAILGUN_TYPES = {
    "accepted": ACCEPTED,
    "delivered": DELIVERED,
    "rejected": DROPPED,
    "complained": COMPLAINED,
    "unsubscribed": UNSUBSCRIBED,
    "opened": OPENED,
    "clicked": CLICKED,
}
SENDGRID_TYPES = {
    "processed": ACCEPTED,
    "delivered": DELIVERED,
    "deferred": DEFERRED,
    "dropped": DROPPED,
    "spamreport": COMPLAINED,
    "unsubscribe": UNSUBSCRIBED,
    # An unsubscribe from one of the sender's unsubscribe groups (ASM): we have no groups, so
    # it is an unsubscribe (as django-anymail reads it).
    "group_unsubscribe": UNSUBSCRIBED,
    "open": OPENED,
    "click": CLICKED,
}

# What an event type does to its recipient's status, to the suppression list (the reason), and
# which client webhook it raises when it moves the recipient.
RECIPIENT_STATUS = {
    DELIVERED: DELIVERED,
    DEFERRED: DEFERRED,
    BOUNCED: BOUNCED,
    DROPPED: BOUNCED,
    COMPLAINED: COMPLAINED,
    UNSUBSCRIBED: UNSUBSCRIBED,
}
SUPPRESSES = {BOUNCED: "bounce", COMPLAINED: "complaint", UNSUBSCRIBED: "unsubscribe"}
CLIENT_EVENT = {DELIVERED: "mail.delivered", BOUNCED: "mail.bounced", COMPLAINED: "mail.complained"}


class Malformed(ValueError):
    """The body is not what the provider sends."""


class Event(NamedTuple):
    """One provider event, normalised."""

    provider: str
    key: str  # the provider's id of this report: a repeat has the same
    type: str  # one of EVENT_TYPES
    provider_event: str  # the provider's own name for it
    recipient: str | None  # bare address
    mail_id: str | None  # ours, echoed back by the provider, as the database writes it
    message_id: str | None  # as the send's answer gave it (email.provider_message_id)
    severity: str | None
    reason: str | None
    occurred_at: datetime
    payload: str  # the JSON text stored: the event as received, or its excerpt (``bounded``)


def mailgun_event(data, token):
    """The ``Event`` of Mailgun's ``event-data`` (its signature's ``token`` is the key)."""
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise Malformed("event-data must be an object with an event name")
    name, severity = data["event"], _text(data.get("severity"))
    kind = MAILGUN_TYPES.get(name, OTHER)
    if name == "failed":
        kind = BOUNCED if severity == PERMANENT else DEFERRED
    headers = _object(_object(data.get("message")).get("headers"))
    message_id = _text(headers.get("message-id"))
    recipient = _address(data.get("recipient"))
    if recipient is None and name == "rejected":
        recipient = _only_address(headers.get("to"))
    return Event(
        provider=MAILGUN,
        key=token,
        type=kind,
        provider_event=name,
        recipient=recipient,
        mail_id=_mail_id(_object(data.get("user-variables")).get("mail_id")),
        message_id=f"<{message_id}>" if message_id else None,  # the send answered with <>
        severity=severity,
        reason=_mailgun_reason(data),
        occurred_at=_moment(data.get("timestamp")),
        payload=bounded_json(data),
    )


def _mailgun_reason(data):
    """The SMTP answer of a failed delivery, e.g. ``550 5.1.1 mailbox unknown``."""
    status = _object(data.get("delivery-status"))
    words = _text(status.get("description")) or _text(status.get("message"))
    code = status.get("code")
    rejected = _text(_object(data.get("reject")).get("reason"))
    parts = [
        str(code) if isinstance(code, int) and code else None,
        words,
        None if words else _text(data.get("reason")) or rejected,
    ]
    return _cut(" ".join(part for part in parts if part)) or None


def sendgrid_events(items):
    """The ``Event`` of each item of SendGrid's batch (a JSON array of objects)."""
    if not isinstance(items, list):
        raise Malformed("the body must be a JSON array of events")
    return [_sendgrid_event(item, index) for index, item in enumerate(items)]


def _sendgrid_event(item, index):
    """One SendGrid event; Malformed names its position in the batch."""
    if not isinstance(item, dict):
        raise Malformed(f"event [{index}] must be an object with event and sg_event_id")
    name, key = item.get("event"), item.get("sg_event_id")
    if not (_named(name) and _named(key)):
        raise Malformed(f"event [{index}] must be an object with event and sg_event_id")
    kind, severity = SENDGRID_TYPES.get(name, OTHER), None
    if name == "bounce":  # type "bounce" is permanent; "blocked" is temporary
        severity = TEMPORARY if _text(item.get("type")) == "blocked" else PERMANENT
        kind = DEFERRED if severity == TEMPORARY else BOUNCED
    sg_message_id = _text(item.get("sg_message_id"))
    reason = _text(item.get("reason")) or _text(item.get("response"))
    # The fields in their order (keywords cost twice as much, a thousand times a batch):
    # sg_message_id is the send's X-Message-Id, a dot, and a suffix of SendGrid's.
    return Event(
        SENDGRID,
        key,
        kind,
        name,
        _address(item.get("email")),
        _mail_id(item.get("mail_id")),
        sg_message_id.split(".", 1)[0] if sg_message_id else None,
        severity,
        _cut(reason) if reason else None,
        _moment(item.get("timestamp")),
        bounded_json(item),
    )


def _named(value):
    """Whether ``value`` is a non-empty string (an event's name, a provider's key)."""
    return isinstance(value, str) and value != ""


def bounded(payload):
    """``payload`` as stored: itself up to ``MAX_PAYLOAD`` bytes of JSON, else an excerpt."""
    text = COMPACT.encode(payload)
    return payload if _fits(text) else _excerpt(text)


def bounded_json(payload):
    """``bounded(payload)`` as the JSON text that is stored, encoding ``payload`` once."""
    text = _compact(payload)
    return text if _fits(text) else COMPACT.encode(_excerpt(text))


def _compact(payload):
    """``COMPACT.encode(payload)`` of a JSON object, with the encoder built once."""
    if _C_COMPACT is None or not isinstance(payload, dict):
        return COMPACT.encode(payload)
    return "".join(_C_COMPACT(payload, 0))


def _fits(text):
    """Whether a payload's JSON is stored whole: up to ``MAX_PAYLOAD`` bytes, and no NUL
    (jsonb cannot hold one). Encoding it also refuses a lone surrogate, as storing it would
    (ASCII text, most payloads, has as many bytes as characters and no surrogate)."""
    size = len(text) if text.isascii() else len(text.encode())
    return size <= MAX_PAYLOAD and "\\u0000" not in text


def _excerpt(text):
    """What is stored of a payload that does not fit: its size and its first bytes."""
    data = text.encode()
    excerpt = data[: MAX_PAYLOAD // 2].decode("utf-8", "ignore").replace("\\u0000", "")
    return {"truncated": True, "size": len(data), "excerpt": excerpt}


def _moment(value):
    """A provider's Unix timestamp (seconds, maybe with a fraction) as an aware datetime."""
    if isinstance(value, bool) or not isinstance(value, NUMBERS) or not math.isfinite(value):
        raise Malformed("timestamp must be a number of seconds since 1970")
    return _datetime_of(value)


@functools.lru_cache(maxsize=4096)
def _datetime_of(seconds):
    """The aware datetime of a finite number of seconds since 1970. Cached: a batch's events
    share a few seconds (and the statement then writes each datetime as text once)."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise Malformed("timestamp is out of range") from err


def _address(value):
    """A recipient's bare address, or None."""
    text = _text(value)
    return bare_address(text) if text and "@" in text else None


def _only_address(header):
    """The bare address of a header that names exactly one (``"Name <a@b>"``), or None: of a
    header naming several, which one an event means cannot be told."""
    text = _text(header)
    if text is None:
        return None
    found = [address for _, address in getaddresses([text]) if address]
    return _address(found[0]) if len(found) == 1 else None


def _mail_id(value):
    """Our mail id echoed back, as the text of its UUID that the database writes (lower case,
    hyphenated), or None if it is not one. That is how we send it: such a text is taken as it
    is, without a UUID object to build and turn back into text; any other spelling of a UUID
    is read by ``uuid.UUID``."""
    if not isinstance(value, str):
        return None
    if CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _object(value):
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _text(value):
    """A non-empty string without NULs (PostgreSQL text cannot hold one), or None."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "") or None


def _cut(text):
    """A reason cut to ``MAX_REASON`` characters."""
    return text[:MAX_REASON]
