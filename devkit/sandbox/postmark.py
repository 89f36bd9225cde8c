"""Postmark's email API as the sandbox speaks it: ``POST /email``.

A JSON body (``From``, ``To``, ``Cc``, ``Bcc`` as comma-separated addresses, ``Subject``,
``TextBody``, ``HtmlBody``, ``ReplyTo``, ``Headers``, ``Tag``, ``Metadata``, ``Attachments``,
``MessageStream``), the header ``X-Postmark-Server-Token``, ``200 {"To", "SubmittedAt",
"MessageID", "ErrorCode": 0, "Message": "OK"}`` on success and Postmark's ``{"ErrorCode",
"Message"}`` otherwise: 401 with ErrorCode 10 for a wrong token, 422 with ErrorCode 300 for an
invalid request, and 422 with ErrorCode 406 (an inactive recipient) for ``reject_to``. Any other
ErrorCode is an injected fault: ``status`` 422 with a ``body`` such as ``{"ErrorCode": 405,
"Message": "..."}``.

Postmark's documented limits are enforced: one ``Tag`` (a string) of at most 1000 characters,
at most 50 recipients, and metadata of at most 10 fields, names of 20 characters and values of
80 (ErrorCode 300).

An attachment with a ``ContentID`` (``cid:logo@example.com``) is an inline part. The Message-ID
a mail is delivered with (the record's ``message_id``) is the ``Message-ID`` of its ``Headers``
when the client gives one, else Postmark's, made from its ``MessageID``.
"""

import base64
import binascii
import json
import secrets
import uuid

from werkzeug.routing import Rule

from devkit.sandbox.mailgun import split_addresses
from devkit.sandbox.wire import (
    ADDRESS,
    JSON,
    Answer,
    dumps,
    file_record,
    header,
    json_answer,
    now_iso,
    retry_after,
)

NAME = "postmark"
RULES = [Rule("/email", endpoint=NAME, methods=["POST"])]
TOKEN_HEADER = "X-Postmark-Server-Token"
MAX_TAG_LENGTH = 1000  # characters
MAX_RECIPIENTS = 50  # To, Cc and Bcc together
MAX_METADATA_FIELDS = 10
MAX_METADATA_NAME = 20  # characters
MAX_METADATA_VALUE = 80  # characters
MESSAGE_ID_HOST = "mtasv.net"  # the host part of the Message-ID Postmark makes
BAD_TOKEN = {
    "ErrorCode": 10,
    "Message": "The Server Token you provided in the X-Postmark-Server-Token request header "
    "was invalid. Please verify that you are using a valid token.",
}
INACTIVE = (
    "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
    "addresses: {}. Inactive recipients are ones that have generated a hard bounce, a spam "
    "complaint, or a manual suppression."
)
NO_BODY = "Provide either email TextBody or HtmlBody or both."
NO_RECIPIENTS = "Zero recipients specified"
TOO_MANY = f"Maximum of {MAX_RECIPIENTS} recipients allowed per email message"
BAD_METADATA = (
    f"Invalid metadata content. At most {MAX_METADATA_FIELDS} fields, names of at most "
    f"{MAX_METADATA_NAME} characters and values of at most {MAX_METADATA_VALUE}, each name once "
    "ignoring case."
)


def _invalid(message) -> Answer:
    """Postmark's 422 for an invalid email request (ErrorCode 300)."""
    return json_answer(422, {"ErrorCode": 300, "Message": message})


def _addresses(payload, field) -> list[str] | None:
    """The addresses of a comma-separated field ([] if absent), or None if it is not text."""
    value = payload.get(field)
    if value is None:
        return []
    return split_addresses(value) if isinstance(value, str) else None


def _bare(entry) -> str:
    """The addr-spec inside 'Name <addr>' (or the entry itself)."""
    start, end = entry.rfind("<"), entry.rfind(">")
    return entry[start + 1 : end].strip() if start != -1 and end > start else entry.strip()


def _address_error(payload) -> str | None:
    """The message for a missing or malformed From, To, Cc, Bcc or ReplyTo, or None."""
    sender = payload.get("From")
    if not isinstance(sender, str) or not ADDRESS.match(_bare(sender)):
        return f"Invalid 'From' address: '{sender or ''}'."
    lists = {field: _addresses(payload, field) for field in ("To", "Cc", "Bcc", "ReplyTo")}
    for field, entries in lists.items():
        if entries is None:
            return f"Invalid '{field}' address: it must be a string."
        for entry in entries:
            if not ADDRESS.match(_bare(entry)):
                return f"Invalid '{field}' address: '{entry}'."
    total = sum(len(lists[field]) for field in ("To", "Cc", "Bcc"))
    if not lists["To"] and not total:
        return NO_RECIPIENTS
    return TOO_MANY if total > MAX_RECIPIENTS else None


def _metadata_ok(metadata) -> bool:
    """Whether ``Metadata`` is absent or within Postmark's limits, with string values."""
    if metadata is None:
        return True
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_FIELDS:
        return False
    names = {name.lower() for name in metadata}
    return len(names) == len(metadata) and all(
        len(name) <= MAX_METADATA_NAME
        and isinstance(value, str)
        and len(value) <= MAX_METADATA_VALUE
        for name, value in metadata.items()
    )


def _error(payload) -> str | None:
    """Postmark's message for an invalid request (ErrorCode 300), or None."""
    if not isinstance(payload, dict):
        return "Invalid JSON: the body must be a JSON object."
    problem = _address_error(payload)
    if problem:
        return problem
    if not payload.get("TextBody") and not payload.get("HtmlBody"):
        return NO_BODY
    tag = payload.get("Tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH):
        return f"The 'Tag' must be one string of at most {MAX_TAG_LENGTH} characters."
    if not _metadata_ok(payload.get("Metadata")):
        return BAD_METADATA
    return _parts_error(payload)


def _parts_error(payload) -> str | None:
    """The message for Headers or Attachments that are not what Postmark takes, or None."""
    headers = payload.get("Headers") or []
    if not isinstance(headers, list) or not all(
        isinstance(h, dict) and isinstance(h.get("Name"), str) and isinstance(h.get("Value"), str)
        for h in headers
    ):
        return "The 'Headers' must be a list of {Name, Value} objects."
    for item in payload.get("Attachments") or []:
        if not isinstance(item, dict) or not isinstance(item.get("Name"), str):
            return "Each attachment needs a Name, a Content and a ContentType."
        try:
            base64.b64decode(item.get("Content") or "", validate=True)
        except (binascii.Error, TypeError):
            return f"The attachment '{item['Name']}' is not base64."
    return None


def _inactive(payload, reject_to) -> str | None:
    """The inactive addresses among the recipients that contain ``reject_to``, or None."""
    found = [
        _bare(entry).lower()
        for field in ("To", "Cc", "Bcc")
        for entry in _addresses(payload, field)
        if reject_to in entry
    ]
    return ", ".join(found) or None


def _file(item) -> dict:
    """What the sandbox keeps of an attachment (``file_record``): inline with a ContentID."""
    content_id = item.get("ContentID")
    return file_record(
        item.get("Name"),
        item.get("ContentType"),
        base64.b64decode(item.get("Content") or ""),
        "inline" if content_id else "attachment",
        content_id,
    )


def _record(payload, message_id) -> dict:
    """The message record of an accepted send."""
    headers = {h["Name"]: h["Value"] for h in payload.get("Headers") or []}
    return {
        "provider": NAME,
        "id": message_id,
        "received_at": now_iso(),
        "from": payload["From"].strip(),
        **{key.lower(): _addresses(payload, key) for key in ("To", "Cc", "Bcc")},
        "reply_to": payload.get("ReplyTo"),
        "subject": payload.get("Subject"),
        "text": payload.get("TextBody"),
        "html": payload.get("HtmlBody"),
        "custom": dict(payload.get("Metadata") or {}),
        "headers_in": headers,
        "message_id": header(headers, "Message-ID") or f"<{message_id}@{MESSAGE_ID_HOST}>",
        "tag": payload.get("Tag"),
        "message_stream": payload.get("MessageStream") or "outbound",
        "attachments": [_file(item) for item in payload.get("Attachments") or []],
    }


def _authorized(request, token: str | None) -> bool:
    """The server token header equal to the configured one (any non-empty one if unset)."""
    given = request.headers.get(TOKEN_HEADER, "").strip()
    if not given:
        return False
    return token is None or secrets.compare_digest(given.encode(), token.encode())


def send(request, token, reject_to) -> tuple[Answer, list[dict]]:
    """Answer a Postmark send: auth, parse, validate, accept. Returns (answer, records)."""
    if not _authorized(request, token):
        return json_answer(401, BAD_TOKEN), []
    try:
        payload = json.loads(request.get_data())
    except ValueError:
        return json_answer(422, {"ErrorCode": 402, "Message": "Invalid JSON"}), []
    error = _error(payload)
    if error:
        return _invalid(error), []
    inactive = _inactive(payload, reject_to) if reject_to else None
    if inactive:
        return json_answer(422, {"ErrorCode": 406, "Message": INACTIVE.format(inactive)}), []
    message_id = str(uuid.uuid4())
    answer = {
        "To": payload["To"],
        "SubmittedAt": now_iso(),
        "MessageID": message_id,
        "ErrorCode": 0,
        "Message": "OK",
    }
    return json_answer(200, answer), [_record(payload, message_id)]


def fault_body(status) -> tuple[bytes, str]:
    """The body Postmark sends with this error status."""
    if status == 401:
        return dumps(BAD_TOKEN), JSON
    if status == 429:
        return dumps({"ErrorCode": 429, "Message": "Rate limit exceeded."}), JSON
    if status == 422:
        return dumps({"ErrorCode": 300, "Message": "Invalid email request"}), JSON
    return dumps({"Message": "Internal Server Error"}), JSON


def fault_headers(status, seconds) -> list[tuple[str, str]]:
    """Headers of an injected fault: Retry-After when the behaviour sets ``retry_after``."""
    return retry_after(seconds)
