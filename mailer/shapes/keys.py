"""API keys on the wire: a stored key as ``GET /keys`` lists it (never the key itself), a new
key as ``POST /keys`` answers it (the key, this once), the list, and the request body.

``mailer.principals.key_problems`` decides what is accepted; these shapes say the same in
OpenAPI 3.0, as far as it can.
"""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from mailer.principals import MAX_DOMAINS, SCOPES
from mailer.shapes.requests import Request
from mailer.shapes.wire import Shape

TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Domain = Annotated[
    str,
    Field(
        description="A domain name, e.g. `shop.example`.",
        max_length=253,
        pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$",
    ),
]
Scope = Literal[SCOPES]


class ApiKey(Shape):
    """A stored key: how to tell it apart, never the key."""

    id: UUID = Field(description="The key's id (`DELETE /keys/{id}` revokes it).")
    tenant: str = Field(description="The tenant (application) it acts for.")
    name: str = Field(description="What it is for.")
    prefix: str = Field(description="Its first characters, e.g. `mk_live_Ab3x`.")
    last4: str = Field(description="Its last four characters.")
    scopes: list[Scope] = Field(description="What it may do.")
    allowed_from_domains: list[str] = Field(
        description="The sender domains it may send from; empty: any."
    )
    rate_limit: float | None = Field(description="Mails a second it may send; null: no limit.")
    daily_quota: int | None = Field(description="Mails a UTC day it may send; null: no limit.")
    test: bool = Field(description="A test key (`mk_test_`).")
    created_at: datetime = Field(description="When it was made.")
    last_used_at: datetime | None = Field(
        description="When it was last used (to the minute); null: never."
    )
    revoked_at: datetime | None = Field(description="When it was revoked; null: it works.")


class NewApiKey(ApiKey):
    """A key just made, with the key itself: shown this once, never again."""

    success: Literal[True] = Field(True)
    key: str = Field(
        description="The key: `mk_live_` or `mk_test_` and 43 random characters. Keep it "
        "secret; it is stored as its SHA-256 only and cannot be shown again."
    )


class ApiKeyPage(Shape):
    """A page of keys, newest first."""

    success: Literal[True] = Field(True)
    keys: list[ApiKey]
    count: int = Field(description="Keys on this page.", ge=0)
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


class ApiKeyRequest(Request):
    """A new key (`POST /keys`)."""

    name: str = Field(
        description="What it is for: 1-100 characters, no control characters.",
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
    )
    tenant: str | None = Field(
        None,
        description="The tenant it acts for; default: the caller's. Only a key with `admin` "
        "makes keys of another tenant.",
        pattern=TENANT_PATTERN,
    )
    scopes: list[Scope] = Field(
        description="What it may do (`admin` only from a key with `admin`).", min_length=1
    )
    allowed_from_domains: list[Domain] = Field(
        [], description="Sender domains it may send from; empty: any.", max_length=MAX_DOMAINS
    )
    rate_limit: float | None = Field(
        None, description="Mails a second, across every API process.", ge=0.001, le=1e6
    )
    daily_quota: int | None = Field(
        None, description="Mails a UTC day, across every API process.", ge=1, le=2**31 - 1
    )
    test: bool = Field(False, description="A test key (`mk_test_`).")
