"""The optional parts of a mail request beyond addresses and bodies, checked strictly.

- ``headers``: custom headers. Names are RFC 5322 field names; the ones the service or the
  providers write themselves (From, To, Subject, Message-ID, Content-Type, ...) are refused,
  and so are those a provider reads as instructions to it (each provider module lists its
  own: X-Mailgun-*, X-SMTPAPI, ...); values follow the header rules of ``validation`` (no
  line breaks, no controls).
- ``tags``: up to ``MAX_TAGS`` short strings (SendGrid's limit of categories is 10).
- ``metadata``: a flat object of string values, at most ``MAX_METADATA_KEYS`` keys and
  ``MAX_METADATA_BYTES`` as JSON; returned with the mail and in its delivery events.
- ``attachments``: ``{filename, content_type, content}`` with base64 content (or multipart
  files), at most ``MAX_ATTACHMENTS`` of them; their decoded total is bounded by
  ``MAX_ATTACHMENT_BYTES`` (413 past it). A ``content_id`` makes a file an inline part (an
  image the HTML shows as ``cid:<id>``): the id without its angle brackets, once per mail.
- ``send_at``: ISO 8601 with a zone; held until then, at most ``MAX_SCHEDULE_DAYS`` ahead.
"""

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta

from mailer.validation.headers import BIDI_IN_FILE_NAMES, bidi_problem, header_problem
from providers import REGISTRY

FIELDS = ("headers", "tags", "metadata", "attachments", "send_at")
HEADER_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 ftext: printable ASCII but ":"
# Headers the service or the providers set themselves; a client's copy would clash or spoof.
OWNED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Reply-To",
        "Sender",
        "Date",
        "Message-ID",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "MIME-Version",
        "Return-Path",
        "Received",
        "DKIM-Signature",
        "Resent-From",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Date",
        "Resent-Message-ID",
        "Resent-Sender",
    )
)
MAX_HEADERS = 50
MAX_HEADER_VALUE = 998  # characters: RFC 5322's line limit
MAX_TAGS = 10
MAX_TAG = 128  # characters: Mailgun's limit on a tag
MAX_METADATA_KEYS = 10
MAX_METADATA_BYTES = 1024
METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
RESERVED_METADATA = frozenset({"mail_id"})  # ours: it carries the mail's id to the providers
MAX_FILENAME = 255
CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\Z")
DEFAULT_CONTENT_TYPE = "application/octet-stream"
ATTACHMENT_FIELDS = frozenset({"filename", "content_type", "content", "content_id"})
# A Content-ID as the HTML's "cid:" names it: RFC 5322's atext with "." and "@" (an id is
# often "logo@example.com"), without "/", which Mailgun would read as a path (its inline part's
# file name is the id), and without "`".
MAX_CONTENT_ID = 255
CONTENT_ID_SYMBOLS = "!#$%&'*+=?^_{|}~.@-"
CONTENT_ID_CHARACTERS = "A-Za-z0-9" + CONTENT_ID_SYMBOLS
CONTENT_ID = re.compile(rf"[{CONTENT_ID_CHARACTERS}]+\Z")
MAX_UTC_OFFSET = timedelta(hours=14)  # the widest real zone (Kiribati, UTC+14)


def validate_extras(
    data, errors, max_attachment_bytes, max_schedule_days, now=None, max_attachments=100
):
    """The clean optional parts of ``data``; problems are appended to ``errors``."""
    if data.keys().isdisjoint(FIELDS):  # most mail has none: nothing to check
        return {
            "headers": {},
            "tags": [],
            "metadata": {},
            "attachments": [],
            "send_at": None,
        }, False
    attachments, too_large = _attachments(
        data.get("attachments"), errors, max_attachment_bytes, max_attachments
    )
    return {
        "headers": _headers(data.get("headers"), errors),
        "tags": _tags(data.get("tags"), errors),
        "metadata": _metadata(data.get("metadata"), errors),
        "attachments": attachments,
        "send_at": _send_at(data.get("send_at"), errors, max_schedule_days, now),
    }, too_large


def _error(errors, field, message):
    """Record one problem."""
    errors.append({"field": field, "message": message})


def _headers(value, errors):
    """Custom headers as {name: value}, or {}."""
    if value in (None, {}, ""):
        return {}
    if not isinstance(value, dict):
        _error(errors, "headers", "Must be an object of header names to string values")
        return {}
    if len(value) > MAX_HEADERS:
        _error(errors, "headers", f"At most {MAX_HEADERS} headers")
        return {}
    clean = {}
    for name, text in value.items():
        problem = _header_name_problem(name) or _header_value_problem(text)
        if problem:
            _error(errors, f"headers.{name}", problem)
        else:
            clean[name] = text
    return clean


def _header_name_problem(name):
    """Why ``name`` cannot be a custom header's name, or None."""
    if not HEADER_NAME.match(name):
        return "Not a header field name (printable ASCII, no spaces or colons)"
    if name.lower() in OWNED_HEADERS:
        return f"{name} is set by the service itself; use the mail's own field"
    provider = _provider_reading(name)
    if provider is not None:
        return (
            f"{name} is an instruction to {provider.name} (recipients, events, delivery), "
            "not a header it passes on"
        )
    return None


def _provider_reading(name):
    """The provider that reads the header ``name`` as an instruction to it, or None.

    Every known provider is asked, not only the configured ones: a mail may fail over to any
    of them, and the settings may change while it waits."""
    return next(
        (provider for provider in REGISTRY.values() if provider.reads_as_instruction(name)), None
    )


def _header_value_problem(text):
    """Why ``text`` cannot be a header's value, or None."""
    if not isinstance(text, str):
        return "Must be a string"
    if len(text) > MAX_HEADER_VALUE:
        return f"Must be at most {MAX_HEADER_VALUE} characters"
    return header_problem(text)


def _tags(value, errors):
    """Tags as a list of strings, or []."""
    if value in (None, [], ""):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        _error(errors, "tags", "Must be a list of strings")
        return []
    if len(value) > MAX_TAGS:
        _error(errors, "tags", f"At most {MAX_TAGS} tags")
        return []
    for tag in value:
        problem = _tag_problem(tag)
        if problem:
            _error(errors, "tags", problem)
            return []
    return list(dict.fromkeys(value))


def _tag_problem(tag):
    """Why ``tag`` cannot be a tag, or None."""
    if not tag.strip():
        return "A tag must not be empty"
    if len(tag) > MAX_TAG:
        return f"A tag must be at most {MAX_TAG} characters"
    return header_problem(tag)


def _metadata(value, errors):
    """Metadata as a flat {key: string}, or {}."""
    if value in (None, {}, ""):
        return {}
    if not isinstance(value, dict):
        _error(errors, "metadata", "Must be an object of string values")
        return {}
    if len(value) > MAX_METADATA_KEYS:
        _error(errors, "metadata", f"At most {MAX_METADATA_KEYS} keys")
        return {}
    for key, text in value.items():
        if not METADATA_KEY.match(key) or key in RESERVED_METADATA:
            _error(
                errors,
                f"metadata.{key}",
                "Keys are 1-64 letters, digits, '_', '.' or '-' "
                f"(not {', '.join(sorted(RESERVED_METADATA))})",
            )
            return {}
        if not isinstance(text, str) or "\x00" in text:
            _error(errors, f"metadata.{key}", "Must be a string (flat, no NUL)")
            return {}
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
        _error(errors, "metadata", f"Must be at most {MAX_METADATA_BYTES} bytes as JSON")
        return {}
    return dict(value)


def _attachments(value, errors, max_bytes, max_count):
    """Attachments as [{filename, content_type, content: bytes}], and whether too large.

    At most ``max_count`` files, counted before any is decoded: each one costs a row and a
    part of every send."""
    if value in (None, []):
        return [], False
    if not isinstance(value, list):
        _error(errors, "attachments", "Must be a list of {filename, content_type, content}")
        return [], False
    if len(value) > max_count:
        _error(errors, "attachments", f"At most {max_count} attachments (MAX_ATTACHMENTS)")
        return [], False
    clean = [_attachment(item, f"attachments[{index}]", errors) for index, item in enumerate(value)]
    _repeated_content_ids(clean, errors)
    clean = [item for item in clean if item is not None]
    total = sum(len(item["content"]) for item in clean)
    if total > max_bytes:
        _error(
            errors,
            "attachments",
            f"{total} bytes in all; at most {max_bytes} (MAX_ATTACHMENT_BYTES)",
        )
        return [], True
    return clean, False


def _attachment(item, field, errors):
    """One attachment, clean, or None (with its problem recorded)."""
    if hasattr(item, "filename") and hasattr(item, "read"):  # a multipart file
        item = {
            "filename": item.filename,
            "content_type": item.mimetype or None,
            "content": item.read(),
        }
    elif not isinstance(item, dict) or set(item) - ATTACHMENT_FIELDS:
        _error(errors, field, "Must be {filename, content_type, content, content_id}")
        return None
    filename, content = item.get("filename"), item.get("content")
    problem = _filename_problem(filename)
    if problem:
        _error(errors, f"{field}.filename", problem)
        return None
    content_type = item.get("content_type") or DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or not CONTENT_TYPE.match(content_type):
        _error(errors, f"{field}.content_type", "Must be a MIME type such as application/pdf")
        return None
    content_id = item.get("content_id")
    problem = _content_id_problem(content_id)
    if problem:
        _error(errors, f"{field}.content_id", problem)
        return None
    data = content if isinstance(content, bytes) else _base64(content)
    if data is None:
        _error(errors, f"{field}.content", "Must be base64 (RFC 4648, with padding)")
        return None
    clean = {"filename": filename, "content_type": content_type.lower(), "content": data}
    if content_id:
        clean["content_id"] = content_id
    return clean


def _content_id_problem(content_id):
    """Why ``content_id`` cannot be an inline part's Content-ID, or None (none is fine)."""
    if content_id in (None, ""):
        return None
    if not isinstance(content_id, str):
        return "Must be a string"
    if content_id.startswith("<") and content_id.endswith(">"):
        return (
            "Give the id without angle brackets (logo@example.com, not <logo@example.com>): "
            "the HTML refers to it as cid:logo@example.com"
        )
    if len(content_id) > MAX_CONTENT_ID:
        return f"Must be at most {MAX_CONTENT_ID} characters"
    problem = header_problem(content_id)
    if problem:
        return problem
    if not CONTENT_ID.match(content_id):
        return (
            f"Letters, digits and {CONTENT_ID_SYMBOLS} only (no spaces, angle brackets or "
            "slashes), e.g. logo@example.com"
        )
    return None


def _repeated_content_ids(clean, errors):
    """Record each file whose ``content_id`` an earlier file of the mail has: "cid:" would
    name two parts. ``clean`` holds None where a file had a problem already."""
    first = {}
    for index, item in enumerate(clean):
        content_id = (item or {}).get("content_id")
        if content_id is None:
            continue
        if content_id in first:
            _error(
                errors,
                f"attachments[{index}].content_id",
                f"attachments[{first[content_id]}] has this content_id already: each inline "
                "part needs an id of its own",
            )
        else:
            first[content_id] = index


def _filename_problem(filename):
    """Why ``filename`` cannot name an attachment (a path, a control, a bidirectional
    control or mark that could disguise its extension), or None."""
    if not isinstance(filename, str) or not filename.strip():
        return "A file name is required"
    if len(filename) > MAX_FILENAME:
        return f"Must be at most {MAX_FILENAME} characters"
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        return "Must be a file name, not a path"
    return header_problem(filename) or bidi_problem(filename, BIDI_IN_FILE_NAMES)


def _base64(content):
    """Decoded base64 (whitespace allowed between lines), or None if it is not base64."""
    if not isinstance(content, str):
        return None
    try:
        return base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _send_at(value, errors, max_days, now=None):
    """When to send, as an aware datetime; None for now (a time in the past also means now).
    ``now``: the present, unless the clock's."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        _error(errors, "send_at", "Must be an ISO 8601 time with a zone")
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _error(
            errors,
            "send_at",
            "Must be an ISO 8601 time with a zone, e.g. 2026-12-01T09:00:00+01:00",
        )
        return None
    if moment.tzinfo is None:
        _error(
            errors,
            "send_at",
            "Give a time zone (e.g. Z or +01:00): a time without one is ambiguous",
        )
        return None
    if abs(moment.utcoffset()) > MAX_UTC_OFFSET:  # PostgreSQL refuses such a zone outright
        _error(errors, "send_at", "The time zone's offset must be within ±14:00")
        return None
    now = now or datetime.now(UTC)
    if moment > now + timedelta(days=max_days):
        _error(errors, "send_at", f"At most {max_days} days ahead (MAX_SCHEDULE_DAYS)")
        return None
    return moment if moment > now else None
