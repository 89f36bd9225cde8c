"""Templates on the wire: a version as ``POST``/``PUT``/``GET /templates/...`` answer it, the
list, a preview's rendering, and the request bodies.

``mailer.api.templates`` decides what is accepted (a name's characters, a template that
compiles); these shapes say the same in OpenAPI 3.0, as far as it can.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mailer.shapes.requests import BODY_TEXT, HEADER_TEXT, Request
from mailer.shapes.wire import Shape

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
MAX_NAME = 100
MAX_DESCRIPTION = 1000
MAX_SUBJECT_SOURCE = 2000  # a subject's template text: its rendering is checked as a subject


class TemplateVersion(Shape):
    """One version of a template: never changed once stored."""

    success: Literal[True] = Field(True)
    name: str = Field(description="The template's name.")
    version: int = Field(description="The version's number, from 1.", ge=1)
    subject: str = Field(description="The subject's template.")
    text: str | None = Field(description="The plain-text body's template.")
    html: str | None = Field(description="The HTML body's template (autoescaped).")
    description: str | None = Field(description="What the version is for, or what changed.")
    created_at: datetime = Field(description="When the version was stored.")
    created_by: str = Field(
        description="Who stored it: `api:key-<digest>`, `api:local` or `admin:<user>`."
    )


class Template(TemplateVersion):
    """A template's version with the numbers of all its versions."""

    versions: list[int] = Field(description="Every version's number, oldest first.")


class ListedTemplate(Shape):
    """A template as listed: its latest version's number and description."""

    name: str = Field(description="The template's name.")
    version: int = Field(description="Its latest version.", ge=1)
    description: str | None = Field(description="The latest version's description.")
    created_at: datetime = Field(description="When the template was created.")
    updated_at: datetime = Field(description="When its latest version was stored.")


class TemplatePage(Shape):
    """A page of templates, newest first."""

    success: Literal[True] = Field(True)
    templates: list[ListedTemplate]
    count: int = Field(description="Templates on this page.", ge=0)
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last."
    )


class RenderedTemplate(Shape):
    """A version rendered with the variables given: what a mail from it would hold."""

    success: Literal[True] = Field(True)
    subject: str = Field(description="The subject.")
    text: str | None = Field(description="The plain-text body, or null if the version has none.")
    html: str | None = Field(description="The HTML body, or null if the version has none.")


def _source(description):
    """A body template field: any text but NUL."""
    return Field(
        None,
        description=f"{description}, in Jinja2 syntax, without NUL characters. Give `text`, "
        "`html` or both.",
        pattern=BODY_TEXT,
    )


class TemplateVersionRequest(Request):
    """A new version of a template (`PUT /templates/{name}`)."""

    subject: str = Field(
        description="The subject's template (Jinja2): one line, no control characters. "
        "Rendered, it must be a valid subject.",
        min_length=1,
        max_length=MAX_SUBJECT_SOURCE,
        pattern=HEADER_TEXT,
    )
    text: str | None = _source("The plain-text body's template")
    html: str | None = _source("The HTML body's template (its variables are HTML-escaped)")
    description: str | None = Field(
        None,
        description=f"At most {MAX_DESCRIPTION} characters.",
        max_length=MAX_DESCRIPTION,
        pattern=BODY_TEXT,
    )


class TemplateRequest(TemplateVersionRequest):
    """A new template with its version 1 (`POST /templates`)."""

    name: str = Field(description="1-100 letters, digits, `_`, `.` or `-`.", pattern=NAME_PATTERN)


class RenderRequest(Request):
    """What to render a template's version with (`POST /templates/{name}/render`)."""

    variables: dict[str, Any] | None = Field(
        None,
        description="The template's variables: a JSON object, at most `MAX_VARIABLES_BYTES` as "
        "JSON.",
    )
    version: int | None = Field(
        None, description="The version; default: the latest.", ge=1, le=2**31 - 1
    )
