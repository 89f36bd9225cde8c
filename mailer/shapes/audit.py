"""The audit log on the wire: one row as ``GET /audit`` lists it, and a page of them."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from mailer.shapes.wire import Shape


class AuditEntry(Shape):
    """One change made by an operator in the admin or by a managing key through the API."""

    id: int = Field(description="The row's number: later rows have larger ones.", ge=1)
    at: datetime = Field(description="When the change was made, by the database's clock.")
    actor: str = Field(
        description="Who made it: `admin:<user>` (an operator in the admin, or `admin@<address>` "
        "without a password) or `key:<name>` (an API key)."
    )
    key_id: UUID | None = Field(
        description="The stored key that made it; null for an operator and for `API_KEYS`."
    )
    tenant: str | None = Field(
        description="The tenant the change was made for; null for every tenant's (or none)."
    )
    action: str = Field(description="What was done, e.g. `key.create`, `suppression.remove`.")
    target: str | None = Field(description="What it was done to: a key's id, an address, ...")
    summary: dict[str, Any] = Field(description="What changed; never a key or a secret.")
    client: str | None = Field(description="The client's address.")


class AuditPage(Shape):
    """A page of the audit log, newest first."""

    success: Literal[True] = Field(True)
    entries: list[AuditEntry]
    count: int = Field(description="Rows on this page.", ge=0)
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
