"""Received mail on the wire: as ``GET /inbound`` lists it and ``GET /inbound/<id>`` shows it,
with its attachments (name, type, size, and where to fetch the bytes), a page of it, and a
reply as ``GET /mail/<id>`` lists it.

Rows come from ``mailer.queue.inbound`` (dicts of its columns) and, for a mail's replies,
``reads.ReplyRow``.
"""

from datetime import datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from mailer.inbound.message import SOURCES
from mailer.shapes.wire import Shape, Source


class Reply(Shape):
    """A received mail that answers a mail of ours (an automatic reply is not one)."""

    rows_are: ClassVar[str] = "attributes"

    id: UUID = Field(description="The received mail's id: `GET /inbound/{id}` has the rest.")
    from_: Annotated[str | None, Source("from_address")] = Field(
        alias="from", description="Its From, as written (else the envelope's sender)."
    )
    subject: str = Field(description="Its subject.")
    received_at: datetime = Field(description="When it came.")


class InboundAttachment(Shape):
    """A file that came with a received mail: its name, type and size; its bytes at `url`."""

    position: int = Field(description="Its place among the mail's files, from 0.", ge=0)
    filename: str = Field(description="Its name, as given (may be empty).")
    content_type: str = Field(description="Its type, as given.")
    content_id: str | None = Field(
        description="An inline part's Content-ID, without its brackets; null for a file."
    )
    size: int = Field(description="Bytes, decoded, as received.", ge=0)
    dropped: Literal["MAX_ATTACHMENTS", "MAX_ATTACHMENT_BYTES"] | None = Field(
        description="Why its bytes were not kept: the limit it was past (the mail's files "
        "before it had used it up); null when they were."
    )
    url: str | None = Field(
        description="Where its bytes are: `/inbound/{id}/attachments/{position}`; null when "
        "dropped."
    )


class ListedInbound(Shape):
    """A received mail as listed: without its bodies, headers and attachments."""

    success: Literal[True] = Field(True, description="Always true.")
    id: UUID = Field(description="The received mail's id.")
    received_at: datetime = Field(description="When it came, by the service's clock.")
    source: Literal[SOURCES] = Field(
        description="The way it came in: `mailgun`, `sendgrid`, `postmark` or `smtp`."
    )
    from_: Annotated[str | None, Source("from_address")] = Field(
        alias="from", description="Its From, as written (else the envelope's sender)."
    )
    to: Annotated[list[str], Source("to_address")] = Field(
        description="Its To header's addresses, as written."
    )
    cc: list[str] = Field(description="Its Cc header's addresses, as written.")
    subject: str = Field(description="Its subject.")
    message_id: str | None = Field(description="Its Message-ID, with the angle brackets.")
    in_reply_to_mail_id: UUID | None = Field(
        description="The mail of ours it answers (by its In-Reply-To or References); null "
        "for none, or once that mail was purged."
    )
    auto_reply: bool = Field(
        description="An automatic reply (out of office, vacation): stored, but not counted "
        "among the mail's `replies`."
    )
    tenant: str = Field(
        description="The tenant of the mail it answers; `default` when it answers none."
    )
    spam_score: float | None = Field(description="The provider's spam score, if it gives one.")
    spam_verdict: str | None = Field(description="`spam` or `ham`, when the provider says.")


class Inbound(ListedInbound):
    """A received mail, all of it but its attachments' bytes."""

    delivery_id: str | None = Field(
        description="The provider's id of the delivery: a replay has the same."
    )
    envelope_from: str | None = Field(description="The envelope's sender (SMTP MAIL FROM).")
    envelope_to: list[str] = Field(description="The envelope's recipients (SMTP RCPT TO).")
    text: str | None = Field(description="The plain-text body.")
    html: str | None = Field(description="The HTML body, as received (never rendered here).")
    stripped_text: str | None = Field(
        description="The reply without its quoted history, when the provider gives it."
    )
    headers: list[Annotated[list[str], Field(min_length=2, max_length=2)]] = Field(
        description="Every header, in order, as `[name, value]`: a name may repeat."
    )
    in_reply_to: str | None = Field(description="Its In-Reply-To header.")
    references: Annotated[list[str], Source("reference_ids")] = Field(
        description="The Message-IDs of its References header, oldest first."
    )
    attachments: list[InboundAttachment] = Field(description="Its files, in order.")


class InboundPage(Shape):
    """A page of received mail, newest first."""

    success: Literal[True] = Field(True)
    inbound: list[ListedInbound]
    count: int = Field(description="Received mails on this page.", ge=0)
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )
