"""What the SMTP door answers: the reply codes that fit each refusal, with the HTTP API's words.

Each refusal is a ``Refusal``: its reply line and the reason that ``/metrics`` counts it by
(``mail_smtp_messages_refused_total{reason}``). A 4xx asks the client to keep the message and
try again later; a 5xx says this message will never be taken as it is.
"""

from mailer.idempotency import HEADER as IDEMPOTENCY_HEADER

MAX_REPLY = 500  # characters of a reply line (RFC 5321: 512 with the code and CRLF)

QUEUED = "250 2.0.0 Ok: queued as {mail_id}"
RECEIVED = "250 2.0.0 Ok: received as {inbound_id}"  # inbound mail, for INBOUND_DOMAINS
REPORT_READ = "250 2.0.0 Ok: bounce report read"  # a report: applied, not stored
AUTHENTICATED = "235 2.7.0 Authentication successful"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
ENCRYPTION_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"


class Refusal(Exception):
    """A refusal: the reply line to send, and the reason it is counted by."""

    def __init__(self, reply, reason):
        super().__init__(reply)
        self.reply = reply
        self.reason = reason


def _line(code, status, text):
    """A reply line, cut to ``MAX_REPLY`` characters, on one line whatever ``text`` holds."""
    flat = " ".join(text.split())
    return f"{code} {status} {flat}"[:MAX_REPLY]


def _details(errors):
    """The errors of a ``ValidationError`` as the API lists them: ``field: message``, joined."""
    return "; ".join(
        f"{error['field']}: {error['message']}" if error.get("field") else error["message"]
        for error in errors
    )


def invalid(message, errors):
    """A message the API would answer 400 (a missing part, a header with a line break...)."""
    return Refusal(_line(554, "5.6.0", f"{message}: {_details(errors)}"), "invalid")


def too_large(message, errors=()):
    """A message larger than the door takes, or attachments past ``MAX_ATTACHMENT_BYTES``."""
    text = f"{message}: {_details(errors)}" if errors else message
    return Refusal(_line(552, "5.3.4", text), "too_large")


def message_too_large(limit):
    """A message past ``SMTP_MAX_MESSAGE_BYTES``."""
    return too_large(f"The message is larger than the limit of {limit} bytes")


def invalid_address(errors):
    """An address of ``MAIL FROM`` or ``RCPT TO`` that the API would refuse."""
    text = "Invalid address: " + "; ".join(error["message"] for error in errors)
    return Refusal(_line(553, "5.1.3", text), "invalid_address")


def too_many_recipients(limit):
    """One recipient past ``SMTP_MAX_RECIPIENTS``."""
    text = f"Too many recipients: at most {limit} per message"
    return Refusal(_line(452, "4.5.3", text), "too_many_recipients")


def sender_not_allowed(domain):
    """A sender domain the API key may not send from."""
    text = f"This API key may not send from {domain}"
    return Refusal(_line(550, "5.7.1", text), "sender_not_allowed")


def relay_denied():
    """A recipient a session without AUTH may not send to: not in ``INBOUND_DOMAINS`` (no open
    relay), or mixed into a transaction of inbound mail."""
    text = "Relay access denied: without AUTH, mail is taken for this server's own domains only"
    return Refusal(_line(550, "5.7.1", text), "relay_denied")


def not_a_message(message):
    """Inbound mail that is no MIME message at all."""
    return Refusal(_line(554, "5.6.0", message), "invalid")


def scope_missing(scope):
    """An API key without the scope that sending needs."""
    text = f"This API key may not send mail: it lacks the scope {scope}"
    return Refusal(_line(550, "5.7.1", text), "forbidden")


def wrong_key():
    """A key that is not valid (the API's 401)."""
    return Refusal(_line(535, "5.7.8", "The API key is not valid"), "unauthorized")


def throttled(seconds):
    """Too many wrong keys from this client lately (the API's 429)."""
    text = f"Too many failed authentications from this address: try again in {seconds}s"
    return Refusal(_line(421, "4.7.0", text), "throttled")


def limit_spent(field, seconds):
    """A key's ``rate_limit`` or ``daily_quota`` is spent (the API's 429): the client keeps the
    mail and tries again later."""
    what = "rate limit" if field == "rate_limit" else "daily quota"
    text = f"This key's {what} is spent ({field}): try again in {seconds}s"
    return Refusal(_line(451, "4.7.1", text), "limit_spent")


def database_unavailable():
    """The mail could not be stored: the client keeps it and tries again (the API's 503)."""
    text = "The database is unavailable; try again shortly"
    return Refusal(_line(451, "4.3.0", text), "database_unavailable")


def internal_error():
    """Something unexpected: logged; the client keeps the mail and tries again."""
    return Refusal(_line(451, "4.3.0", "Internal error; it has been logged"), "internal_error")


def idempotency_conflict(header):
    """An ``Idempotency-Key`` (or ``Message-ID``) that came before with another message."""
    text = f"This {header} was used with a different message; use a new one for a new message"
    return Refusal(_line(554, "5.6.0", text), "idempotency_conflict")


def invalid_idempotency_key(message):
    """An ``Idempotency-Key`` header the API would refuse."""
    return Refusal(_line(554, "5.6.0", f"{IDEMPOTENCY_HEADER}: {message}"), "invalid")
