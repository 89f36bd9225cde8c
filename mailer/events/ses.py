"""Amazon SES's events through Amazon SNS: ``POST /webhooks/ses``.

SES publishes a configuration set's events to an SNS topic, and SNS posts each one to the
subscribed URL as a JSON envelope (sent as ``text/plain``): ``Type``, ``MessageId``,
``TopicArn``, ``Message`` (the SES event, as JSON text), ``Timestamp``, ``SignatureVersion``,
``Signature`` and ``SigningCertURL``. What is checked, in this order, before anything is
stored:

1. the endpoint is off (404) while ``SES_SNS_TOPIC_ARNS`` is empty;
2. ``TopicArn`` must be one of ``SES_SNS_TOPIC_ARNS`` (403), so no certificate is fetched for
   a stranger's post;
3. ``SigningCertURL`` must match ``SNS_URL_PATTERN`` (401): the certificate is fetched (TLS
   verified, with a timeout and a size limit) only from there, once per URL per process;
4. ``Signature`` must be the certificate's RSA signature (PKCS #1 v1.5; SHA-1 for
   ``SignatureVersion`` 1, SHA-256 for 2) of the string SNS documents: each signed field's
   name and value, each followed by a newline, in the order of ``SIGNED_FIELDS`` (401);
5. ``Timestamp`` must be within ``WEBHOOK_MAX_AGE`` (401), as for the other providers.

A ``SubscriptionConfirmation`` of an accepted topic is confirmed by a GET of its
``SubscribeURL``, which must match ``SNS_URL_PATTERN`` too; no other URL in a message is ever
fetched. A ``Notification`` carries one SES event (``eventType``, or ``notificationType`` in
SES's older identity notifications), which becomes one ``Event`` per recipient it lists:

| SES                                      | ours       |
|------------------------------------------|------------|
| Send                                     | accepted   |
| Delivery                                 | delivered  |
| Bounce, ``bounceType: Permanent``        | bounced    |
| Bounce, ``Transient`` or ``Undetermined``| deferred   |
| DeliveryDelay                            | deferred   |
| Complaint                                | complained |
| Reject (a virus: SES sent nothing)       | dropped    |
| Open, Click                              | opened, clicked |
| anything else (Rendering Failure, Subscription, ...) | other |

The mail is found by the ``mail_id`` message tag (``mail.tags.mail_id[0]``), else by
``mail.messageId``; an event's key is the SNS ``MessageId`` and its recipient, so SNS's
retries are repeats.
"""

import base64
import binascii
import json
import logging
import re
import threading
import time
from datetime import UTC, datetime

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import current_app, jsonify

from mailer.api.errors import ApiError
from mailer.events.provider import (
    ACCEPTED,
    CLICKED,
    DROPPED,
    OPENED,
    OTHER,
    PERMANENT,
    TEMPORARY,
    Event,
    Malformed,
    _address,
    _cut,
    _mail_id,
    _object,
    _text,
    bounded_json,
)
from mailer.events.receive import malformed, not_configured, parsed_body, record
from mailer.shapes.service import EventsReceived
from models import BOUNCED, COMPLAINED, DEFERRED, DELIVERED

log = logging.getLogger("mail_service.events")

SES = "ses"
NOTIFICATION, CONFIRMATION = "Notification", "SubscriptionConfirmation"
UNSUBSCRIBED = "UnsubscribeConfirmation"
# The fields each type of SNS message signs, in the order the string to sign lists them
# (SNS's "Verifying the signatures of Amazon SNS messages"; Subject only when present).
SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED_FIELDS[UNSUBSCRIBED] = SIGNED_FIELDS[CONFIRMATION]
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}  # SignatureVersion -> digest
FETCH_TIMEOUT = 5.0  # seconds to fetch a certificate or confirm a subscription
MAX_CERTIFICATE = 64 * 1024  # bytes of a signing certificate we read
FUTURE_SKEW = 300  # seconds an SNS timestamp may be ahead of our clock

SES_TYPES = {
    "Send": ACCEPTED,
    "Delivery": DELIVERED,
    "DeliveryDelay": DEFERRED,
    "Complaint": COMPLAINED,
    "Reject": DROPPED,
    "Open": OPENED,
    "Click": CLICKED,
}
# Where each SES event lists the recipients it is about: (its object, the list, whether the
# list holds {"emailAddress": ...} objects or addresses). Send and Reject concern the whole
# mail: every address of ``mail.destination``.
RECIPIENT_LISTS = {
    "Bounce": ("bounce", "bouncedRecipients", True),
    "Complaint": ("complaint", "complainedRecipients", True),
    "Delivery": ("delivery", "recipients", False),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients", True),
}
OBJECT_OF = {"Reject": "reject", "Send": "send", "Open": "open", "Click": "click"}


class Refused(Exception):
    """An SNS message whose origin does not hold: the field that failed, and why."""

    def __init__(self, status, field, message):
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


# The signature --------------------------------------------------------------------------------


def string_to_sign(message):
    """What SNS signs of a message: ``name\\nvalue\\n`` of each signed field that is present."""
    fields = SIGNED_FIELDS.get(message.get("Type"), ())
    return "".join(
        f"{name}\n{message[name]}\n" for name in fields if message.get(name) is not None
    ).encode()


def signature_holds(public_key, message):
    """Whether ``Signature`` is the key's signature of the message, by its SignatureVersion."""
    digest = HASHES.get(message.get("SignatureVersion"))
    signature = message.get("Signature")
    if digest is None or not isinstance(signature, str) or message.get("Type") not in SIGNED_FIELDS:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, string_to_sign(message), padding.PKCS1v15(), digest())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


class Certificates:
    """The public keys of SNS's signing certificates, fetched once per URL and kept."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}

    def key(self, url):
        """The RSA public key of the certificate at ``url`` (Refused if it cannot be had)."""
        with self.lock:
            cached = self.keys.get(url)
        if cached is None:
            cached = _fetch_key(url)
            with self.lock:
                self.keys[url] = cached
        return cached


def _fetch_key(url):
    """Fetch a PEM certificate (TLS verified, at most ``MAX_CERTIFICATE`` bytes) and read its
    RSA public key; Refused (naming SigningCertURL) if that fails or it is not current."""
    try:
        # No redirect is followed: only an address that matched SNS_URL_PATTERN is fetched.
        with requests.get(
            url, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False
        ) as response:
            response.raise_for_status()
            if response.is_redirect:
                raise ValueError(f"redirected ({response.status_code}), not followed")
            data = response.raw.read(MAX_CERTIFICATE + 1, decode_content=True)
        if len(data) > MAX_CERTIFICATE:
            raise ValueError(f"larger than {MAX_CERTIFICATE} bytes")
        certificate = x509.load_pem_x509_certificate(data)
    except (requests.RequestException, ValueError) as err:
        raise Refused(401, "SigningCertURL", f"No certificate to be had there: {err}") from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refused(401, "SigningCertURL", "The certificate there is not valid now")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused(401, "SigningCertURL", "The certificate there has no RSA key")
    return key


def check_origin(message, config, certificates):
    """Refused unless ``message`` comes from SNS on an accepted topic (steps 2 to 5 above)."""
    if message.get("TopicArn") not in config["SES_SNS_TOPIC_ARNS"]:
        raise Refused(403, "TopicArn", "Not one of SES_SNS_TOPIC_ARNS")
    if message.get("SignatureVersion") not in HASHES:
        raise Refused(401, "SignatureVersion", "Must be 1 or 2")
    url = message.get("SigningCertURL")
    if not allowed_url(url, config):
        raise Refused(401, "SigningCertURL", "Does not match SNS_URL_PATTERN: not fetched")
    if not signature_holds(certificates.key(url), message):
        raise Refused(401, "Signature", "Missing or wrong signature")
    age = time.time() - _seconds(message.get("Timestamp"))
    if not -FUTURE_SKEW <= age <= config["WEBHOOK_MAX_AGE"]:
        raise Refused(401, "Timestamp", "Too old or in the future: refused as a replay")


def allowed_url(url, config):
    """Whether ``url`` is a string that ``SNS_URL_PATTERN`` matches (from its start)."""
    return isinstance(url, str) and re.match(config["SNS_URL_PATTERN"], url) is not None


def _seconds(text):
    """An ISO 8601 timestamp (``2026-01-01T00:00:00.000Z``) as seconds since 1970, or nan."""
    try:
        return _moment_of(text).timestamp()
    except Malformed:
        return float("nan")


def _moment_of(text):
    """An ISO 8601 timestamp as an aware datetime (UTC if it names no zone); Malformed if it
    is none."""
    if not isinstance(text, str):
        raise Malformed("timestamp must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise Malformed("timestamp must be an ISO 8601 time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# SES's events ---------------------------------------------------------------------------------


def ses_events(sns_id, text):
    """The ``Event`` of each recipient an SES event (the JSON text of an SNS ``Message``)
    names; Malformed if it is not SES's."""
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise Malformed("Message must be the JSON text of an SES event")
    name = _text(data.get("eventType")) or _text(data.get("notificationType"))
    mail = data.get("mail")
    if name is None or not isinstance(mail, dict):
        raise Malformed("Message must be an SES event, with eventType and mail")
    detail = _object(data.get(RECIPIENT_LISTS.get(name, (OBJECT_OF.get(name),))[0]))
    kind, severity = SES_TYPES.get(name, OTHER), None
    if name == "Bounce":
        severity = PERMANENT if detail.get("bounceType") == "Permanent" else TEMPORARY
        kind = BOUNCED if severity == PERMANENT else DEFERRED
    elif name == "DeliveryDelay":
        severity = TEMPORARY
    tags = _object(mail.get("tags")).get("mail_id")
    common = {
        "mail_id": _mail_id(tags[0] if isinstance(tags, list) and tags else None),
        "message_id": _text(mail.get("messageId")),
        "occurred_at": _occurred(detail, mail),
        "payload": bounded_json(data),
    }
    return [
        Event(
            provider=SES,
            key=f"{sns_id}:{address or ''}",
            type=kind,
            provider_event=name,
            recipient=address,
            severity=severity,
            reason=reason,
            **common,
        )
        for address, reason in _recipients(name, detail, mail)
    ]


def _recipients(name, detail, mail):
    """``(address, reason)`` of each recipient the event names (one without an address for an
    open or a click, which SES does not attribute)."""
    if name in RECIPIENT_LISTS:
        _, key, objects = RECIPIENT_LISTS[name]
        listed = detail.get(key) if isinstance(detail.get(key), list) else []
        if not objects:
            reason = _text(detail.get("smtpResponse"))
            return [(_address(item), _cut(reason) if reason else None) for item in listed]
        found = []
        for item in listed:
            item = _object(item)
            reason = _text(item.get("diagnosticCode")) or _text(item.get("status"))
            reason = reason or _text(detail.get("complaintFeedbackType"))
            found.append((_address(item.get("emailAddress")), _cut(reason) if reason else None))
        return found
    if name in ("Send", "Reject"):
        reason = _text(detail.get("reason"))
        destination = mail.get("destination") if isinstance(mail.get("destination"), list) else []
        return [(_address(item), _cut(reason) if reason else None) for item in destination]
    return [(None, None)]


def _occurred(detail, mail):
    """When the event happened: its own timestamp, else the mail's."""
    for text in (detail.get("timestamp"), mail.get("timestamp")):
        if isinstance(text, str):
            return _moment_of(text)
    raise Malformed("the SES event must have a timestamp")


# The endpoint ---------------------------------------------------------------------------------


def receive_ses():
    """``POST /webhooks/ses``: one SNS message, checked, then recorded or confirmed."""
    config = current_app.config
    if not config["SES_SNS_TOPIC_ARNS"]:
        raise not_configured("SES_SNS_TOPIC_ARNS")
    message = parsed_body(dict, expected="The body must be an SNS message (a JSON object)")
    try:
        check_origin(message, config, current_app.extensions["sns_certificates"])
    except Refused as err:
        raise ApiError(
            err.status,
            "The SNS message's origin does not hold; nothing was stored",
            [{"field": err.field, "message": err.message}],
        ) from None
    kind = message.get("Type")
    if kind == CONFIRMATION:
        return confirm(message, config)
    if kind != NOTIFICATION:  # an UnsubscribeConfirmation: nothing to do but say so
        log.info("SNS %s for topic %s", kind, message["TopicArn"])
        return received(0)
    try:
        events = ses_events(_text(message.get("MessageId")) or "", message.get("Message"))
    except Malformed as err:
        raise malformed(str(err)) from None
    return record(events)


def confirm(message, config):
    """Confirm a subscription to an accepted topic by a GET of its SubscribeURL (502 if that
    fails, so SNS's retry may confirm it later)."""
    url = message.get("SubscribeURL")
    if not allowed_url(url, config):
        raise ApiError(
            401,
            "The SNS message's origin does not hold; nothing was stored",
            [{"field": "SubscribeURL", "message": "Does not match SNS_URL_PATTERN: not fetched"}],
        )
    try:
        answer = requests.get(url, timeout=FETCH_TIMEOUT, allow_redirects=False)
        answer.raise_for_status()
        if answer.is_redirect:  # only an address that matched SNS_URL_PATTERN is fetched
            raise requests.RequestException(f"redirected ({answer.status_code}), not followed")
    except requests.RequestException as err:
        raise ApiError(
            502,
            "The subscription could not be confirmed",
            [{"field": "SubscribeURL", "message": f"The GET failed: {err}"}],
        ) from None
    log.info("confirmed the SNS subscription to topic %s", message["TopicArn"])
    return received(0)


def received(count):
    """The 200 of a message that recorded no event."""
    return jsonify(EventsReceived.dump({"received": count, "new": 0, "repeats": 0, "unmatched": 0}))


def init_app(app):
    """Register ``/webhooks/ses``; check SNS_URL_PATTERN at start."""
    try:
        re.compile(app.config["SNS_URL_PATTERN"])
    except re.error as err:
        raise ValueError(f"setting SNS_URL_PATTERN: not a regular expression: {err}") from err
    app.extensions["sns_certificates"] = Certificates()
    app.add_url_rule("/webhooks/ses", "webhooks_ses", receive_ses, methods=["POST"])
