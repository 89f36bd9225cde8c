"""A message stored as ``POST /mail`` stores a request: validated (rendered from its template
first, if it names one), with the sender's domain checked against the key's, and committed in
one statement (``submit.enqueue_many``) before the door answers ``250``.

A retry makes no second mail: with an ``Idempotency-Key`` header as over HTTP, and otherwise by
its ``Message-ID``, kept as the key ``smtp-message-id:<Message-ID>`` for ``IDEMPOTENCY_TTL``
in the same scope (a client that lost the ``250`` sends the same message again). Runs in an app
context of the door (``server.Door.run``): ``transaction`` and the templates read its settings.
"""

import hashlib
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass

from flask import current_app
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError

from mailer.api import templated
from mailer.database import transaction
from mailer.idempotency import HEADER, INVALID_KEY, VALID_KEY, fingerprint_of
from mailer.principals import Principal
from mailer.queue import keys, submit
from mailer.smtp import message, replies
from mailer.validation.mail import ValidationError, validate_mail

log = logging.getLogger("mail_service.smtp")

MESSAGE_ID_KEY = "smtp-message-id:"  # the Idempotency-Key a Message-ID is kept as
FINGERPRINT_PATH = "smtp"  # what the fingerprint names as the request's path
ACCEPTED = 250  # the status kept with the key: the door's answer


@dataclass(frozen=True)
class Login:
    """Whom a session acts for: the ``Principal`` of its key, and its Idempotency-Key scope."""

    principal: Principal
    scope: str


def store(login, mail_from, rcpt_tos, content):
    """Store the message ``content`` of the envelope (``mail_from``, ``rcpt_tos``) for
    ``login``; the mail's id. ``replies.Refusal`` for what the API would refuse, and for a
    database that cannot take it (451: the client tries again)."""
    try:
        received = message.parse(content, mail_from, rcpt_tos)
        clean = validated(received.request, login.principal.tenant)
    except ValidationError as err:
        raise refusal(err) from None
    check_sender(login.principal, clean["from_address"])
    clean["source"] = submit.SMTP
    with database_refusals():
        charge(login.principal)
        owner = submit.Owner(login.principal.tenant, login.principal.key_id, login.principal.test)
        return enqueue(clean, idempotency(login, received, clean), owner)


@contextmanager
def database_refusals():
    """The block's database failures as the door's replies: 451 4.3.0 for a database that
    cannot be reached (the client keeps the message and tries again), 451 and a logged
    traceback for any other."""
    try:
        yield
    except (OperationalError, InterfaceError, TimeoutError) as err:
        log.error("database unavailable: %s", type(err).__name__)
        raise replies.database_unavailable() from None
    except DBAPIError as err:
        if err.connection_invalidated:
            log.error("database unavailable: %s", type(err).__name__)
            raise replies.database_unavailable() from None
        log.exception("database error storing an SMTP message")
        raise replies.internal_error() from None


def validated(request, tenant):
    """The clean mail of a parsed message, rendered from its template (of ``tenant``'s) if it
    names one; ValidationError as ``POST /mail`` raises it."""
    config = current_app.config
    bounds = {
        "max_recipients": config["MAX_RECIPIENTS"],
        "max_attachment_bytes": config["MAX_ATTACHMENT_BYTES"],
        "max_attachments": config["MAX_ATTACHMENTS"],
        "max_schedule_days": config["MAX_SCHEDULE_DAYS"],
    }
    if not templated.uses_template(request):
        return validate_mail(request, **bounds)
    [(_, clean, errors, status)] = templated.validate_all([request], bounds, tenant)
    if errors:
        raise ValidationError(errors, status=status)
    return clean


def refusal(err):
    """The reply of a ``ValidationError``: 552 for what is too large, else 554."""
    if err.status == 413:
        return replies.too_large(err.message, err.errors)
    return replies.invalid(err.message, err.errors)


def sender_domain(address):
    """The domain of a clean sender (``Name <local@domain>`` or ``local@domain``), lower-case."""
    return address.rstrip(">").rpartition("@")[2].lower()


def charge(principal):
    """Count the mail against its key's ``rate_limit`` and ``daily_quota`` (in the database, as
    the API counts them); 451 4.7.1 once one is spent."""
    if not principal.limited:
        return
    with transaction() as conn:
        refused = keys.take(conn, principal.key_id, 1, principal.rate_limit, principal.daily_quota)
    if refused is not None:
        raise replies.limit_spent(refused.field, refused.retry_after)


def check_sender(principal, address):
    """Refuse (550 5.7.1) a sender whose domain the key may not send from."""
    allowed = principal.allowed_from_domains
    if allowed and address and sender_domain(address) not in {d.lower() for d in allowed}:
        raise replies.sender_not_allowed(sender_domain(address))


def idempotency(login, received, clean):
    """The ``Idempotency`` of a message: its ``Idempotency-Key``, else its ``Message-ID``, else
    None (a message without either is stored each time it is sent)."""
    key = received.idempotency_key
    if key is not None and not VALID_KEY.match(key):
        raise replies.invalid_idempotency_key(INVALID_KEY)
    if key is None and received.message_id:
        key = message_id_key(received.message_id)
    if key is None:
        return None
    ttl = current_app.config["IDEMPOTENCY_TTL"]
    return submit.Idempotency(login.scope, key, fingerprint_of(FINGERPRINT_PATH, clean), ttl)


def message_id_key(message_id):
    """The Idempotency-Key a ``Message-ID`` is kept as: itself, or its digest if it does not
    fit a key (too long, or not printable ASCII)."""
    key = MESSAGE_ID_KEY + message_id
    if VALID_KEY.match(key):
        return key
    return MESSAGE_ID_KEY + "sha256:" + hashlib.sha256(message_id.encode()).hexdigest()


def enqueue(clean, key, owner):
    """Store ``owner``'s mail (with its key): its id, or the first one's for a repeated key."""

    def answer(rows):
        return ACCEPTED, json.dumps({"id": rows[0]["id"]})

    try:
        result = submit.enqueue_many(
            transaction, [clean], key, answer if key else None, owner=owner
        )
    except submit.IdempotencyConflict:
        header = HEADER if not key.key.startswith(MESSAGE_ID_KEY) else "Message-ID"
        raise replies.idempotency_conflict(header) from None
    if isinstance(result, submit.Replay):
        return result.response["id"]
    return result[0]["id"]
