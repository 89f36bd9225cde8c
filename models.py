"""The database tables: mail, its attachments and delivery attempts, idempotency keys, each
provider's shared health, and what follows the hand-off: recipients, the providers' events, the
suppression list and the outbox of client webhooks with their attempts; for operators, the
ledger of mail counts by status and a heartbeat row per worker.

The schema itself is owned by the Alembic migrations in ``migrations/``; these classes describe
it to SQLAlchemy. Timestamps are stored in UTC with a time zone wherever the database has one.
"""

import uuid
from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Objects keep their values after a commit: the API answers from what it just stored instead of
# reading it back, which after a committed insert could only fail.
db = SQLAlchemy(session_options={"expire_on_commit": False})
# A test that rolls everything back sets its own transaction here (see
# mailer.api.resources.transaction);
# set to None so that reading it is a plain attribute, not Flask-SQLAlchemy's __getattr__.
db.test_transaction = None

# Statuses of a mail, the one definition that the API, the admin and the spec read. A mail is
# claimed from QUEUED (or SCHEDULED, once due) into SENDING under a lease and leaves SENDING for
# SENT, FAILED or (to retry later) QUEUED again; SUPPRESSED when every recipient is on the
# suppression list (no provider is called). QUEUED and SCHEDULED mail can be CANCELLED. After
# the hand-off the providers' events move SENT mail on: DELIVERED once every recipient is,
# BOUNCED or COMPLAINED as soon as one recipient bounced or complained.
QUEUED, SCHEDULED, SENDING, SENT, FAILED, CANCELLED = (
    "queued",
    "scheduled",
    "sending",
    "sent",
    "failed",
    "cancelled",
)
DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED = "delivered", "bounced", "complained", "suppressed"
STATUSES = (
    QUEUED,
    SCHEDULED,
    SENDING,
    SENT,
    DELIVERED,
    BOUNCED,
    COMPLAINED,
    SUPPRESSED,
    FAILED,
    CANCELLED,
)
WAITING = (QUEUED, SCHEDULED)  # not yet taken by a worker: may still be cancelled
FINISHED = (SENT, DELIVERED, BOUNCED, COMPLAINED, SUPPRESSED, FAILED, CANCELLED)
# A provider took it: events move it on, only forward, in this order.
HANDED_OFF = (SENT, DELIVERED, BOUNCED, COMPLAINED)

# Statuses of one recipient of a mail a provider took, in the only order they may follow each
# other: a late "deferred" never undoes "delivered", a complaint after delivery moves it on.
# SUPPRESSED (the address was on the suppression list, so the mail did not go to it) is final.
DEFERRED, UNSUBSCRIBED = "deferred", "unsubscribed"
RECIPIENT_ORDER = (SENT, DEFERRED, DELIVERED, BOUNCED, UNSUBSCRIBED, COMPLAINED)
RECIPIENT_STATUSES = (*RECIPIENT_ORDER, SUPPRESSED)

AddressList = ARRAY(Text)


def utcnow():
    """The current time in UTC, with its time zone (this process's clock: for display only)."""
    return datetime.now(UTC)


def iso(moment):
    """ISO 8601 with a time zone, or None."""
    return moment.isoformat() if moment is not None else None


class Email(db.Model):
    """One mail request, from acceptance to its final status."""

    __tablename__ = "email"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    from_address: Mapped[str] = mapped_column(Text)
    to_address: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    cc: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    bcc: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    reply_to: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    result: Mapped[list | dict | None] = mapped_column(JSON)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Every timestamp comes from the database's clock (now()), never a worker's.
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # as requested
    headers: Mapped[dict] = mapped_column(JSONB, server_default=sql_text("'{}'::jsonb"))
    meta: Mapped[dict] = mapped_column("metadata", JSONB, server_default=sql_text("'{}'::jsonb"))
    tags: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    # Bare addresses of to, cc and bcc (domain lower-cased), for exact look-ups by recipient.
    recipients: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    # An operator's retry starts a fresh budget of MAX_ATTEMPTS and MAX_AGE from here, while
    # ``attempts`` keeps counting so that the attempt log never repeats a number.
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts_at_retry: Mapped[int] = mapped_column(Integer, server_default="0")

    attachments: Mapped[list["Attachment"]] = relationship(
        order_by="Attachment.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    attempt_log: Mapped[list["DeliveryAttempt"]] = relationship(
        back_populates="email",
        order_by="DeliveryAttempt.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    recipient_rows: Mapped[list["Recipient"]] = relationship(viewonly=True)
    # The timeline: the providers' events, oldest first by the providers' own clocks.
    events: Mapped[list["DeliveryEvent"]] = relationship(
        order_by="(DeliveryEvent.occurred_at, DeliveryEvent.id)", viewonly=True
    )

    __table_args__ = (
        # The claim query reads only due, queued mail: a partial index keeps it as fast with a
        # million finished rows as with none.
        Index(
            "ix_email_due",
            "next_attempt_at",
            postgresql_where=sql_text("status IN ('queued', 'scheduled')"),
        ),
        # The reaper looks for expired leases among the few mails being sent.
        Index(
            "ix_email_lease",
            "locked_until",
            postgresql_where=sql_text("status = 'sending'"),
        ),
        Index("ix_email_status_updated", "status", "updated_at"),
        # Listing, newest first, keyset-paged by (created_at, id); per status; by recipient, tag.
        Index("ix_email_created", sql_text("created_at DESC"), sql_text("id DESC")),
        Index(
            "ix_email_status_created", "status", sql_text("created_at DESC"), sql_text("id DESC")
        ),
        Index("ix_email_recipients", "recipients", postgresql_using="gin"),
        Index("ix_email_tags", "tags", postgresql_using="gin"),
        # The dashboard's mails sent per minute over the last hour.
        Index("ix_email_sent_at", "sent_at", postgresql_where=sql_text("sent_at IS NOT NULL")),
    )

    def __str__(self):
        return f"{self.subject!r} to {', '.join(self.to_address)}"

    def to_dict(self, with_attempts=True):
        """The mail object that the API returns."""
        data = {
            "id": str(self.id),
            "status": self.status,
            "success": True,
            "from_address": self.from_address,
            # ``to_address`` as the original service's clients read it; ``to`` in the shape of
            # ``cc`` and ``bcc``.
            "to_address": ", ".join(self.to_address),
            "to": list(self.to_address),
            "cc": list(self.cc or ()),
            "bcc": list(self.bcc or ()),
            "reply_to": self.reply_to,
            "subject": self.subject,
            "mail": self.text,
            "html": self.html,
            "result": self.result,
            "provider": self.provider,
            "provider_message_id": self.provider_message_id,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "next_attempt_at": iso(self.next_attempt_at) if self.status in WAITING else None,
            "send_at": iso(self.send_at),
            "headers": dict(self.headers or {}),
            "tags": list(self.tags or ()),
            "metadata": dict(self.meta or {}),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "sent_at": iso(self.sent_at),
        }
        if with_attempts:
            data["attachments"] = [attachment.to_dict() for attachment in self.attachments]
            data["attempt_log"] = [attempt.to_dict() for attempt in self.attempt_log]
            data["recipients"] = self.recipient_list()
            data["events"] = [event.to_dict() for event in self.events]
        return data

    @staticmethod
    def mail_dict(row):
        """``to_dict(with_attempts=False)`` from a mapping of the mail's columns, without an ORM
        object: an ``email`` row (``GET /mail``), or the values ``enqueue_many`` stored, which
        lack the columns a new mail has not filled yet (``result`` ... ``sent_at``).

        The hot paths answer with it: building an ``Email`` only to read it back cost a fifth
        of ``POST /mail``'s CPU. tests/unit/test_mail_dict.py holds it to ``to_dict``.
        """
        status = row["status"]
        return {
            "id": str(row["id"]),
            "status": status,
            "success": True,
            "from_address": row["from_address"],
            "to_address": ", ".join(row["to_address"]),
            "to": list(row["to_address"]),
            "cc": list(row["cc"] or ()),
            "bcc": list(row["bcc"] or ()),
            "reply_to": row["reply_to"],
            "subject": row["subject"],
            "mail": row["text"],
            "html": row["html"],
            "result": row.get("result"),
            "provider": row.get("provider"),
            "provider_message_id": row.get("provider_message_id"),
            "attempts": row["attempts"],
            "last_error": row.get("last_error"),
            "next_attempt_at": iso(row["next_attempt_at"]) if status in WAITING else None,
            "send_at": iso(row["send_at"]),
            "headers": dict(row["headers"] or {}),
            "tags": list(row["tags"] or ()),
            "metadata": dict(row["metadata"] or {}),
            "created_at": iso(row["created_at"]),
            "updated_at": iso(row["updated_at"]),
            "sent_at": iso(row.get("sent_at")),
        }

    @staticmethod
    def detail_dict(mail):
        """``to_dict()`` from ``mailqueue.mail_detail``'s dict (``GET /mail/<id>``), without an
        ORM object: its columns as ``mail_dict`` shows them, and its child rows as their own
        ``to_dict`` shows them (the rows have the attributes those read).

        The ORM's object and its four relationships cost five statements and most of the
        request's CPU. tests/integration/queue/test_mail_detail.py holds it to
        ``to_dict``.
        """
        data = Email.mail_dict(mail)
        data["attachments"] = [Attachment.to_dict(row) for row in mail["attachments"]]
        data["attempt_log"] = [DeliveryAttempt.to_dict(row) for row in mail["attempt_log"]]
        data["recipients"] = recipients_shown(
            mail["recipients"], mail["status"], mail["recipient_rows"]
        )
        data["events"] = [DeliveryEvent.to_dict(row) for row in mail["events"]]
        return data

    def recipient_list(self):
        """Each recipient with its status and reason; before the hand-off, the mail's status."""
        return recipients_shown(self.recipients, self.status, self.recipient_rows)


def recipients_shown(addresses, status, recipient_rows):
    """Each of a mail's recipient ``addresses`` with its status and reason from its row in
    ``recipient_rows``; a recipient without one (before the hand-off) has the mail's
    ``status``."""
    rows = {row.address: row for row in recipient_rows}
    listed = []
    for address in addresses or ():
        row = rows.get(address)
        listed.append(
            {
                "address": address,
                "status": row.status if row else status,
                "reason": row.reason if row else None,
                "updated_at": iso(row.updated_at) if row else None,
            }
        )
    return listed


class Attachment(db.Model):
    """A file sent with a mail; its content is read only to send it."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)  # bytes, decoded
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    def to_dict(self):
        """The attachment as the API shows it: name, type and size, not its bytes."""
        return {"filename": self.filename, "content_type": self.content_type, "size": self.size}


class MailTag(db.Model):
    """One tag of a mail, kept with the mail's ``created_at`` so that ``GET /mail?tag=`` reads
    a tag's mail newest first from one index (migration 0010). Written with the mail by the
    statement that stores it (``mailqueue``); ``Email.tags`` stays the mail's own record."""

    __tablename__ = "mail_tag"

    email_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_mail_tag_listing", "tag", sql_text("created_at DESC"), sql_text("email_id DESC")),
    )


class IdempotencyKey(db.Model):
    """A client's ``Idempotency-Key``, the request it came with, and the answer it got."""

    __tablename__ = "idempotency_key"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # whose key: a hash
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the parsed request
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSONB)  # without what the database set (below)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    # What the database set for the mail when it stored it, put back into a replayed answer
    # (mailer.api.resources.stamp_mail). Null for a batch, and for keys kept by code before 0009.
    mail_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    mail_status: Mapped[str | None] = mapped_column(String(16))
    mail_next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryAttempt(db.Model):
    """One call to one provider for one mail, whatever came of it."""

    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)  # the mail's delivery attempt it belongs to
    provider: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))  # mailer.vocabulary.ATTEMPT_OUTCOMES
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict | list | str | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))  # who did an operator's action
    # When the provider was called (the worker's clock corrected to the database's).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    email: Mapped[Email] = relationship(back_populates="attempt_log")

    def to_dict(self):
        """The attempt as shown by the API and the admin."""
        return {
            "number": self.number,
            "provider": self.provider,
            "outcome": self.outcome,
            "status_code": self.status_code,
            "response": self.response,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "actor": self.actor,
            "at": iso(self.created_at),
        }


class Recipient(db.Model):
    """One recipient of a mail, from the hand-off on: its status (``RECIPIENT_STATUSES``)."""

    __tablename__ = "recipient"

    email_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(Text, primary_key=True)  # bare, as in Email.recipients
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeliveryEvent(db.Model):
    """A provider's report about a mail after the hand-off (delivered, bounced, opened, ...)."""

    __tablename__ = "delivery_event"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("email.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    # The provider's own id of the report (Mailgun's signature token, SendGrid's sg_event_id):
    # a report delivered twice is stored once.
    dedup_key: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(24))  # mailer.events.provider.EVENT_TYPES
    provider_event: Mapped[str] = mapped_column(String(32))  # the provider's name for it
    recipient: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str | None] = mapped_column(String(16))  # permanent | temporary
    reason: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # provider's clock
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    payload: Mapped[dict] = mapped_column(JSONB)  # as received, cut to a bounded size

    __table_args__ = (
        Index("ix_delivery_event_dedup", "provider", "dedup_key", unique=True),
        Index("ix_delivery_event_email", "email_id", "occurred_at"),
    )

    def to_dict(self):
        """The event as the API's timeline shows it."""
        return {
            "type": self.type,
            "provider": self.provider,
            "event": self.provider_event,
            "recipient": self.recipient,
            "severity": self.severity,
            "reason": self.reason,
            "at": iso(self.occurred_at),
            "received_at": iso(self.received_at),
        }


class Suppression(db.Model):
    """An address that mail does not go to: it bounced, complained or unsubscribed."""

    __tablename__ = "suppression"

    address: Mapped[str] = mapped_column(Text, primary_key=True)  # bare (addresses.bare_address)
    reason: Mapped[str] = mapped_column(String(16))  # mailer.queue.suppressions.REASONS
    detail: Mapped[str | None] = mapped_column(Text)  # the provider's words, or an operator's
    email_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="SET NULL")
    )  # the mail that caused it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None: never

    __table_args__ = (
        Index("ix_suppression_created", sql_text("created_at DESC"), "address"),
        Index("ix_suppression_expires", "expires_at"),
    )

    def to_dict(self):
        """The entry as the API shows it."""
        return {
            "address": self.address,
            "reason": self.reason,
            "detail": self.detail,
            "mail_id": str(self.email_id) if self.email_id else None,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
        }


class WebhookMessage(db.Model):
    """A client webhook waiting in the outbox, or delivered, or given up on."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # the webhook-id header
    event_type: Mapped[str] = mapped_column(String(32))  # mail.sent, mail.delivered, ...
    email_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(
        String(16),  # pending | delivered | failed
        server_default="pending",
    )
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    attempt_log: Mapped[list["WebhookAttempt"]] = relationship(
        order_by="WebhookAttempt.id", viewonly=True
    )

    __table_args__ = (
        Index(
            "ix_webhook_outbox_due",
            "next_attempt_at",
            postgresql_where=sql_text("status = 'pending'"),
        ),
    )


class WebhookAttempt(db.Model):
    """One call to the client's webhook URL, whatever came of it."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_outbox.id", ondelete="CASCADE"), index=True
    )
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProviderState(db.Model):
    """A provider's circuit breaker and rate-limit pause, shared by every worker.

    Kept in the database so that all workers, on every host, and every restart agree on which
    provider is down, instead of each process relearning it from its own failures.
    """

    __tablename__ = "provider_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="closed")  # closed|open|half_open
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    cooldown: Mapped[float] = mapped_column(Float, default=0.0)  # seconds, current cool-down
    open_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    probe_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Opened by an operator's hand (planned maintenance): skipped until closed by hand.
    held_by: Mapped[str | None] = mapped_column(String(128))
    held_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    held_reason: Mapped[str | None] = mapped_column(Text)


class ProviderAction(db.Model):
    """An operator opened or closed a provider's breaker by hand: who, when and why."""

    __tablename__ = "provider_action"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))  # mailer.worker.circuit.HAND_ACTIONS
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProviderRate(db.Model):
    """A provider's shared send-rate bucket (``PROVIDER_RATE_LIMITS``), drawn by every worker."""

    __tablename__ = "provider_rate"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, server_default="0")
    refilled_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    window: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    granted: Mapped[int] = mapped_column(Integer, server_default="0")  # this second
    last_granted: Mapped[int] = mapped_column(Integer, server_default="0")  # the one before


class EmailStatusCount(db.Model):
    """A change to the number of mails in one status; a status's count is the sum of its rows.

    Appended by statement-level triggers on ``email`` (migration 0007) and folded back to one row
    per status by ``mailqueue.fold_status_counts``: reading the counts never scans ``email``.
    """

    __tablename__ = "email_status_count"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int] = mapped_column(BigInteger)


class WorkerHeartbeat(db.Model):
    """A running worker, as it last reported itself (``mailer.queue.heartbeats``)."""

    __tablename__ = "worker_heartbeat"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # as in Email.locked_by
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The database's clock: a worker whose clock is off still looks as alive as it is.
    last_seen: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    in_flight: Mapped[int] = mapped_column(Integer, server_default="0")  # sends under way
    sent: Mapped[int] = mapped_column(BigInteger, server_default="0")  # since it started
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")  # failed for good
