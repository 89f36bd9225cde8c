"""Every other answer on the wire: errors, the suppression list, what came of the providers'
events, and the service's health and readiness."""

from datetime import datetime
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from mailer.queue.suppressions import REASONS
from mailer.shapes.mail import MailStatus
from mailer.shapes.wire import AsIs, Shape, Source
from mailer.vocabulary import CIRCUIT_STATES, PAUSED
from mailer.worker.dispatch import STRATEGIES


class FieldError(Shape):
    """A field at fault: a body field, or a header such as `Authorization`."""

    sometimes: ClassVar[frozenset] = frozenset({"index"})

    field: str = Field(description="The field's (or header's) name; in a batch, `[index].field`.")
    message: str = Field(description="What is wrong with it.")
    index: int = Field(description="In a batch: the position of the mail at fault, from 0.")


class Error(Shape):
    """An error. `errors` names each field at fault (it may be empty)."""

    success: Literal[False] = Field(False, description="Always false.")
    message: str = Field(description="What went wrong, for people.")
    errors: list[FieldError]


class StatusConflict(Shape):
    """What a 409 adds to the error: the mail's status now."""

    status: MailStatus = Field(description="The mail's current status.")


class Succeeded(Shape):
    """The member every successful answer of the mail API starts with."""

    success: Literal[True] = Field(True)


class Suppression(Shape):
    """An address mail does not go to."""

    tenant: str = Field(
        description="Whose mail it holds back: a tenant's, `<tenant>:test` for a tenant's test "
        "mail (a `mk_test_` key's), or `*` for every tenant's (an operator's entry)."
    )
    address: str = Field(description="The bare address.")
    reason: Literal[REASONS] = Field(
        description="Bounces expire after `SUPPRESSION_DAYS`; the rest never."
    )
    detail: str | None = Field(description="The provider's or the operator's words.")
    mail_id: Annotated[UUID | None, Source("email_id")] = Field(
        description="The mail that caused it."
    )
    created_at: datetime = Field(description="When it was (last) added.")
    expires_at: datetime | None = Field(description="When it stops suppressing; null: never.")


class SuppressionAdded(Suppression, Succeeded):
    """The entry of an address suppressed by hand, as it now stands."""


class SuppressionPage(Shape):
    """A page of the suppression list."""

    success: Literal[True] = Field(True)
    suppressions: list[Suppression]
    count: int = Field(description="Entries on this page.", ge=0)
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class EventsReceived(Shape):
    """What came of a request's events."""

    success: Literal[True] = Field(True)
    received: int = Field(description="Events in the request.", ge=0)
    new: int = Field(description="Recorded now.", ge=0)
    repeats: int = Field(description="Recorded before: nothing changed.", ge=0)
    unmatched: int = Field(description="Of no known mail: logged, not stored.", ge=0)


class InboundReceived(Shape):
    """What came of one inbound mail, received by a provider's post or the SMTP door."""

    success: Literal[True] = Field(True)
    id: UUID | None = Field(
        description="The inbound mail's id (`GET /inbound/{id}`); for a replay, the one stored "
        "the first time; null when nothing is kept under an id."
    )
    kind: Literal["stored", "replay", "report"] = Field(
        description="`stored`: a new inbound mail; `replay`: the provider posted this delivery "
        "before, nothing changed; `report`: a bounce report about mail we sent."
    )


# The service's health: written by ``circuit.health`` (its times as text already).

Moment = Annotated[datetime, AsIs]


class HandOpened(Shape):
    """An operator opened this breaker by hand (planned maintenance): it stays open until closed
    by hand."""

    by: str = Field(description="Who opened it.")
    at: Moment = Field(description="When.")
    reason: str | None = Field(description="Why, in the operator's words.")


class ProviderHealth(Shape):
    """A provider's circuit breaker and rate-limit pause."""

    name: str = Field(description="The provider's name.")
    state: Literal[(*CIRCUIT_STATES, PAUSED)] = Field(
        description="`paused` while a 429 pause lasts, else the circuit's state."
    )
    circuit: Literal[tuple(CIRCUIT_STATES)] = Field(
        description="`open` after repeated failures; `half_open` while one probe is allowed."
    )
    usable: bool = Field(
        description="Whether a worker sends through it now (closed and not paused); the same "
        "rule the worker applies."
    )
    consecutive_failures: int = Field(description="Transient failures in a row.", ge=0)
    open_until: Moment | None = Field(description="When an open circuit allows a probe.")
    paused_until: Moment | None = Field(
        description="Until when the provider asked us to wait (429)."
    )
    last_error: str | None = Field(description="The provider's latest failure.")
    opened_by_hand: HandOpened | None = Field(
        description="An operator opened this breaker by hand (planned maintenance): it stays "
        "open until closed by hand."
    )


class Health(Shape):
    """The service's health."""

    status: Literal["ok", "meltdown"] = Field(
        description="`meltdown` when no provider's circuit is closed."
    )
    database: Literal["ok"] = Field(description="The database answered.")
    providers: list[ProviderHealth]


class Liveness(Shape):
    """The process answers."""

    status: Literal["ok"] = Field(description="Always `ok`.")


class SchemaState(Shape):
    """The database's Alembic revision and this code's head."""

    status: Literal["current", "missing", "behind", "unknown"] = Field(
        description="`current`; `missing` or `behind` (503); `unknown` when the database did "
        "not answer."
    )
    revision: str | None = Field(description="The database's revision.")
    head: str = Field(description="The revision this code needs.")


class ReadyProvider(ProviderHealth):
    """A provider's circuit breaker and its share of the sending."""

    weight: float = Field(description="`PROVIDER_WEIGHTS` (1 if not named).")
    rate_limit: float | None = Field(
        description="`PROVIDER_RATE_LIMITS`, mails per second, all workers together; null: "
        "uncapped."
    )
    current_rate: int | None = Field(
        description="Mails sent to it in the last whole second (counted for capped providers "
        "only; else null).",
        ge=0,
    )


class SteeredPair(Shape):
    """A provider the guard puts last for a recipient domain: too many of its outcomes there
    bounced, deferred or complained in the last `DELIVERABILITY_WINDOW` seconds."""

    provider: str = Field(description="The provider's name.")
    domain: str = Field(description="The recipient domain (lower case).")
    failure_rate: float = Field(
        description="The share of its outcomes in the window that bounced, deferred or "
        "complained, 0 to 1, at the workers' last look.",
        ge=0,
        le=1,
    )
    since: datetime = Field(description="When it was steered away from.")


class Readiness(Shape):
    """Whether the API can serve, and the providers' state."""

    sometimes: ClassVar[frozenset] = frozenset(
        {"meltdown", "strategy", "providers", "workers_alive", "steered"}
    )

    status: Literal["ready", "unavailable"] = Field(description="`ready`, or `unavailable` (503).")
    database: Literal["ok", "unavailable"] = Field(description="Whether the database answered.")
    schema_: SchemaState = Field(alias="schema")
    meltdown: bool = Field(
        description="No provider can take mail now (every one open, half-open or paused): mail "
        "waits in the queue."
    )
    strategy: Literal[STRATEGIES] = Field(description="`PROVIDER_STRATEGY`.")
    providers: list[ReadyProvider]
    workers_alive: int = Field(description="Workers whose heartbeat is recent.", ge=0)
    steered: list[SteeredPair] = Field(
        description="The providers the guard puts last for a recipient domain (empty while "
        "none is, or the guard is off)."
    )
