"""Client webhook endpoints on the wire: an endpoint as ``/webhook-endpoints`` answers it (with
its secret once, at creation), a page of them, and the request bodies.

``mailer.api.endpoints`` decides what is accepted (a URL a webhook may go to); these shapes say
the same in OpenAPI 3.0, as far as it can.
"""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field

from mailer.events.destinations import MAX_URL
from mailer.events.outbox import EVENTS
from mailer.shapes.requests import Request
from mailer.shapes.wire import Shape

EventType = Literal[EVENTS]
URL_PATTERN = r"^https?://[^\s/?#@]+([/?][^\s#]*)?$"


class WebhookEndpoint(Shape):
    """A tenant's webhook endpoint; its secret is never shown again after creation."""

    success: Literal[True] = Field(True)
    id: UUID = Field(description="The endpoint's id.")
    tenant: str = Field(description="The tenant whose mail's webhooks it receives.")
    url: str = Field(description="Where the webhooks are posted.")
    events: list[EventType] = Field(description="The event types it receives; empty: every one.")
    disabled: bool = Field(description="Whether its deliveries are stopped.")
    created_at: datetime = Field(description="When it was created.")
    updated_at: datetime = Field(description="When it was last changed.")


class CreatedWebhookEndpoint(WebhookEndpoint):
    """A new endpoint, with the secret that signs its webhooks: shown this once."""

    secret: str = Field(
        description="`whsec_` and base64 of 32 random bytes: verify each webhook's "
        "`webhook-signature` with it (Standard Webhooks). Shown only now: store it."
    )


class ListedWebhookEndpoint(Shape):
    """An endpoint as listed."""

    id: UUID = Field(description="The endpoint's id.")
    tenant: str = Field(description="The tenant whose mail's webhooks it receives.")
    url: str = Field(description="Where the webhooks are posted.")
    events: list[EventType] = Field(description="The event types it receives; empty: every one.")
    disabled: bool = Field(description="Whether its deliveries are stopped.")
    created_at: datetime = Field(description="When it was created.")
    updated_at: datetime = Field(description="When it was last changed.")


class WebhookEndpointPage(Shape):
    """A page of endpoints, newest first."""

    success: Literal[True] = Field(True)
    endpoints: list[ListedWebhookEndpoint]
    count: int = Field(description="Endpoints on this page.", ge=0)
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


def _url(default):
    """The ``url`` field of a request."""
    return Field(
        default,
        description="An `https` URL (`http` only with `WEBHOOK_ALLOW_HTTP`) whose host resolves "
        "to public addresses only (loopback, link-local and private ones only with "
        "`WEBHOOK_ALLOW_PRIVATE`); no credentials, no fragment.",
        min_length=1,
        max_length=MAX_URL,
        pattern=URL_PATTERN,
    )


class WebhookEndpointRequest(Request):
    """A new endpoint (`POST /webhook-endpoints`)."""

    url: str = _url(...)
    events: list[EventType] | None = Field(
        None, description="The event types to send it; empty or absent: every one."
    )


class WebhookEndpointChange(Request):
    """A change of an endpoint (`PATCH /webhook-endpoints/{endpoint_id}`): only the fields
    given change."""

    url: str | None = _url(None)
    events: list[EventType] | None = Field(
        None, description="The event types to send it; empty: every one."
    )
    disabled: bool | None = Field(
        None,
        description="true stops its deliveries: no webhook is written for it (those already "
        "written wait); false resumes them.",
    )
