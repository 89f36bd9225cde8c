"""The request bodies: a mail (``POST /mail`` and each item of ``POST /mail/batch``) and an
address to suppress, as the OpenAPI document describes them.

``mailer.validation`` decides what is accepted; these shapes say the same in OpenAPI 3.0, as
far as it can, with validation's own limits. What it cannot say (a header's name, a metadata
key, the byte size of metadata and attachments, how far ahead ``send_at`` may be) the
descriptions say. Every optional field takes what validation reads as "none" as well: null
(in JSON), an empty string, and for a list an empty list.

The limits that are settings (``MAX_RECIPIENTS``, ``MAX_ATTACHMENTS``) are the document's
(``limits_of``): the schema of an address list depends on them.
"""

import contextlib
import contextvars
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from mailer.config import DEFAULTS
from mailer.queue.suppressions import REASONS
from mailer.shapes.wire import Shape
from mailer.validation import extras
from mailer.validation.mail import MAX_SUBJECT

MAX_BATCH = 1000  # mails per POST /mail/batch


@dataclass(frozen=True)
class Limits:
    """The settings that bound a request, as the document states them."""

    max_recipients: int = DEFAULTS["MAX_RECIPIENTS"]
    max_attachments: int = DEFAULTS["MAX_ATTACHMENTS"]


_limits = contextvars.ContextVar("limits", default=None)  # None: the defaults


@contextlib.contextmanager
def limits_of(config):
    """Describe the requests with the limits of ``config`` (a Flask config) while in the block."""
    defaults = Limits()
    token = _limits.set(
        Limits(
            int(config.get("MAX_RECIPIENTS", defaults.max_recipients)),
            int(config.get("MAX_ATTACHMENTS", defaults.max_attachments)),
        )
    )
    try:
        yield
    finally:
        _limits.reset(token)


# What validation accepts, as ECMA-262 patterns. No regular expression says all that
# email-validator and the RFC 5322 parser do, so the address pattern matches their common forms
# only, each part within its limits, so that every string it matches is accepted: schemathesis
# sends such strings and expects a 202. What else the server takes (internationalised
# addresses, looser spacing) and refuses (special-use domains) is in ADDRESS_RULES.
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 atext
# A dot-atom of at most 64 characters (RFC 5321's limit on a local part).
LOCAL_PART = rf"(?:{ATEXT}{{1,15}}\.){{0,3}}{ATEXT}{{1,16}}"
# Labels without "--" (IDNA keeps it for A-labels), a top-level domain ending in a letter (as
# email-validator requires), and short enough that an address stays within 254 characters.
LABEL = r"[A-Za-z0-9]{1,10}(?:-[A-Za-z0-9]{1,10}){0,2}"
ADDR_SPEC = rf"{LOCAL_PART}@(?:{LABEL}\.){{1,3}}[A-Za-z0-9]{{0,9}}[A-Za-z]"
# A display name of atoms (Latin letters too, as RFC 6532 allows) or one quoted string of ASCII,
# without "?": "=?...?=" is an RFC 2047 encoded word, which the parser decodes or refuses.
NAME_ATOM = r"[A-Za-z0-9!#$%&'*+/=^_`{|}~\u00c0-\u024f-]{1,20}"
DISPLAY_NAME = rf'(?:{NAME_ATOM}(?: {NAME_ATOM}){{0,3}}|"[ !#->@-\[\]-~]{{0,40}}")'
MAILBOX = rf"(?:{ADDR_SPEC}|(?:{DISPLAY_NAME} )?<{ADDR_SPEC}>)"
# What a header may not hold (headers.FORBIDDEN_IN_HEADERS, spelled out).
NOT_IN_HEADERS = r"\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029"
HEADER_TEXT = rf"^[^{NOT_IN_HEADERS}]*$"
# The white space str.strip() takes off that a header may hold: a tag or a file name of
# nothing else is blank.
BLANKS = r" \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
BODY_TEXT = r"^[^\x00]*$"  # a body may hold anything but NUL, which no database stores
ADDRESS_TEXT = "Addresses separated by commas, e.g. `a@example.com, B <b@example.com>`."
ADDRESS_RULES = (
    "An address is `local@domain`, optionally with a display name: `Name <local@domain>` or "
    '`"Name" <local@domain>`. The pattern is its common form, within RFC 5321\'s lengths. '
    "The server checks each address with email-validator and the RFC 5322 parser, so it also "
    "accepts internationalised addresses (UTF-8 local parts, IDN domains, any letters in a "
    "name), other dot-atoms of up to 64 characters and looser spacing, and it refuses the "
    "special-use domains (`.test`, `.local`, `.localhost`, `.invalid`, `.onion`, `.arpa`) "
    "that the pattern lets through. In a form, repeat the field to give an array."
)
EMPTY = {"type": "string", "maxLength": 0}  # "" is "none" for an optional field


def _nothing():
    """An empty string, or null: "none" for an optional field."""
    return {**EMPTY, "nullable": True}


class Addresses:
    """An address field: one string of at most ``most`` comma-separated addresses (a setting's
    name: the document's ``Limits``), or an array of them. Optional unless ``required``: then
    also an empty string or array, or null, each meaning "none"."""

    def __init__(self, description, most, required=False):
        self.description = description
        self.most = most
        self.required = required

    def __get_pydantic_json_schema__(self, core_schema, handler):
        """The field's schema, with the document's limit."""
        most = (
            self.most
            if isinstance(self.most, int)
            else getattr(_limits.get() or Limits(), self.most)
        )
        mailbox = {"type": "string", "pattern": f"^{MAILBOX}$"}
        listed = MAILBOX if most == 1 else f"{MAILBOX}(?:, ?{MAILBOX}){{0,{most - 1}}}"
        text = {
            "type": "string",
            "description": ADDRESS_TEXT
            if most > 1
            else "One address, e.g. `Shop <shop@example.com>`.",
            "pattern": f"^{listed}$" if self.required else f"^(?:{listed})?$",
        }
        array = {"type": "array", "items": mailbox, "maxItems": most}
        array["description"] = "One address per item."
        if self.required:
            array["minItems"] = 1
        else:
            text["nullable"] = True
        description = self.description.format(most=most)
        return {"description": f"{description} {ADDRESS_RULES}", "oneOf": [text, array]}


class OrNothing:
    """An optional field that also takes "none" as an empty string or null, as validation does."""

    def __get_pydantic_json_schema__(self, core_schema, handler):
        """``oneOf`` the field's own schemas (not nullable: "none" takes null) and "none"."""
        schema = handler(core_schema)
        description = schema.pop("description", None)
        alternatives = schema.pop("oneOf", None) or schema.pop("anyOf", None) or [schema]
        alternatives = [
            {key: value for key, value in alternative.items() if key != "nullable"}
            for alternative in alternatives
        ]
        combined = {"oneOf": [*alternatives, _nothing()]}
        return {**combined, "description": description} if description else combined


class Setting:
    """A list's bound that is a setting: the document's ``Limits``, as ``maxItems``."""

    def __init__(self, name):
        self.name = name

    def __get_pydantic_json_schema__(self, core_schema, handler):
        """The field's schema with ``maxItems`` from the document's limits."""
        schema = handler(core_schema)
        schema["maxItems"] = getattr(_limits.get() or Limits(), self.name)
        return schema


class Request(Shape):
    """A request body: any field it does not list is refused."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


Tag = Annotated[
    str,
    Field(
        description="A tag: 1-128 characters, one line, not only spaces.",
        min_length=1,
        max_length=extras.MAX_TAG,
        pattern=rf"^[^{NOT_IN_HEADERS}]*[^{NOT_IN_HEADERS}{BLANKS}][^{NOT_IN_HEADERS}]*$",
    ),
]
HeaderValue = Annotated[
    str,
    Field(
        description="A header value: one line, no control characters.",
        max_length=extras.MAX_HEADER_VALUE,
        pattern=HEADER_TEXT,
    ),
]
MetadataValue = Annotated[str, Field(pattern=BODY_TEXT)]
BodyText = Annotated[str | None, Field(pattern=BODY_TEXT)]


def body(description):
    """A body field: any text but NUL; null or empty means none."""
    return Field(
        None,
        description=f"{description}, without NUL characters. Give `text`, `html` or both; "
        "null or empty means none.",
    )


class AttachmentRequest(Request):
    """A file to attach."""

    filename: str = Field(
        description="A file name, not a path: no `/`, `\\` or control characters, not `.` or "
        "`..`, not only spaces.",
        max_length=extras.MAX_FILENAME,
        pattern=rf"^(?!\.\.?$)[^/\\{NOT_IN_HEADERS}]*[^/\\{NOT_IN_HEADERS}{BLANKS}]"
        rf"[^/\\{NOT_IN_HEADERS}]*$",
    )
    content_type: Annotated[str | None, OrNothing()] = Field(
        None,
        description=f"A MIME type; {extras.DEFAULT_CONTENT_TYPE} if absent, empty or null.",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
    )
    content: str = Field(
        description="The file, base64 (RFC 4648, padded).", json_schema_extra={"format": "byte"}
    )
    content_id: Annotated[str | None, OrNothing()] = Field(
        None,
        description="Makes the file an inline part with this Content-ID, which the HTML shows "
        'as `<img src="cid:logo@example.com">`: the id without angle brackets, 1 to '
        f"{extras.MAX_CONTENT_ID} letters, digits and `{extras.CONTENT_ID_SYMBOLS}`, and no two "
        "files of a mail with the same. Absent, empty or null: an attached file.",
        max_length=extras.MAX_CONTENT_ID,
        pattern=rf"^[{extras.CONTENT_ID_CHARACTERS}]+$",
    )


class MailRequest(Request):
    """A mail to send. Any field not listed here is refused with 400."""

    # OpenAPI 3.0 has no "one of these is required", but anyOf of required ones says it: a
    # subject with a body (text, html or both: each a non-empty string, as null and "" mean
    # "no body"), or a template.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                *(
                    {
                        "required": ["subject", name],
                        "properties": {name: {"type": "string", "minLength": 1}},
                    }
                    for name in ("text", "html")
                ),
                {"required": ["template"]},
            ]
        }
    )

    from_: Annotated[Any, Addresses("The sender: exactly one address.", 1, required=True)] = Field(
        alias="from"
    )
    to: Annotated[
        Any, Addresses("The recipients, at most {most}.", "max_recipients", required=True)
    ]
    cc: Annotated[Any, Addresses("Copy recipients, at most {most}.", "max_recipients")] = None
    bcc: Annotated[Any, Addresses("Blind copy recipients, at most {most}.", "max_recipients")] = (
        None
    )
    reply_to: Annotated[Any, Addresses("At most one address for replies.", 1)] = None
    subject: str | None = Field(
        None,
        description="The subject: one line, without line breaks or control characters. "
        "Required unless `template` is given.",
        min_length=1,
        max_length=MAX_SUBJECT,
        pattern=HEADER_TEXT,
    )
    text: BodyText = body("The plain-text body")
    html: BodyText = body("The HTML body")
    headers: Annotated[
        dict[str, HeaderValue] | None, OrNothing(), Field(max_length=extras.MAX_HEADERS)
    ] = Field(
        None,
        description="Custom headers. Names are RFC 5322 field names (printable ASCII, no space "
        "or colon), not one the service sets (From, To, Cc, Bcc, Subject, Reply-To, Date, "
        "Message-ID, Content-Type, MIME-Version, ...).",
    )
    tags: Annotated[
        Tag | Annotated[list[Tag], Field(max_length=extras.MAX_TAGS)] | None, OrNothing()
    ] = Field(None, description=f"Up to {extras.MAX_TAGS} tags: one, or a list.")
    metadata: Annotated[
        dict[str, MetadataValue] | None, OrNothing(), Field(max_length=extras.MAX_METADATA_KEYS)
    ] = Field(
        None,
        description=f"A flat object of strings, at most {extras.MAX_METADATA_BYTES} bytes as "
        "JSON; keys are 1-64 letters, digits, `_`, `.` or `-`, and not `mail_id`.",
    )
    attachments: Annotated[list[AttachmentRequest] | None, Setting("max_attachments")] = Field(
        None,
        description="Files, at most `MAX_ATTACHMENTS`; their decoded total is at most "
        "`MAX_ATTACHMENT_BYTES` (413 past it).",
    )
    send_at: Annotated[datetime | None, OrNothing()] = Field(
        None,
        description="Hold the mail until then (`scheduled`): ISO 8601 with a zone, at most "
        "`MAX_SCHEDULE_DAYS` ahead; a time in the past means now. Empty (or null in JSON) means "
        "now.",
    )
    template: str | None = Field(
        None,
        description="A stored template's name, in place of `subject`, `text` and `html` (giving "
        "both is a 400): the mail is rendered from it when it is submitted, and stored "
        "rendered.",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
    )
    template_version: int | None = Field(
        None, description="The template's version; default: its latest.", ge=1, le=2**31 - 1
    )
    variables: dict[str, Any] | None = Field(
        None,
        description="The template's variables: a JSON object of at most `MAX_VARIABLES_BYTES` "
        "as JSON (in a form: the object as JSON text). A variable the template uses and this "
        "does not give is a 400 naming it (`variables.<name>`).",
    )


class BatchRequest(Request):
    """Mails with shared fields: each item of `mails` is merged over `defaults` (an item's
    field wins), so one template, sender and tags are given once and each item carries only
    its `to` and `variables`."""

    defaults: dict[str, Any] | None = Field(
        None, description="Fields of a MailRequest shared by every item."
    )
    mails: list[dict[str, Any]] = Field(
        description="The mails: each, merged over `defaults`, a MailRequest.",
        min_length=1,
        max_length=MAX_BATCH,
    )


class SuppressionRequest(Request):
    """An address to suppress."""

    address: Annotated[Any, Addresses("One address.", 1, required=True)]
    reason: Any = Field(
        None,
        description="Default `manual`.",
        json_schema_extra={"type": "string", "enum": [*REASONS, None], "nullable": True},
    )
    detail: str | None = Field(
        None,
        description="Why, at most 1000 characters.",
        max_length=1000,
        pattern=BODY_TEXT,
    )
