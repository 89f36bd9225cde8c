# Local test double for the Mailgun and SendGrid send APIs. The network reaches no real
# provider, so tests, benchmarks and developers point the mail service at this server on
# loopback instead. It is a test tool: never expose it beyond localhost.
"""Mailgun + SendGrid sandbox: a stdlib-only HTTP server that mimics both send APIs.

Run it with ``python scripts/sandbox.py`` or embed it in tests::

    with Sandbox(mailgun_key="k").start() as sb:
        ...  # POST to f"{sb.url}/v3/<domain>/messages"
        sb.messages("mailgun")

Faults are injected per provider with ``Sandbox.configure`` or
``PUT /_sandbox/behaviour/<provider>``: ``status`` (+ optional ``body``/``content_type``,
``retry_after``) and ``hang`` are the injected fault, limited to the next ``count`` requests when
``count`` is set; ``latency_ms`` and ``reject_to`` apply to every request. An injected fault is
answered before authentication, as a failing gateway in front of the provider would.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import html
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, urlsplit

PROVIDERS = ("mailgun", "sendgrid")
MAX_BODY = 64 * 1024 * 1024  # refuse absurd uploads rather than buffer them
PAGE_LIMIT = 200  # the browser page shows only the newest messages
POLL_INTERVAL = 0.05  # how quickly serve_forever notices stop()

MAILGUN_PATH = re.compile(r"^/v3/([^/]+)/messages/?$")
SENDGRID_PATH = "/v3/mail/send"
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")

SG_HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"
SG_AUTH_ERROR = {
    "errors": [
        {
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "field": None,
            "help": None,
        }
    ]
}
SG_FROM_MISSING = (
    "The from object must be provided for every email send. It is an object that requires "
    'the email parameter, but may also contain a name parameter.  e.g. {"email" : '
    '"example@example.com"}  or {"email" : "example@example.com", "name" : "Example '
    'Recipient"}.'
)
SG_PERS_MISSING = (
    "The personalizations field is required and must have at least one personalization."
)
SG_TO_MISSING = (
    "The to array is required for all personalization objects, and must have at least one "
    "email object with a valid email address."
)
SG_SUBJECT_MISSING = (
    "The subject is required. You can get around this requirement if you use a template with "
    "a subject defined or if every personalization has a subject defined."
)
SG_CONTENT_MISSING = (
    "Unless a valid template_id is provided, the content parameter is required. There must be "
    "at least one defined content block. We typically suggest both text/plain and text/html "
    "blocks are included, but only one block is required."
)
SG_BAD_ADDRESS = "Does not contain a valid address."
SG_DUPLICATE = (
    "Each email address in the personalization block should be unique between to, cc, and "
    "bcc. We found the first duplicate instance of [{}] in the personalizations.{}.{} field."
)
MG_NEED_BODY = "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"

# Behaviour keys and the check each value must pass (None always means "unset").
BEHAVIOUR_CHECKS = {
    "status": lambda v: isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599,
    "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "retry_after": lambda v: _is_number(v) and v >= 0,
    "hang": lambda v: _is_number(v) and v >= 0,
    "latency_ms": lambda v: _is_number(v) and v >= 0,
    "body": lambda v: isinstance(v, str | bytes),
    "content_type": lambda v: isinstance(v, str) and "\n" not in v and "\r" not in v,
    "reject_to": lambda v: isinstance(v, str) and v != "",
}


def _is_number(value) -> bool:
    """True for int/float but not bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(obj) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":")).encode()


def _check_provider(provider) -> None:
    """Raise ValueError for anything but a known provider name."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")


def _validate_behaviour(behaviour: dict) -> dict:
    """Return behaviour without None values, raising ValueError on bad keys or values."""
    clean = {}
    for key, value in behaviour.items():
        if key not in BEHAVIOUR_CHECKS:
            raise ValueError(f"unknown behaviour {key!r}; known: {sorted(BEHAVIOUR_CHECKS)}")
        if value is None:
            continue
        if not BEHAVIOUR_CHECKS[key](value):
            raise ValueError(f"invalid value for {key!r}: {value!r}")
        clean[key] = value
    if "body" in clean and "status" not in clean:
        raise ValueError("'body' is only sent with an injected 'status'")
    return clean


def _copy_record(record: dict) -> dict:
    """Copy a message record deeply enough that callers cannot alter the sandbox's state."""
    out = dict(record)
    for key in ("to", "cc", "bcc"):
        out[key] = list(record[key])
    for key in ("custom", "headers_in"):
        out[key] = dict(record[key])
    return out


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------


class Reply:
    """An HTTP answer: status, body bytes, content type and extra headers."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status, body=b"", content_type=None, headers=()):
        """Store the parts of the answer."""
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers)


def _json_reply(status, obj, headers=()) -> Reply:
    """A JSON reply."""
    return Reply(status, _json(obj), "application/json", headers)


def _fault_headers(provider, status, retry_after) -> list[tuple[str, str]]:
    """Retry-After (and SendGrid's rate-limit headers on 429) for an injected fault."""
    if retry_after is None:
        return []
    seconds = math.ceil(retry_after)
    headers = [("Retry-After", str(seconds))]
    if provider == "sendgrid" and status == 429:
        headers += [
            ("X-RateLimit-Limit", "600"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", str(math.ceil(time.time() + retry_after))),
        ]
    return headers


def _default_fault_body(provider, status) -> tuple[bytes, str]:
    """The body the real provider sends with this status."""
    if provider == "mailgun":
        if status == 401:
            return b"Forbidden", "text/plain; charset=utf-8"
        message = "Too many requests" if status == 429 else _phrase(status)
        return _json({"message": message}), "application/json"
    if status == 401:
        return _json(SG_AUTH_ERROR), "application/json"
    if status == 429:
        return _json({"errors": [{"field": None, "message": "too many requests"}]}), (
            "application/json"
        )
    message = "internal error" if status >= 500 else _phrase(status).lower()
    return _json({"errors": [{"message": message, "field": None, "help": None}]}), (
        "application/json"
    )


def _phrase(status) -> str:
    """Standard reason phrase, or a generic one for unregistered codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _fault_reply(provider, fault) -> Reply:
    """The injected answer described by a behaviour snapshot."""
    status = fault["status"]
    headers = _fault_headers(provider, status, fault.get("retry_after"))
    if "body" not in fault:
        body, ctype = _default_fault_body(provider, status)
        return Reply(status, body, ctype, headers)
    body = fault["body"]
    body = body.encode() if isinstance(body, str) else body
    ctype = fault.get("content_type")
    if ctype is None:  # sniff just enough that an HTML error page looks like one
        is_html = body.lstrip()[:1] == b"<"
        ctype = "text/html; charset=utf-8" if is_html else "text/plain; charset=utf-8"
    return Reply(status, body, ctype, headers)


# ---------------------------------------------------------------------------------------------
# Mailgun
# ---------------------------------------------------------------------------------------------


def _split_addresses(value: str) -> list[str]:
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
    """Loose syntax check, roughly what the providers reject outright."""
    return ADDRESS.match(_bare_address(entry)) is not None


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Text fields of a multipart/form-data body; file parts (attachments) are skipped."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        return []
    fields = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        fields.append((str(name), payload.decode(charset, "replace")))
    return fields


def _mailgun_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Form fields of a Mailgun request, in order (names may repeat)."""
    ctype = content_type.lower()
    if ctype.startswith("application/x-www-form-urlencoded"):
        return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    if ctype.startswith("multipart/form-data"):
        return _parse_multipart(content_type, body)
    return []  # like Mailgun: an unparseable body simply has no fields


def _mailgun_record(fields) -> tuple[dict, bool]:
    """Build a message record from Mailgun form fields; also say if it has a body."""
    lists = {"to": [], "cc": [], "bcc": []}
    single, custom, headers_in, options = {}, {}, {}, {}
    for name, value in fields:
        if name in lists:
            lists[name].extend(_split_addresses(value))
        elif name[:2] == "h:":
            headers_in[name[2:]] = value
        elif name[:2] == "v:":
            custom[name[2:]] = value
        elif name[:2] == "o:":
            options.setdefault(name[2:], []).append(value)
        else:
            single[name] = value
    reply_to = [v for k, v in headers_in.items() if k.lower() == "reply-to"]
    rec = {
        "provider": "mailgun",
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


def _mailgun_error(rec, has_body) -> str | None:
    """Mailgun's 400 message for an invalid request, or None."""
    if not rec["from"]:
        return "from parameter is missing"
    if not rec["to"]:
        return "to parameter is missing"
    if not has_body:
        return MG_NEED_BODY
    if not _valid_address(rec["from"]):
        return "from parameter is not a valid address. please check documentation"
    for field in ("to", "cc", "bcc"):
        if not all(_valid_address(a) for a in rec[field]):
            return f"{field} parameter is not a valid address. please check documentation"
    return None


def _mailgun_id(domain) -> str:
    """A Mailgun-style message id: <YYYYmmddHHMMSS.hex@domain>."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"<{stamp}.{secrets.token_hex(6)}@{domain}>"


def _mailgun_authorized(header: str | None, key: str | None) -> bool:
    """Basic auth with user 'api' and the configured key (any non-empty key if unset)."""
    if not header or header[:6].lower() != "basic ":
        return False
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if user != "api" or not password:
        return False
    return key is None or hmac.compare_digest(password.encode(), key.encode())


def mailgun_send(handler, domain, body, reject_to) -> tuple[Reply, list[dict]]:
    """Answer a Mailgun send: auth, parse, validate, accept. Returns (reply, records)."""
    if not _mailgun_authorized(handler.headers.get("Authorization"), handler.sandbox.mailgun_key):
        return Reply(401, b"Forbidden", "text/plain; charset=utf-8"), []
    fields = _mailgun_fields(handler.headers.get("Content-Type", ""), body)
    rec, has_body = _mailgun_record(fields)
    error = _mailgun_error(rec, has_body)
    if error is None and reject_to:
        recipients = rec["to"] + rec["cc"] + rec["bcc"]
        if any(reject_to in r for r in recipients):
            error = "to parameter is not a valid address. please check documentation"
    if error:
        return _json_reply(400, {"message": error}), []
    rec["id"] = _mailgun_id(domain)
    rec["received_at"] = _now_iso()
    return _json_reply(200, {"id": rec["id"], "message": "Queued. Thank you."}), [rec]


# ---------------------------------------------------------------------------------------------
# SendGrid
# ---------------------------------------------------------------------------------------------


def _sg_error(message, field, anchor=None) -> dict:
    """One entry of SendGrid's errors list."""
    return {"message": message, "field": field, "help": SG_HELP + anchor if anchor else None}


def _sg_email_ok(obj) -> bool:
    """True for an email object {"email": "a@b", "name"?: str}."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("email"), str)
        and ADDRESS.match(obj["email"].strip()) is not None
    )


def _sg_recipient_errors(pers, i) -> list[dict]:
    """Errors in the to/cc/bcc lists of personalization i."""
    errors, seen = [], set()
    to_missing = not isinstance(pers.get("to"), list) or not pers["to"]
    if to_missing:
        field = f"personalizations.{i}.to"
        errors.append(_sg_error(SG_TO_MISSING, field, "message.personalizations"))
    for key in ("to", "cc", "bcc"):
        items = pers.get(key)
        if items is None or (key == "to" and to_missing):
            continue
        if not isinstance(items, list):
            errors.append(_sg_error("Invalid type.", f"personalizations.{i}.{key}"))
            continue
        for j, obj in enumerate(items):
            field = f"personalizations.{i}.{key}.{j}.email"
            if not _sg_email_ok(obj):
                errors.append(_sg_error(SG_BAD_ADDRESS, field, "message.personalizations"))
                continue
            email = obj["email"].strip().lower()
            if email in seen:
                msg = SG_DUPLICATE.format(obj["email"], i, key)
                errors.append(_sg_error(msg, f"personalizations.{i}", "message.personalizations"))
            seen.add(email)
    return errors


def _sg_personalization_errors(items) -> list[dict]:
    """Errors in the personalizations array."""
    if not isinstance(items, list) or not items:
        return [_sg_error(SG_PERS_MISSING, "personalizations", "-Personalizations-Errors")]
    errors = []
    for i, pers in enumerate(items):
        if not isinstance(pers, dict):
            errors.append(_sg_error("Invalid type.", f"personalizations.{i}"))
        else:
            errors.extend(_sg_recipient_errors(pers, i))
    return errors


def _sg_content_errors(payload) -> list[dict]:
    """Errors in subject and content (both optional when a template_id is given)."""
    if payload.get("template_id"):
        return []
    errors = []
    pers = payload.get("personalizations")
    pers = pers if isinstance(pers, list) else []
    every_has_subject = bool(pers) and all(
        isinstance(p, dict) and isinstance(p.get("subject"), str) and p["subject"] for p in pers
    )
    subject = payload.get("subject")
    if not (isinstance(subject, str) and subject) and not every_has_subject:
        errors.append(_sg_error(SG_SUBJECT_MISSING, "subject", "message.subject"))
    content = payload.get("content")
    if not isinstance(content, list) or not content:
        return errors + [_sg_error(SG_CONTENT_MISSING, "content", "message.content")]
    for i, block in enumerate(content):
        block = block if isinstance(block, dict) else {}
        if not isinstance(block.get("type"), str) or not block["type"]:
            errors.append(_sg_error("The content type is required.", f"content.{i}.type"))
        if not isinstance(block.get("value"), str) or not block["value"]:
            msg = "The content value must be a string at least one character in length."
            errors.append(_sg_error(msg, f"content.{i}.value", "message.content.value"))
    return errors


def _sendgrid_errors(payload) -> list[dict]:
    """All validation errors for a SendGrid v3 mail/send payload (empty when valid)."""
    if not isinstance(payload, dict):
        return [_sg_error("Bad Request", None, "message.body")]
    errors = _sg_personalization_errors(payload.get("personalizations"))
    if not _sg_email_ok(payload.get("from")):
        missing = not isinstance(payload.get("from"), dict) or not payload["from"].get("email")
        msg = SG_FROM_MISSING if missing else SG_BAD_ADDRESS
        errors.append(_sg_error(msg, "from.email", "message.from"))
    if payload.get("reply_to") is not None and not _sg_email_ok(payload["reply_to"]):
        errors.append(_sg_error(SG_BAD_ADDRESS, "reply_to.email", "message.reply_to"))
    return errors + _sg_content_errors(payload)


def _sg_rejected(payload, reject_to) -> dict | None:
    """The bad-address error for the first recipient containing reject_to, or None."""
    for i, pers in enumerate(payload["personalizations"]):
        for key in ("to", "cc", "bcc"):
            for j, obj in enumerate(pers.get(key) or []):
                if reject_to in obj["email"]:
                    field = f"personalizations.{i}.{key}.{j}.email"
                    return _sg_error(SG_BAD_ADDRESS, field, "message.personalizations")
    return None


def _sg_addr(obj) -> str:
    """Render an email object as 'Name <email>' or 'email'."""
    name = obj.get("name")
    return f"{name} <{obj['email']}>" if name else obj["email"]


def _sg_merged(payload, pers, key) -> dict:
    """Top-level dict `key` overridden by the personalization's (non-dicts ignored)."""
    top, own = payload.get(key), pers.get(key)
    return {**(top if isinstance(top, dict) else {}), **(own if isinstance(own, dict) else {})}


def _sendgrid_records(payload, msg_id) -> list[dict]:
    """One message record per personalization (each is a separate email at SendGrid)."""
    content = {}
    for block in payload.get("content") or []:
        content.setdefault(block.get("type"), block.get("value"))
    reply_to = payload.get("reply_to")
    received_at = _now_iso()
    return [
        {
            "provider": "sendgrid",
            "id": msg_id,
            "received_at": received_at,
            "from": _sg_addr(payload["from"]),
            **{key: [_sg_addr(o) for o in pers.get(key) or []] for key in ("to", "cc", "bcc")},
            "reply_to": _sg_addr(reply_to) if reply_to else None,
            "subject": pers.get("subject") or payload.get("subject"),
            "text": content.get("text/plain"),
            "html": content.get("text/html"),
            "custom": _sg_merged(payload, pers, "custom_args"),
            "headers_in": _sg_merged(payload, pers, "headers"),
        }
        for pers in payload["personalizations"]
    ]


def _sendgrid_authorized(header: str | None, key: str | None) -> bool:
    """Bearer token equal to the configured key (any non-empty token if unset)."""
    if not header or header[:7].lower() != "bearer ":
        return False
    token = header[7:].strip()
    if not token:
        return False
    return key is None or hmac.compare_digest(token.encode(), key.encode())


def sendgrid_send(handler, body, reject_to) -> tuple[Reply, list[dict]]:
    """Answer a SendGrid send: auth, parse, validate, accept. Returns (reply, records)."""
    if not _sendgrid_authorized(handler.headers.get("Authorization"), handler.sandbox.sendgrid_key):
        return _json_reply(401, SG_AUTH_ERROR), []
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None  # reported as "Bad Request" below, like SendGrid does
    errors = _sendgrid_errors(payload)
    if not errors and reject_to:
        rejected = _sg_rejected(payload, reject_to)
        errors = [rejected] if rejected else []
    if errors:
        return _json_reply(400, {"errors": errors}), []
    msg_id = secrets.token_urlsafe(16)  # 22 url-safe characters, like SendGrid's ids
    return Reply(202, headers=[("X-Message-Id", msg_id)]), _sendgrid_records(payload, msg_id)


# ---------------------------------------------------------------------------------------------
# Shared state
# ---------------------------------------------------------------------------------------------


class _State:
    """Messages, request log and behaviour, guarded by one lock."""

    def __init__(self, default_latency_ms):
        """Start empty, with no behaviour configured."""
        self.lock = threading.Lock()
        self.default_latency_ms = default_latency_ms
        self.messages: list[dict] = []
        self.requests: list[dict] = []
        self.behaviour: dict[str, dict] = {p: {} for p in PROVIDERS}

    def take(self, provider) -> tuple[float, dict | None, str | None]:
        """Return (latency_ms, fault snapshot or None, reject_to), consuming one 'count'."""
        with self.lock:
            b = self.behaviour[provider]
            latency = b.get("latency_ms", self.default_latency_ms)
            reject_to = b.get("reject_to")
            if "status" not in b and "hang" not in b:
                return latency, None, reject_to
            count = b.get("count")
            if count is not None:
                if count <= 0:
                    return latency, None, reject_to
                b["count"] = count - 1
            return latency, dict(b), reject_to

    def record(self, provider, at, status, records) -> None:
        """Log one send request and keep the messages it created."""
        with self.lock:
            self.requests.append({"provider": provider, "at": at, "status": status})
            self.messages.extend(records)

    def reset(self) -> None:
        """Forget messages, requests and behaviour."""
        with self.lock:
            self.messages = []
            self.requests = []
            self.behaviour = {p: {} for p in PROVIDERS}

    def snapshot(self, kind, provider=None) -> list[dict]:
        """The messages or requests list (records are never mutated once stored)."""
        with self.lock:
            items = list(self.messages if kind == "messages" else self.requests)
        return [i for i in items if i["provider"] == provider] if provider else items


# ---------------------------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Thread-per-connection server that tracks its connections so stop() can end them."""

    daemon_threads = True
    block_on_close = False  # server_close() must not wait for hung or idle keep-alive threads
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address, sandbox):
        """Bind to address on behalf of sandbox."""
        self.sandbox = sandbox
        self.stopping = threading.Event()
        self.conn_lock = threading.Lock()
        self.open_conns: set[socket.socket] = set()
        self.accepted = 0
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        """Count and remember the connection, then hand it to a thread."""
        with self.conn_lock:
            self.accepted += 1
            self.open_conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        """Forget the connection once its thread is done with it."""
        with self.conn_lock:
            self.open_conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client socket so blocked handler threads exit."""
        with self.conn_lock:
            conns = list(self.open_conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer

    def handle_error(self, request, client_address):
        """Stay quiet about clients that went away; report real bugs."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)


class _Headers(dict):
    """Request headers keyed by lower-case name (enough for this server's needs)."""

    def get(self, name, default=None):
        """Case-insensitive lookup."""
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        """Case-insensitive item access."""
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        """Case-insensitive membership."""
        return dict.__contains__(self, name.lower())


_date_cache = (0, "")  # (unix second, formatted Date header): formatting costs ~10 us


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the provider emulations and the /_sandbox control API."""

    protocol_version = "HTTP/1.1"  # keep-alive, so benchmark clients reuse connections
    wbufsize = 64 * 1024  # headers and body leave in one send; flushed per request
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on small answers
    server_version = "mail-sandbox"

    def version_string(self) -> str:
        """Server header value (without the Python version)."""
        return self.server_version

    @property
    def sandbox(self) -> Sandbox:
        """The owning Sandbox."""
        return self.server.sandbox

    def log_message(self, format, *args):
        """Silence the per-request log line."""

    def parse_request(self) -> bool:
        """Parse request line and headers; the stdlib's email-based parser is too slow."""
        self.command, self.request_version = None, "HTTP/1.1"  # error replies get headers
        self.close_connection = True
        self.requestline = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
            self.send_error(400 if len(words) != 3 else 505)
            return False
        self.command, self.path, self.request_version = words
        self.headers = headers = _Headers()
        for _ in range(200):
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep or len(line) > 65536:
                self.send_error(400, "Bad header line")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.send_error(431)
            return False
        conn = headers.get("connection", "").lower()
        http10 = self.request_version == "HTTP/1.0"
        self.close_connection = conn == "close" or (http10 and conn != "keep-alive")
        self.keep_alive_header = http10 and not self.close_connection
        if headers.get("expect", "").lower() == "100-continue" and not http10:
            return self.handle_expect_100()
        return True

    def date_time_string(self, timestamp=None) -> str:
        """Date header value, formatted once per second."""
        global _date_cache
        now = int(time.time()) if timestamp is None else int(timestamp)
        if _date_cache[0] != now:
            _date_cache = (now, super().date_time_string(now))
        return _date_cache[1]

    def handle_expect_100(self):
        """Send 100 Continue right away (our write buffer would otherwise hold it)."""
        result = super().handle_expect_100()
        self.wfile.flush()
        return result

    def do_GET(self):
        """Dispatch GET."""
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        """Read the whole body, route, answer."""
        body = self._read_body()
        if body is None:
            return
        path = urlsplit(self.path).path
        if path == "/_sandbox" or path.startswith("/_sandbox/"):
            reply = control(self, path, body)
        else:
            reply = self._send_request(path, body)
        if reply is not None:
            self._answer(reply)

    def _read_body(self) -> bytes | None:
        """Read the full request body (Content-Length or chunked); None if we gave up."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # cannot drain it, so the connection is unusable
            status = 413 if length > MAX_BODY else 400
            self._answer(_json_reply(status, {"message": _phrase(status)}))
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes | None:
        """Decode a chunked request body."""
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                self._answer(_json_reply(400, {"message": "Bad Request"}))
                return None
            total += size
            if total > MAX_BODY:
                self.close_connection = True
                self._answer(_json_reply(413, {"message": _phrase(413)}))
                return None
            if size == 0:
                break
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)  # CRLF after each chunk
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _send_request(self, path, body) -> Reply | None:
        """Emulate a provider's send endpoint; None when shutting down mid-wait."""
        match = MAILGUN_PATH.match(path)
        if match:
            provider = "mailgun"
        elif path.rstrip("/") == SENDGRID_PATH:
            provider = "sendgrid"
        else:
            return _json_reply(404, {"message": "Not Found", "path": path})
        if self.command != "POST":
            return _json_reply(405, {"message": "Method Not Allowed"}, [("Allow", "POST")])
        at = time.time()
        state = self.sandbox._state
        latency_ms, fault, reject_to = state.take(provider)
        delay = latency_ms / 1000 + (fault.get("hang", 0) if fault else 0)
        if delay and self.server.stopping.wait(delay):
            self.close_connection = True  # stopping: drop the request unanswered
            state.record(provider, at, None, [])
            return None
        if fault and "status" in fault:
            reply, records = _fault_reply(provider, fault), []
        elif provider == "mailgun":
            reply, records = mailgun_send(self, match.group(1), body, reject_to)
        else:
            reply, records = sendgrid_send(self, body, reject_to)
        state.record(provider, at, reply.status, records)
        return reply

    def _answer(self, reply: Reply) -> None:
        """Write status, headers and body (Content-Length always, except for 204)."""
        self.send_response(reply.status)
        if reply.status != 204:  # RFC 9110: no Content-Length on 204
            self.send_header("Content-Length", str(len(reply.body)))
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.keep_alive_header:  # HTTP/1.0 clients need to be told explicitly
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)


# ---------------------------------------------------------------------------------------------
# Control API
# ---------------------------------------------------------------------------------------------


def control(handler, path, body) -> Reply:
    """Serve /_sandbox/...: inspection, reset, behaviour and the browser page."""
    sb, method = handler.sandbox, handler.command
    route = path[len("/_sandbox") :].strip("/")
    query = parse_qs(urlsplit(handler.path).query)
    provider = (query.get("provider") or [None])[0]
    if provider is not None and provider not in PROVIDERS:
        return _json_reply(400, {"error": f"unknown provider {provider!r}"})
    if (method, route) in (("DELETE", "messages"), ("POST", "reset")):
        sb.reset()
        return Reply(204)
    if method == "GET" and route in ("messages", "requests"):
        return _json_reply(200, {route: sb._state.snapshot(route, provider)})
    if method == "GET" and route == "health":
        return _json_reply(200, {"ok": True})
    if method == "GET" and route == "":
        return Reply(200, _page(sb._state.snapshot("messages")), "text/html; charset=utf-8")
    if route.startswith("behaviour/"):
        return _behaviour_route(sb, method, route[len("behaviour/") :], body)
    return _json_reply(404, {"error": "not found", "path": path})


def _behaviour_route(sb, method, provider, body) -> Reply:
    """GET or PUT (replace) one provider's behaviour."""
    if provider not in PROVIDERS:
        return _json_reply(404, {"error": f"unknown provider {provider!r}"})
    if method == "PUT":
        try:
            behaviour = json.loads(body or b"{}")
            if not isinstance(behaviour, dict):
                raise ValueError("behaviour must be a JSON object")
            sb.set_behaviour(provider, behaviour)
        except ValueError as exc:
            return _json_reply(400, {"error": str(exc)})
    elif method != "GET":
        return _json_reply(405, {"error": "use GET or PUT"}, [("Allow", "GET, PUT")])
    return _json_reply(200, sb.behaviour(provider))


def _page(messages) -> bytes:
    """A small auto-refreshing HTML page of received messages, newest first."""
    esc = html.escape
    rows = []
    for m in reversed(messages[-PAGE_LIMIT:]):
        cells = (
            m["received_at"],
            m["provider"],
            m["from"],
            ", ".join(m["to"]),
            m["subject"] or "",
            m["id"],
        )
        rows.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    shown = f"newest {PAGE_LIMIT} of " if len(messages) > PAGE_LIMIT else ""
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>Mail sandbox</title>
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}
tr:nth-child(even){{background:#f3f3f3}}</style></head>
<body><h1>Mail sandbox</h1>
<p>{shown}{len(messages)} message(s) received. JSON: <a href="/_sandbox/messages">messages</a>,
<a href="/_sandbox/requests">requests</a>.</p>
<table><tr><th>time (UTC)</th><th>provider</th><th>from</th><th>to</th><th>subject</th>
<th>message id</th></tr>
{"".join(rows)}
</table></body></html>
"""
    return doc.encode()


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


class Sandbox:
    """A Mailgun + SendGrid look-alike served over HTTP on loopback."""

    def __init__(
        self, host="127.0.0.1", port=0, mailgun_key=None, sendgrid_key=None, latency_ms=0
    ):
        """Configure (but do not start) the sandbox."""
        self.host, self.port = host, port
        self.mailgun_key = mailgun_key or None
        self.sendgrid_key = sendgrid_key or None
        self._state = _State(latency_ms)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Sandbox:
        """Bind and serve in a background daemon thread; return self."""
        if self._server is not None:
            raise RuntimeError("sandbox already started (a stopped one cannot restart)")
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, waking hung requests and closing open connections."""
        server = self._server
        if server is None or server.stopping.is_set():
            return
        server.stopping.set()  # wakes any request waiting out a hang or latency
        server.shutdown()
        server.server_close()
        server.close_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        """Start if needed; return self."""
        return self if self._server is not None else self.start()

    def __exit__(self, *exc) -> None:
        """Stop on leaving the with-block."""
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8025."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (keep-alive checks)."""
        return self._server.accepted if self._server else 0

    def messages(self, provider=None) -> list[dict]:
        """Accepted messages, oldest first, optionally for one provider."""
        if provider is not None:
            _check_provider(provider)
        return [_copy_record(m) for m in self._state.snapshot("messages", provider)]

    def requests(self, provider=None) -> list[dict]:
        """Every send request received: provider, at (unix time), status answered."""
        if provider is not None:
            _check_provider(provider)
        return [dict(r) for r in self._state.snapshot("requests", provider)]

    def reset(self) -> None:
        """Clear messages, requests and all behaviour."""
        self._state.reset()

    def configure(self, provider, **behaviour) -> None:
        """Merge behaviour into a provider's (a None value removes that key)."""
        _check_provider(provider)
        with self._state.lock:
            merged = {**self._state.behaviour[provider], **behaviour}
            self._state.behaviour[provider] = _validate_behaviour(merged)

    def set_behaviour(self, provider, behaviour: dict) -> None:
        """Replace a provider's behaviour entirely."""
        _check_provider(provider)
        clean = _validate_behaviour(behaviour)
        with self._state.lock:
            self._state.behaviour[provider] = clean

    def behaviour(self, provider) -> dict:
        """A copy of a provider's current behaviour (JSON-friendly)."""
        _check_provider(provider)
        with self._state.lock:
            current = dict(self._state.behaviour[provider])
        if isinstance(current.get("body"), bytes):
            current["body"] = current["body"].decode("utf-8", "replace")
        return current


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    """True if every address the host name resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addrs = {info[4][0].split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)


def _parse_args(argv) -> argparse.Namespace:
    """Command-line options (keys default to the SANDBOX_*_API_KEY variables)."""
    p = argparse.ArgumentParser(description="Local Mailgun + SendGrid sandbox for tests.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--mailgun-key", default=os.environ.get("SANDBOX_MAILGUN_API_KEY"))
    p.add_argument("--sendgrid-key", default=os.environ.get("SANDBOX_SENDGRID_API_KEY"))
    p.add_argument(
        "--allow-remote", action="store_true", help="permit a non-loopback --host (test tool!)"
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Serve until SIGTERM/SIGINT; return the exit status."""
    args = _parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.host):
        msg = f"refusing to bind non-loopback host {args.host!r} without --allow-remote"
        print(msg, file=sys.stderr)
        return 2
    sb = Sandbox(args.host, args.port, args.mailgun_key, args.sendgrid_key, args.latency_ms)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        sb.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox listening on {sb.url} (watch mail at {sb.url}/_sandbox/)", flush=True)
    while not done.wait(1.0):  # a timed wait keeps signal delivery prompt everywhere
        pass
    sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
