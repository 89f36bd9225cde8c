"""Webhook signatures: the providers' (checked on the way in) and ours (made on the way out).

- **Mailgun** signs each event with the webhook signing key: the hex HMAC-SHA256 of
  ``timestamp + token`` (the two strings joined), in the body's ``signature`` object.
- **SendGrid** signs each batch with ECDSA P-256 and SHA-256: the base64 DER signature in
  ``X-Twilio-Email-Event-Webhook-Signature`` covers the value of
  ``X-Twilio-Email-Event-Webhook-Timestamp`` followed by the **raw** body (JSON parsed and
  written again has other bytes, and fails). The public key is base64 DER, as SendGrid shows it.
- **Standard Webhooks** (our client webhooks): ``webhook-signature: v1,<base64 HMAC-SHA256 of
  "{id}.{timestamp}.{body}">``, the key being the base64 after ``whsec_`` in the secret, so
  that clients verify them with the existing libraries.

Every comparison is in constant time. The signing half of the providers' schemes is here too,
for the sandbox and the tests, which play the providers' part.
"""

import base64
import binascii
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_private_key,
    load_der_public_key,
)

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SECRET_PREFIX = "whsec_"
ECDSA = ec.ECDSA(hashes.SHA256())


class BadKey(ValueError):
    """A configured key that cannot be read (the message says which setting and why)."""


# Mailgun ------------------------------------------------------------------------------------


def mailgun_signature(key, timestamp, token):
    """Mailgun's signature of an event: hex HMAC-SHA256 of ``timestamp + token``."""
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_valid(key, timestamp, token, signature):
    """Whether ``signature`` is Mailgun's for this timestamp and token (all three strings)."""
    if not all(isinstance(value, str) for value in (timestamp, token, signature)):
        return False
    expected = mailgun_signature(key, timestamp, token)
    return hmac.compare_digest(expected.encode(), signature.encode())


# SendGrid -----------------------------------------------------------------------------------


def sendgrid_public_key(text):
    """The P-256 public key of SENDGRID_WEBHOOK_PUBLIC_KEY (base64 DER SubjectPublicKeyInfo)."""
    try:
        key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as err:
        raise BadKey(f"SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key: {err}") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BadKey("SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key")
    return key


def sendgrid_valid(public_key, timestamp, body, signature):
    """Whether ``signature`` (base64) signs ``timestamp`` followed by the raw ``body`` bytes."""
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True), timestamp.encode() + body, ECDSA
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def new_sendgrid_keys():
    """A new key pair as text: (private key, base64 DER PKCS#8; public key, as SendGrid shows)."""
    private = ec.generate_private_key(ec.SECP256R1())
    private_der = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    public_der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(private_der).decode(), base64.b64encode(public_der).decode()


def sendgrid_sign(private_key_text, timestamp, body):
    """SendGrid's signature (base64) of a batch, with a private key of ``new_sendgrid_keys``."""
    private = load_der_private_key(base64.b64decode(private_key_text), password=None)
    return base64.b64encode(private.sign(timestamp.encode() + body, ECDSA)).decode()


# Standard Webhooks (ours) -------------------------------------------------------------------


def webhook_key(secret):
    """The HMAC key of WEBHOOK_SECRET: the base64 after ``whsec_`` (the prefix is optional)."""
    text = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadKey("WEBHOOK_SECRET must be whsec_ followed by base64") from err
    if len(key) < 16:
        raise BadKey("WEBHOOK_SECRET is too short: use at least 16 random bytes")
    return key


def new_webhook_secret():
    """A new WEBHOOK_SECRET: ``whsec_`` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_signature(key, message_id, timestamp, body):
    """The ``webhook-signature`` value of one delivery: ``v1,`` and the base64 HMAC-SHA256."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_headers(key, message_id, timestamp, body):
    """The three headers of a Standard Webhooks delivery of ``body`` (bytes)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(key, message_id, timestamp, body),
    }
