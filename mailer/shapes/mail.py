"""The mail on the wire: as ``GET /mail`` lists it, as ``POST /mail`` accepts it and
``GET /mail/<id>`` shows it, with its attachments, attempts, recipients and events; the pages
and the batch's answer.

A listed mail is written from an ``email`` row: ``reads.page``'s tuples of ``PAGE_COLUMNS``,
or a mapping of the same columns (``reads.mail_detail``'s, or the row ``enqueue_many``
stored). The whole mail adds its child rows, each read by attribute (``reads``' named
tuples).
"""

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from mailer.events.provider import EVENT_TYPES
from mailer.queue.reads import REPLIES_SHOWN, RecipientRow
from mailer.queue.submit import SOURCES
from mailer.shapes.inbound import Reply
from mailer.shapes.wire import AsIs, Shape, Source
from mailer.vocabulary import ANSWER_OUTCOMES, ATTEMPT_OUTCOMES, MAIL_STATUSES
from models import RECIPIENT_STATUSES, WAITING

MailStatus = Literal[tuple(MAIL_STATUSES)]


def due_while_waiting(status, next_attempt_at):
    """When the next delivery is due: only while the mail waits for it."""
    return next_attempt_at if status in WAITING else None


def recipients_shown(addresses, status, recipient_rows):
    """Each of a mail's recipient ``addresses`` (a ``RecipientRow``) with its status, reason and
    time from its row in ``recipient_rows``; a recipient without one (before the hand-off) has
    the mail's ``status``."""
    rows = {row.address: row for row in recipient_rows}
    return [
        rows.get(address) or RecipientRow(address, status, None, None)
        for address in addresses or ()
    ]


class ProviderAnswer(Shape):
    """What one provider answered to one delivery."""

    provider: str = Field(description="The provider's name, e.g. `mailgun`.")
    outcome: Literal[tuple(ANSWER_OUTCOMES)] = Field(description="What came of the call.")
    status_code: int | None = Field(description="The provider's HTTP status, if it answered.")
    message_id: str | None = Field(description="The provider's id for the message, once sent.")
    response: Any = Field(description="The provider's answer body: JSON, text, or null.")
    error: str | None = Field(description="Why the call did not succeed.")
    duration_ms: int = Field(description="How long the call took.", ge=0)
    at: datetime = Field(description="When the call ended.")


class ListedMail(Shape):
    """A mail as listed: without its attachments, attempt log, recipients and events."""

    id: UUID = Field(description="The mail's id.")
    status: MailStatus = Field(
        description="`queued` (or `scheduled` until `send_at`), then `sending` while a worker "
        "holds it, and finally `sent` or `failed` (a failed delivery may also return it to "
        "`queued` for a retry); after the hand-off the providers' events move a sent mail on "
        "to `delivered`, `bounced` or `complained`."
    )
    success: Literal[True] = Field(True, description="Always true.")
    from_address: str = Field(description="The sender, normalised.")
    to_address: Annotated[str, Source("to_address", via=", ".join)] = Field(
        description="The recipients, normalised and joined by `, ` (as the original service's "
        "clients read them)."
    )
    to: Annotated[list[str], Source("to_address")] = Field(
        description="The recipients, normalised, one address (with its display name) each."
    )
    cc: list[str] = Field(description="Copy recipients.")
    bcc: list[str] = Field(description="Blind copy recipients.")
    reply_to: str | None = Field(description="The reply-to address.")
    subject: str = Field(description="The subject.")
    mail: Annotated[str | None, Source("text")] = Field(
        description="The plain-text body (the request's `text`)."
    )
    html: str | None = Field(description="The HTML body.")
    result: Annotated[list[ProviderAnswer] | None, AsIs] = Field(
        description="The answer of each provider called by the latest delivery, in order; null "
        "before the first."
    )
    provider: str | None = Field(description="The provider of the latest delivery that settled it.")
    provider_message_id: str | None = Field(description="The id the provider gave the message.")
    attempts: int = Field(description="Deliveries tried so far.", ge=0)
    last_error: str | None = Field(description="Why the latest delivery did not succeed.")
    next_attempt_at: Annotated[
        datetime | None, Source("status", "next_attempt_at", via=due_while_waiting)
    ] = Field(description="When the next delivery is due; only while `queued` or `scheduled`.")
    send_at: datetime | None = Field(
        description="When the mail was asked to be sent, if scheduled."
    )
    headers: dict[str, str] = Field(description="Custom headers.")
    tags: list[str] = Field(description="The mail's tags.")
    metadata: dict[str, str] = Field(description="The client's metadata, as given.")
    created_at: datetime = Field(description="When the mail was accepted.")
    updated_at: datetime = Field(description="When the mail last changed.")
    sent_at: datetime | None = Field(description="When a provider accepted the mail.")
    template: str | None = Field(
        description="The template the mail was rendered from when it was submitted; null if "
        "the client rendered it."
    )
    template_version: int | None = Field(description="That template's version.", ge=1)
    tenant: str = Field(
        description="The tenant (application) whose mail it is: the submitting key's; "
        "`default` for `API_KEYS`."
    )
    api_key_id: UUID | None = Field(
        description="The id of the stored key that submitted it; null for `API_KEYS`, "
        "protected mode and the admin."
    )
    test: bool = Field(
        description="Test mail, submitted with a `mk_test_` key: stored, rendered and tracked "
        "like any other, but never sent to a provider (the simulator decides its outcome)."
    )
    source: Literal[SOURCES] = Field(
        description="The way the mail came in: `api` (`POST /mail`, the admin) or `smtp` (the "
        "SMTP door)."
    )


class Attachment(Shape):
    """An attachment as stored: its name, type and size, not its bytes."""

    rows_are: ClassVar[str] = "attributes"

    filename: str = Field(description="Its name.")
    content_type: str = Field(description="Its type.")
    size: int = Field(description="Bytes, decoded.", ge=0)
    content_id: str | None = Field(
        description="An inline part's Content-ID, without angle brackets: the HTML shows it "
        "as `cid:<content_id>` (an inline image). Null for an attached file."
    )


class Attempt(Shape):
    """One provider call for a mail (or a lease that expired mid-send, or an operator's
    action)."""

    rows_are: ClassVar[str] = "attributes"

    number: int = Field(description="The mail's delivery attempt this call belongs to.", ge=0)
    provider: str | None = Field(description="The provider called; null for `lease_expired`.")
    outcome: Literal[tuple(ATTEMPT_OUTCOMES)] = Field(description="What came of the call.")
    status_code: int | None = Field(description="The provider's HTTP status, if it answered.")
    response: Annotated[Any, AsIs] = Field(
        description="The provider's answer body: JSON, text, or null."
    )
    error: str | None = Field(description="Why the call did not succeed.")
    duration_ms: int | None = Field(description="How long the call took.", ge=0)
    actor: str | None = Field(
        description="Who did an operator's action (`retried`), e.g. `admin:alice`."
    )
    at: Annotated[datetime, Source("created_at")] = Field(
        description="When the provider was called (or the action was taken)."
    )


class Recipient(Shape):
    """One recipient; before the hand-off its status is the mail's."""

    rows_are: ClassVar[str] = "attributes"

    address: str = Field(description="The bare address.")
    status: Literal[tuple(dict.fromkeys([*RECIPIENT_STATUSES, *MAIL_STATUSES]))] = Field(
        description="Only moves forward, in this order (suppressed: not sent to)."
    )
    reason: str | None = Field(description="The provider's words, or why it was suppressed.")
    updated_at: datetime | None = Field(description="When the status last moved.")


class DeliveryEvent(Shape):
    """One event a provider reported."""

    rows_are: ClassVar[str] = "attributes"

    type: Literal[EVENT_TYPES] = Field(description="Ours.")
    provider: str = Field(description="Who reported it.")
    event: Annotated[str, Source("provider_event")] = Field(
        description="The provider's own name for it."
    )
    recipient: str | None = Field(description="The address it is about.")
    severity: Literal["permanent", "temporary"] | None = Field(description="Of a failure.")
    reason: str | None = Field(description="The provider's words.")
    at: Annotated[datetime, Source("occurred_at")] = Field(
        description="When it happened, by the provider's clock."
    )
    received_at: datetime = Field(description="When we received it.")


class Mail(ListedMail):
    """A mail and its delivery so far."""

    route: str | None = Field(
        description="The route of the latest delivery (`PROVIDER_ROUTES`): the recipient domain "
        "that matched a route, e.g. `hotmail.com`, or `default` for `PROVIDERS`; null before "
        "the first."
    )
    attachments: list[Attachment] = Field(
        description="Each attachment's name, type, size and (of an inline part) Content-ID."
    )
    attempt_log: list[Attempt] = Field(
        description="Every provider call for this mail, oldest first."
    )
    recipients: Annotated[
        list[Recipient], Source("recipients", "status", "recipient_rows", via=recipients_shown)
    ] = Field(description="Each recipient's status.")
    events: list[DeliveryEvent] = Field(
        description="The providers' latest events (at most `MAX_EVENTS_SHOWN`), oldest first; "
        "`GET /mail/{id}/events` pages through all of them."
    )
    event_count: int = Field(description="How many events the mail has in all.", ge=0)
    replies: list[Reply] = Field(
        description="The received mail that answers it (automatic replies left out): the "
        f"latest {REPLIES_SHOWN}, oldest first; `GET /inbound?in_reply_to={{id}}` pages "
        "through all of them, automatic replies too."
    )
    reply_count: int = Field(description="How many replies the mail has in all.", ge=0)


class MailPage(Shape):
    """A page of mail, newest first."""

    success: Literal[True] = Field(True)
    mails: list[ListedMail]
    count: int = Field(description="Mails on this page.", ge=0)
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


class EventPage(Shape):
    """A page of a mail's events, oldest first."""

    success: Literal[True] = Field(True)
    events: list[DeliveryEvent]
    count: int = Field(description="Events on this page.", ge=0)
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


class BatchAccepted(Shape):
    """The stored mails' ids, in the order given; poll `/mail/{id}` for each."""

    success: Literal[True] = Field(True)
    count: int = Field(description="How many mails were stored.")
    ids: list[UUID]
