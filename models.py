"""The database tables: mail, its delivery attempts, and each provider's shared health.

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
    Index,
    Integer,
    String,
    Text,
    Uuid,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Objects keep their values after a commit: the API answers from what it just stored instead of
# reading it back, which after a committed insert could only fail.
db = SQLAlchemy(session_options={"expire_on_commit": False})

# Statuses of a mail, the one definition that the API, the admin and the spec read. A mail is
# claimed from QUEUED into SENDING under a lease and leaves SENDING for SENT, FAILED or (to
# retry later) QUEUED again.
QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
STATUSES = (QUEUED, SENDING, SENT, FAILED)
FINISHED = (SENT, FAILED)

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
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                      server_default=func.now())
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An operator's retry starts a fresh budget of MAX_ATTEMPTS and MAX_AGE from here, while
    # ``attempts`` keeps counting so that the attempt log never repeats a number.
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts_at_retry: Mapped[int] = mapped_column(Integer, server_default="0")

    attempt_log: Mapped[list["DeliveryAttempt"]] = relationship(
        back_populates="email",
        order_by="DeliveryAttempt.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        # The claim query reads only due, queued mail: a partial index keeps it as fast with a
        # million finished rows as with none.
        Index(
            "ix_email_due",
            "next_attempt_at",
            postgresql_where=sql_text("status = 'queued'"),
        ),
        # The reaper looks for expired leases among the few mails being sent.
        Index(
            "ix_email_lease",
            "locked_until",
            postgresql_where=sql_text("status = 'sending'"),
        ),
        Index("ix_email_status_updated", "status", "updated_at"),
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
            "next_attempt_at": iso(self.next_attempt_at) if self.status == QUEUED else None,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "sent_at": iso(self.sent_at),
        }
        if with_attempts:
            data["attempt_log"] = [attempt.to_dict() for attempt in self.attempt_log]
        return data


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())

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
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
