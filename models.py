"""The database tables: mail, its attachments and delivery attempts, idempotency keys, each
provider's shared health, and what follows the hand-off: recipients, the providers' events, the
suppression list and the outbox of client webhooks with their attempts; for operators, a
heartbeat row per worker; for security, the Mailgun signature tokens already used and the failed
authentications per client; and the mail received (replies, inbound mail) with its attachments.

The schema itself is owned by the Alembic migrations in ``migrations/``; these classes describe
it to SQLAlchemy. Tables that only hand-written SQL reads and writes have no class here:
``mail_tag`` (a tag's mail for ``GET /mail?tag=``, migration 0010), ``provider_rate`` (the shared
rate caps, ``mailer.worker.ratecap``, migration 0006), ``email_status_count`` (the ledger of
mail counts by status, appended by triggers, migration 0007), and ``deliverability`` and
``steering`` (the guard's per-minute outcomes and the pairs it steers away from,
``mailer.worker.steering``, migration 0013), and ``key_usage`` (each stored key's rate and
daily counts, ``mailer.queue.keys``, migration 0015). Timestamps are stored in UTC with a
time zone wherever the database has one.
"""

import uuid
from datetime import UTC, datetime

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
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
# mailer.database.transaction);
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
    # The route of the latest delivery (PROVIDER_ROUTES): the recipient domain that matched one,
    # or "default" for PROVIDERS; None before the worker first planned one.
    route: Mapped[str | None] = mapped_column(Text)
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
    # The template the mail was rendered from when it was submitted (migration 0014); the
    # ``template`` and ``template_version`` tables are read and written by hand-written SQL.
    template: Mapped[str | None] = mapped_column(Text)
    template_version: Mapped[int | None] = mapped_column(Integer)
    # Whose mail it is, and the stored key that submitted it (None: ``API_KEYS``, protected
    # mode, the admin); a test key's mail is never sent (migration 0015).
    tenant: Mapped[str] = mapped_column(Text, server_default="default")
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    test: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    # The way the mail came in (migration 0019): ``api`` or ``smtp`` (``SOURCES``).
    source: Mapped[str] = mapped_column(Text, server_default="api")

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
        # Queued mail by its next attempt: the admin counts the mail in backoff (queued, due
        # later) from the index alone (ix_email_due holds scheduled mail too, not the status).
        Index(
            "ix_email_backoff",
            "next_attempt_at",
            postgresql_where=sql_text("status = 'queued'"),
        ),
        # Test mail by status: the mail list adds it to the ledger's counts, which are live only.
        Index("ix_email_test", "status", postgresql_where=sql_text("test")),
        # The reaper looks for expired leases among the few mails being sent.
        Index(
            "ix_email_lease",
            "locked_until",
            postgresql_where=sql_text("status = 'sending'"),
        ),
        Index("ix_email_status_updated", "status", "updated_at", postgresql_include=["test"]),
        # Listing, newest first, keyset-paged by (created_at, id); per status; by recipient, tag.
        Index("ix_email_created", sql_text("created_at DESC"), sql_text("id DESC")),
        Index(
            "ix_email_status_created", "status", sql_text("created_at DESC"), sql_text("id DESC")
        ),
        Index("ix_email_recipients", "recipients", postgresql_using="gin"),
        Index("ix_email_tags", "tags", postgresql_using="gin"),
        # The dashboard's mails sent per minute over the last hour.
        Index(
            "ix_email_sent_at",
            "sent_at",
            postgresql_include=["test"],
            postgresql_where=sql_text("sent_at IS NOT NULL"),
        ),
        # A tenant's listing, as the two above, with the tenant first.
        Index(
            "ix_email_tenant_created", "tenant", sql_text("created_at DESC"), sql_text("id DESC")
        ),
        Index(
            "ix_email_tenant_status_created",
            "tenant",
            "status",
            sql_text("created_at DESC"),
            sql_text("id DESC"),
        ),
    )

    def __str__(self):
        return f"{self.subject!r} to {', '.join(self.to_address)}"


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
    # An inline part's Content-ID, without its angle brackets (the HTML's "cid:<id>"); None
    # for an attached file.
    content_id: Mapped[str | None] = mapped_column(Text, nullable=True)


class IdempotencyKey(db.Model):
    """A client's ``Idempotency-Key``, the request it came with, and the answer it got."""

    __tablename__ = "idempotency_key"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # whose key: a hash
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant: Mapped[str] = mapped_column(Text, server_default="default")
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


class Suppression(db.Model):
    """An address that mail does not go to: it bounced, complained or unsubscribed."""

    __tablename__ = "suppression"

    # The tenant whose mail it holds back, or ``*``: every tenant's (an operator's entry).
    tenant: Mapped[str] = mapped_column(Text, primary_key=True, server_default="default")
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
        Index("ix_suppression_tenant_created", "tenant", sql_text("created_at DESC"), "address"),
    )


class WebhookMessage(db.Model):
    """A client webhook waiting in the outbox, or delivered, or given up on."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)  # the webhook-id header
    event_type: Mapped[str] = mapped_column(String(32))  # mail.sent, mail.delivered, ...
    # The mail it is about; None for ``mail.received``, which is about a received mail.
    email_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="CASCADE"), index=True
    )
    inbound_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("inbound.id", ondelete="CASCADE")
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
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("webhook_endpoint.id")
    )  # None: the settings' WEBHOOK_URL (the default tenant's endpoint)
    tenant: Mapped[str] = mapped_column(Text, server_default=sql_text("'default'"))

    attempt_log: Mapped[list["WebhookAttempt"]] = relationship(
        order_by="WebhookAttempt.id", viewonly=True
    )
    endpoint: Mapped["WebhookEndpoint | None"] = relationship(viewonly=True)

    __table_args__ = (
        Index(
            "ix_webhook_outbox_due",
            "next_attempt_at",
            "id",
            postgresql_where=sql_text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_outbox_endpoint",
            "endpoint_id",
            sql_text("id DESC"),
            postgresql_where=sql_text("endpoint_id IS NOT NULL"),
        ),
        Index(
            "ix_webhook_outbox_inbound",
            "inbound_id",
            postgresql_where=sql_text("inbound_id IS NOT NULL"),
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
    action: Mapped[str] = mapped_column(String(16))  # circuit.OPEN_BY_HAND or CLOSE_BY_HAND
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


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


class WebhookToken(db.Model):
    """A Mailgun signature token that passed, and the event it signed, while its signature
    could still be taken (``mailer.queue.webhook_tokens``, migration 0011)."""

    __tablename__ = "webhook_token"

    token: Mapped[str] = mapped_column(Text, primary_key=True)
    event_digest: Mapped[str] = mapped_column(String(64))  # sha256 of the event, hex
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # + WEBHOOK_MAX_AGE

    __table_args__ = (Index("ix_webhook_token_expires", "expires_at"),)


class AuthFailure(db.Model):
    """A client's recent failed authentications, and until when it is refused
    (``mailer.queue.auth_failures``, migration 0011)."""

    __tablename__ = "auth_failure"

    client: Mapped[str] = mapped_column(Text, primary_key=True)  # its address
    failures: Mapped[int] = mapped_column(Integer)  # in the window that ends at window_ends
    window_ends: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the later of both

    __table_args__ = (Index("ix_auth_failure_expires", "expires_at"),)


class ApiKey(db.Model):
    """A stored API key (``mailer.queue.keys``, migration 0015): its SHA-256 only, never the
    key; the readable ``prefix`` and ``last4`` that lists show to tell keys apart."""

    __tablename__ = "api_key"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text)
    last4: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)  # sha256, hex
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    allowed_from_domains: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    rate_limit: Mapped[float | None] = mapped_column(Float)  # mails per second
    daily_quota: Mapped[int | None] = mapped_column(Integer)  # mails per UTC day
    test: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditLog(db.Model):
    """One change an operator or a managing key made (``mailer.queue.audit``, migration
    0017): appended, never updated (a trigger refuses it), purged past
    ``AUDIT_RETENTION_DAYS``."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)  # admin:<user>, or key:<name>
    key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the key's; None for an operator
    tenant: Mapped[str | None] = mapped_column(Text)  # None: every tenant's, or none
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict] = mapped_column(JSONB, server_default=sql_text("'{}'::jsonb"))
    client: Mapped[str | None] = mapped_column(Text)  # the client's address

    __table_args__ = (
        Index("ix_audit_log_at", sql_text("at DESC"), sql_text("id DESC")),
        Index("ix_audit_log_tenant_at", "tenant", sql_text("at DESC"), sql_text("id DESC")),
    )


class WebhookEndpoint(db.Model):
    """A tenant's client webhook endpoint (``mailer.queue.webhook_endpoints``, migration 0018):
    its URL, the event types it takes (empty: all) and the secret that signs them."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    secret: Mapped[str] = mapped_column(Text)  # whsec_...: signs; never shown after creation
    disabled: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_webhook_endpoint_listing",
            "tenant",
            sql_text("created_at DESC"),
            sql_text("id DESC"),
            postgresql_where=sql_text("deleted_at IS NULL"),
        ),
    )

    def __str__(self):
        """How the admin names it: its URL and tenant (never its secret)."""
        return f"{self.url} ({self.tenant})"


class Inbound(db.Model):
    """A mail received: a reply, or any mail sent to an inbound address
    (``mailer.queue.inbound``, migration 0021); written once per delivery, never changed."""

    __tablename__ = "inbound"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    source: Mapped[str] = mapped_column(Text)  # mailer.inbound.message.SOURCES
    delivery_id: Mapped[str | None] = mapped_column(Text)  # the provider's id of the delivery
    envelope_from: Mapped[str | None] = mapped_column(Text)
    envelope_to: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    from_address: Mapped[str | None] = mapped_column(Text)
    to_address: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    cc: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    subject: Mapped[str] = mapped_column(Text, server_default="")
    text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    stripped_text: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[list] = mapped_column(JSONB, server_default=sql_text("'[]'::jsonb"))
    message_id: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    reference_ids: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")
    spam_score: Mapped[float | None] = mapped_column(Float)
    spam_verdict: Mapped[str | None] = mapped_column(Text)
    auto_reply: Mapped[bool] = mapped_column(Boolean, server_default=sql_text("false"))
    in_reply_to_mail_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("email.id", ondelete="SET NULL")
    )
    tenant: Mapped[str] = mapped_column(Text, server_default="default")
    recipients: Mapped[list[str]] = mapped_column(AddressList, server_default="{}")  # bare
    sender: Mapped[str | None] = mapped_column(Text)  # bare

    attachments: Mapped[list["InboundAttachment"]] = relationship(
        order_by="InboundAttachment.position", viewonly=True
    )

    __table_args__ = (
        Index("ix_inbound_delivery", "source", "delivery_id", unique=True),
        Index(
            "ix_inbound_message_id",
            "message_id",
            unique=True,
            postgresql_where=sql_text("message_id IS NOT NULL"),
        ),
        Index("ix_inbound_received", sql_text("received_at DESC"), sql_text("id DESC")),
        Index(
            "ix_inbound_tenant_received",
            "tenant",
            sql_text("received_at DESC"),
            sql_text("id DESC"),
        ),
        Index(
            "ix_inbound_reply",
            "in_reply_to_mail_id",
            sql_text("received_at DESC"),
            sql_text("id DESC"),
            postgresql_where=sql_text("in_reply_to_mail_id IS NOT NULL"),
        ),
        Index("ix_inbound_sender", "sender", sql_text("received_at DESC"), sql_text("id DESC")),
        Index("ix_inbound_recipients", "recipients", postgresql_using="gin"),
    )

    def __str__(self):
        return f"{self.subject!r} from {self.from_address or self.envelope_from or '?'}"


class InboundAttachment(db.Model):
    """A file that came with a received mail; ``content`` None when it was ``dropped``."""

    __tablename__ = "inbound_attachment"

    inbound_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("inbound.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # from 0, as received
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(Text)
    content_id: Mapped[str | None] = mapped_column(Text)  # an inline part's, without <>
    size: Mapped[int] = mapped_column(Integer)  # bytes, decoded, as received
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    dropped: Mapped[str | None] = mapped_column(Text)  # why its bytes were not kept
