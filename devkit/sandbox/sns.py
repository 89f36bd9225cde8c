"""Amazon SNS as the sandbox plays it: signed messages about SES's events, and their certificate.

At start the sandbox makes an RSA key and a self-signed certificate for it (``Signer``), and
serves the certificate at ``/_sandbox/sns/cert.pem``: that URL is every message's
``SigningCertURL``, so a service whose ``SNS_URL_PATTERN`` allows the sandbox's address checks
the signatures as it checks Amazon's. A message is signed as SNS signs it (PKCS #1 v1.5 over
``mailer.events.ses.string_to_sign``; SHA-1 for ``SignatureVersion`` 1, SHA-256 for 2).

``/_sandbox/sns/confirm`` is the ``SubscribeURL`` of the subscription confirmations the sandbox
posts: a GET there is recorded as the topic's confirmation.
"""

import base64
import json
import secrets
import threading
import uuid
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mailer.events.ses import CONFIRMATION, HASHES, NOTIFICATION, string_to_sign

CERT_PATH = "/_sandbox/sns/cert.pem"
CONFIRM_PATH = "/_sandbox/sns/confirm"
CERT_DAYS = 365  # the self-signed certificate's validity


def now_iso():
    """SNS's timestamp: UTC, milliseconds, ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Signer:
    """An RSA key with a self-signed certificate, signing SNS messages; and the confirmations
    received at ``CONFIRM_PATH``."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.sandbox.invalid")])
        now = datetime.now(UTC)
        self.certificate_pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=CERT_DAYS))
            .sign(self.key, hashes.SHA256())
            .public_bytes(Encoding.PEM)
        )
        self.lock = threading.Lock()
        self.confirmed = []  # {"topic", "token"} of each GET of the confirmation URL

    def sign(self, message, version="1"):
        """``message`` (an SNS message without its signature) signed: SignatureVersion and
        Signature set."""
        message = {**message, "SignatureVersion": version}
        digest = HASHES[version]()
        signature = self.key.sign(string_to_sign(message), padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def notification(self, base_url, topic_arn, event, version="1", cert_url=None):
        """A signed SNS Notification carrying the SES ``event`` (a dict)."""
        message = {
            "Type": NOTIFICATION,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": json.dumps(event),
            "Timestamp": now_iso(),
            "SigningCertURL": cert_url or f"{base_url}{CERT_PATH}",
            "UnsubscribeURL": f"{base_url}/_sandbox/sns/unsubscribe",
        }
        return self.sign(message, version)

    def confirmation(self, base_url, topic_arn, version="1", subscribe_url=None):
        """A signed SNS SubscriptionConfirmation for ``topic_arn``."""
        token = secrets.token_hex(32)
        message = {
            "Type": CONFIRMATION,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": f"You have chosen to subscribe to the topic {topic_arn}.",
            "SubscribeURL": subscribe_url
            or f"{base_url}{CONFIRM_PATH}?TopicArn={topic_arn}&Token={token}",
            "Timestamp": now_iso(),
            "SigningCertURL": f"{base_url}{CERT_PATH}",
        }
        return self.sign(message, version)

    def confirm(self, topic, token):
        """Record a GET of the confirmation URL."""
        with self.lock:
            self.confirmed.append({"topic": topic, "token": token})

    def forget(self):
        """Forget the confirmations received (the key and certificate stay)."""
        with self.lock:
            self.confirmed = []

    def confirmations(self):
        """The confirmations received so far."""
        with self.lock:
            return list(self.confirmed)


def ses_event(record, destination, kind, recipients, extra=None):
    """An SES event of ``kind`` (Delivery, Bounce, ...) about ``recipients`` of ``record`` (an
    accepted message to ``destination``), as SES publishes it to SNS: the mail, with its tags,
    and the event's own object."""
    tags = {name: [value] for name, value in record["custom"].items()}
    if record.get("configuration_set"):
        tags["ses:configuration-set"] = [record["configuration_set"]]
    event = {
        "eventType": kind,
        "mail": {
            "timestamp": record["received_at"],
            "source": record["from"],
            "sendingAccountId": "123456789012",
            "messageId": record["id"],
            "destination": destination,
            "headersTruncated": False,
            "commonHeaders": {"from": [record["from"]], "subject": record["subject"]},
            "tags": tags,
        },
    }
    detail = {"timestamp": now_iso(), **(extra or {})}
    if kind == "Delivery":
        detail.update(recipients=recipients, smtpResponse="250 2.6.0 Message received")
    elif kind == "Bounce":
        detail.setdefault("bouncedRecipients", [_failed(address) for address in recipients])
    elif kind == "DeliveryDelay":
        detail.setdefault("delayedRecipients", [_delayed(address) for address in recipients])
    elif kind == "Complaint":
        detail.update(
            complainedRecipients=[{"emailAddress": a} for a in recipients],
            complaintFeedbackType="abuse",
        )
    event[OBJECTS[kind]] = detail
    return event


OBJECTS = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "DeliveryDelay": "deliveryDelay",
    "Complaint": "complaint",
    "Reject": "reject",
}


def _delayed(address):
    """A delayed recipient as SES lists it."""
    return {
        "emailAddress": address,
        "status": "4.4.1",
        "diagnosticCode": "smtp; 421 4.4.1 Try again later",
    }


def _failed(address):
    """A bounced recipient as SES lists it."""
    return {
        "emailAddress": address,
        "action": "failed",
        "status": "5.1.1",
        "diagnosticCode": "smtp; 550 5.1.1 The email account does not exist",
    }


# What each outcome of the sandbox's events is, as SES events: (event type, extra fields).
SES_EVENTS = {
    "deliver": [("Delivery", {})],
    "bounce": [("Bounce", {"bounceType": "Permanent", "bounceSubType": "General"})],
    "defer": [("DeliveryDelay", {"delayType": "TransientCommunicationFailure"})],
    "complain": [("Delivery", {}), ("Complaint", {})],
    "none": [],
}
