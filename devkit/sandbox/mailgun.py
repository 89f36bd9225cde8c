"""Mailgun's send API as the sandbox speaks it: ``POST /v3/<domain>/messages``.

Form fields (url-encoded or multipart), HTTP Basic auth with user ``api``, a JSON ``{"id",
"message"}`` on success and Mailgun's own error texts. Files come as ``attachment`` parts, and
as ``inline`` parts, whose file name Mailgun makes their Content-ID (the record shows it as the
part's ``content_id``). The Message-ID a mail is delivered with is its ``h:Message-Id`` when
the client gives one, else Mailgun's own; either is the ``id`` answered (the record's
``message_id`` and ``id``).

Mailgun's documented limits are enforced, so that a client which exceeds them finds out here:
at most 3 ``o:tag`` fields of at most 128 characters (400), and 16 KB of sending options
(``o:``, ``h:``, ``v:`` and ``t:`` fields, names and values) in all (400). Mailgun documents no
answer text for these; the sandbox's says what was exceeded. Unicode in a tag is stripped from
it, and a tag of nothing but Unicode is dropped, as Mailgun's tags reference says.
"""

import secrets
from datetime import UTC, datetime

from werkzeug.routing import Rule

from devkit.sandbox.wire import (
    ADDRESS,
    TEXT,
    Answer,
    dumps,
    file_record,
    header,
    json_answer,
    now_iso,
    phrase,
    retry_after,
)

NAME = "mailgun"
RULES = [Rule("/v3/<domain>/messages", endpoint=NAME, methods=["POST"])]
MAX_TAGS = 3  # o:tag fields per message
MAX_TAG_LENGTH = 128  # characters
MAX_OPTIONS_BYTES = 16 * 1024  # o:, h:, v: and t: fields, names and values, UTF-8, in total
OPTIONS_TOO_LARGE = (
    "Send options (parameters starting with o:, h:, v:, or t:) are limited to 16KB total"
)
TOO_MANY_TAGS = f"o:tag: a message may be marked with up to {MAX_TAGS} tags"
TAG_TOO_LONG = f"o:tag: a tag may be at most {MAX_TAG_LENGTH} characters long"
NEED_BODY = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"
BAD_ADDRESS = "{} parameter is not a valid address. please check documentation"


def split_addresses(value: str) -> list[str]:
    """Split a comma-separated address list, respecting quoted names and <...>."""
    if "," not in value:
        value = value.strip()
        return [value] if value else []
    parts, buf, quoted, angle = [], [], False, False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch in "<>" and not quoted:
            angle = ch == "<"
        elif ch == "," and not (quoted or angle):
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def _bare_address(entry: str) -> str:
    """The addr-spec inside 'Name <addr>' (or the entry itself)."""
    start, end = entry.rfind("<"), entry.rfind(">")
    if start != -1 and end > start:
        return entry[start + 1 : end].strip()
    return entry.strip()


def _valid_address(entry: str) -> bool:
    """Loose syntax check, roughly what Mailgun rejects outright."""
    return ADDRESS.match(_bare_address(entry)) is not None


def _record(fields) -> tuple[dict, bool]:
    """Build a message record from Mailgun form fields; also say if it has a body."""
    lists = {"to": [], "cc": [], "bcc": []}
    single, custom, headers_in, options = {}, {}, {}, {}
    for name, value in fields:
        if name in lists:
            lists[name].extend(split_addresses(value))
        elif name[:2] == "h:":
            headers_in[name[2:]] = value
        elif name[:2] == "v:":
            custom[name[2:]] = value
        elif name == "o:tag":
            tag = value.encode("ascii", "ignore").decode()  # Unicode is stripped from a tag
            if tag:
                options.setdefault("tag", []).append(tag)
        elif name[:2] == "o:":
            options.setdefault(name[2:], []).append(value)
        else:
            single[name] = value
    reply_to = [v for k, v in headers_in.items() if k.lower() == "reply-to"]
    rec = {
        "provider": NAME,
        "id": None,
        "received_at": None,
        "from": single.get("from", "").strip(),
        **lists,
        "reply_to": reply_to[-1] if reply_to else None,
        "subject": single.get("subject"),
        "text": single.get("text"),
        "html": single.get("html"),
        "custom": custom,
        "headers_in": headers_in,
        "options": {k: v[0] if len(v) == 1 else v for k, v in options.items()},
    }
    has_body = any(single.get(k) for k in ("text", "html", "amp-html", "template"))
    return rec, has_body


def _files(request) -> list[dict]:
    """The files of the request as the record keeps them: the ``attachment`` parts, then the
    ``inline`` ones, each with its file name as its Content-ID."""
    files = [
        file_record(upload.filename, upload.mimetype, upload.read())
        for upload in request.files.getlist("attachment")
    ]
    files += [
        file_record(upload.filename, upload.mimetype, upload.read(), "inline", upload.filename)
        for upload in request.files.getlist("inline")
    ]
    return files


def _options_error(fields) -> str | None:
    """The 400 message for options beyond Mailgun's documented limits, or None."""
    tags = [value for name, value in fields if name == "o:tag"]
    if len(tags) > MAX_TAGS:
        return TOO_MANY_TAGS
    if any(len(tag) > MAX_TAG_LENGTH for tag in tags):
        return TAG_TOO_LONG
    size = sum(
        len(name.encode()) + len(value.encode())
        for name, value in fields
        if name[:2] in ("o:", "h:", "v:", "t:")
    )
    return OPTIONS_TOO_LARGE if size > MAX_OPTIONS_BYTES else None


def _error(rec, has_body, reject_to) -> str | None:
    """Mailgun's 400 message for an invalid (or deliberately rejected) request, or None."""
    if not rec["from"]:
        return "from parameter is missing"
    if not rec["to"]:
        return "to parameter is missing"
    if not has_body:
        return NEED_BODY
    if not _valid_address(rec["from"]):
        return BAD_ADDRESS.format("from")
    for field in ("to", "cc", "bcc"):
        if not all(_valid_address(a) for a in rec[field]):
            return BAD_ADDRESS.format(field)
    if reject_to and any(reject_to in r for r in rec["to"] + rec["cc"] + rec["bcc"]):
        return BAD_ADDRESS.format("to")
    return None


def _message_id(domain) -> str:
    """A Mailgun-style message id: <YYYYmmddHHMMSS.hex@domain>."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"<{stamp}.{secrets.token_hex(6)}@{domain}>"


def _authorized(request, key: str | None) -> bool:
    """Basic auth with user 'api' and the configured key (any non-empty key if unset)."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username != "api" or not auth.password:
        return False
    return key is None or secrets.compare_digest(auth.password.encode(), key.encode())


def send(request, key, reject_to, domain) -> tuple[Answer, list[dict]]:
    """Answer a Mailgun send: auth, parse, validate, accept. Returns (answer, records)."""
    if not _authorized(request, key):
        return Answer(b"Forbidden", 401, content_type=TEXT), []
    # Like Mailgun, a body that is not a form simply has no fields.
    fields = list(request.form.items(multi=True))
    rec, has_body = _record(fields)
    rec["attachments"] = _files(request)
    error = _error(rec, has_body, reject_to) or _options_error(fields)
    if error:
        return json_answer(400, {"message": error}), []
    rec["id"] = rec["message_id"] = header(rec["headers_in"], "Message-Id") or _message_id(domain)
    rec["received_at"] = now_iso()
    return json_answer(200, {"id": rec["id"], "message": "Queued. Thank you."}), [rec]


def fault_body(status) -> tuple[bytes, str]:
    """The body Mailgun sends with this error status."""
    if status == 401:
        return b"Forbidden", TEXT
    message = "Too many requests" if status == 429 else phrase(status)
    return dumps({"message": message}), "application/json"


def fault_headers(status, seconds) -> list[tuple[str, str]]:
    """Headers of an injected fault: Retry-After when the behaviour sets ``retry_after``."""
    return retry_after(seconds)
