"""SendGrid's v3 send API as the sandbox speaks it: ``POST /v3/mail/send``.

A JSON body of personalizations, a Bearer API key, ``202`` with no body and an
``X-Message-Id`` header on success, and SendGrid's ``{"errors": [...]}`` otherwise.

The mail/send reference's limits on ``categories`` are enforced (at most 10 unique strings of at
most 255 characters: 400); SendGrid documents no answer text for them, so the sandbox's says
what was exceeded. So is its rule that an attachment of ``"disposition": "inline"`` has a
``content_id`` (400).

The Message-ID a mail is delivered with (the record's ``message_id``) is the ``Message-ID`` of
its ``headers`` when the client gives one, else one SendGrid makes from its message id.
"""

import base64
import json
import math
import secrets
import time

from werkzeug.routing import Rule

from devkit.sandbox.wire import (
    ADDRESS,
    JSON,
    Answer,
    dumps,
    file_record,
    header,
    json_answer,
    now_iso,
    phrase,
    retry_after,
)

NAME = "sendgrid"
RULES = [Rule("/v3/mail/send", endpoint=NAME, methods=["POST"])]

MAX_CATEGORIES = 10
MAX_CATEGORY_LENGTH = 255  # characters
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#"
AUTH_ERROR = {
    "errors": [
        {
            "message": "The provided authorization grant is invalid, expired, or revoked",
            "field": None,
            "help": None,
        }
    ]
}
FROM_MISSING = (
    "The from object must be provided for every email send. It is an object that requires "
    'the email parameter, but may also contain a name parameter.  e.g. {"email" : '
    '"example@example.com"}  or {"email" : "example@example.com", "name" : "Example '
    'Recipient"}.'
)
PERS_MISSING = "The personalizations field is required and must have at least one personalization."
TO_MISSING = (
    "The to array is required for all personalization objects, and must have at least one "
    "email object with a valid email address."
)
SUBJECT_MISSING = (
    "The subject is required. You can get around this requirement if you use a template with "
    "a subject defined or if every personalization has a subject defined."
)
CONTENT_MISSING = (
    "Unless a valid template_id is provided, the content parameter is required. There must be "
    "at least one defined content block. We typically suggest both text/plain and text/html "
    "blocks are included, but only one block is required."
)
BAD_ADDRESS = "Does not contain a valid address."
INLINE_WITHOUT_ID = "The content_id parameter is required if your attachment is inline."
MESSAGE_ID_HOST = "geopod-ismtpd-sandbox"  # the host part of a Message-ID SendGrid makes
DUPLICATE = (
    "Each email address in the personalization block should be unique between to, cc, and "
    "bcc. We found the first duplicate instance of [{}] in the personalizations.{}.{} field."
)


def _error(message, field, anchor=None) -> dict:
    """One entry of SendGrid's errors list."""
    return {"message": message, "field": field, "help": HELP + anchor if anchor else None}


def _email_ok(obj) -> bool:
    """True for an email object {"email": "a@b", "name"?: str}."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("email"), str)
        and ADDRESS.match(obj["email"].strip()) is not None
    )


def _recipient_errors(pers, i) -> list[dict]:
    """Errors in the to/cc/bcc lists of personalization i."""
    errors, seen = [], set()
    to_missing = not isinstance(pers.get("to"), list) or not pers["to"]
    if to_missing:
        errors.append(_error(TO_MISSING, f"personalizations.{i}.to", "message.personalizations"))
    for key in ("to", "cc", "bcc"):
        items = pers.get(key)
        if items is None or (key == "to" and to_missing):
            continue
        if not isinstance(items, list):
            errors.append(_error("Invalid type.", f"personalizations.{i}.{key}"))
            continue
        for j, obj in enumerate(items):
            field = f"personalizations.{i}.{key}.{j}.email"
            if not _email_ok(obj):
                errors.append(_error(BAD_ADDRESS, field, "message.personalizations"))
                continue
            email = obj["email"].strip().lower()
            if email in seen:
                msg = DUPLICATE.format(obj["email"], i, key)
                errors.append(_error(msg, f"personalizations.{i}", "message.personalizations"))
            seen.add(email)
    return errors


def _personalization_errors(items) -> list[dict]:
    """Errors in the personalizations array."""
    if not isinstance(items, list) or not items:
        return [_error(PERS_MISSING, "personalizations", "-Personalizations-Errors")]
    errors = []
    for i, pers in enumerate(items):
        if not isinstance(pers, dict):
            errors.append(_error("Invalid type.", f"personalizations.{i}"))
        else:
            errors.extend(_recipient_errors(pers, i))
    return errors


def _content_errors(payload) -> list[dict]:
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
        errors.append(_error(SUBJECT_MISSING, "subject", "message.subject"))
    content = payload.get("content")
    if not isinstance(content, list) or not content:
        return errors + [_error(CONTENT_MISSING, "content", "message.content")]
    for i, block in enumerate(content):
        block = block if isinstance(block, dict) else {}
        if not isinstance(block.get("type"), str) or not block["type"]:
            errors.append(_error("The content type is required.", f"content.{i}.type"))
        if not isinstance(block.get("value"), str) or not block["value"]:
            msg = "The content value must be a string at least one character in length."
            errors.append(_error(msg, f"content.{i}.value", "message.content.value"))
    return errors


def _category_errors(categories) -> list[dict]:
    """Errors in the categories array (absent is fine)."""
    if categories is None:
        return []
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        return [_error("Invalid type.", "categories", "message.categories")]
    if len(categories) > MAX_CATEGORIES:
        message = f"You may not have more than {MAX_CATEGORIES} categories per request."
        return [_error(message, "categories", "message.categories")]
    if any(len(category) > MAX_CATEGORY_LENGTH for category in categories):
        message = f"A category cannot be more than {MAX_CATEGORY_LENGTH} characters."
        return [_error(message, "categories", "message.categories")]
    if len(set(categories)) != len(categories):
        return [_error("Categories must be unique.", "categories", "message.categories")]
    return []


def _errors(payload) -> list[dict]:
    """All validation errors for a SendGrid v3 mail/send payload (empty when valid)."""
    if not isinstance(payload, dict):
        return [_error("Bad Request", None, "message.body")]
    errors = _personalization_errors(payload.get("personalizations"))
    if not _email_ok(payload.get("from")):
        missing = not isinstance(payload.get("from"), dict) or not payload["from"].get("email")
        errors.append(
            _error(FROM_MISSING if missing else BAD_ADDRESS, "from.email", "message.from")
        )
    if payload.get("reply_to") is not None and not _email_ok(payload["reply_to"]):
        errors.append(_error(BAD_ADDRESS, "reply_to.email", "message.reply_to"))
    errors += _content_errors(payload) + _category_errors(payload.get("categories"))
    return errors + _attachment_errors(payload.get("attachments"))


def _attachment_errors(attachments) -> list[dict]:
    """Errors in the attachments array: an inline one needs its content_id."""
    if not isinstance(attachments, list):
        return [] if attachments is None else [_error("Invalid type.", "attachments")]
    return [
        _error(INLINE_WITHOUT_ID, f"attachments.{i}.content_id", "message.attachments")
        for i, item in enumerate(attachments)
        if isinstance(item, dict)
        and item.get("disposition") == "inline"
        and not item.get("content_id")
    ]


def _rejected(payload, reject_to) -> dict | None:
    """The bad-address error for the first recipient containing reject_to, or None."""
    for i, pers in enumerate(payload["personalizations"]):
        for key in ("to", "cc", "bcc"):
            for j, obj in enumerate(pers.get(key) or []):
                if reject_to in obj["email"]:
                    field = f"personalizations.{i}.{key}.{j}.email"
                    return _error(BAD_ADDRESS, field, "message.personalizations")
    return None


def _addr(obj) -> str:
    """Render an email object as 'Name <email>' or 'email'."""
    name = obj.get("name")
    return f"{name} <{obj['email']}>" if name else obj["email"]


def _merged(payload, pers, key) -> dict:
    """Top-level dict `key` overridden by the personalization's (non-dicts ignored)."""
    top, own = payload.get(key), pers.get(key)
    return {**(top if isinstance(top, dict) else {}), **(own if isinstance(own, dict) else {})}


def _file(item) -> dict:
    """What the sandbox keeps of an attachment (``file_record``), inline or not."""
    inline = item.get("disposition") == "inline"
    return file_record(
        item.get("filename"),
        item.get("type"),
        base64.b64decode(item.get("content") or ""),
        "inline" if inline else "attachment",
        item.get("content_id") if inline else None,
    )


def _records(payload, msg_id) -> list[dict]:
    """One message record per personalization (each is a separate email at SendGrid)."""
    content = {}
    for block in payload.get("content") or []:
        content.setdefault(block.get("type"), block.get("value"))
    reply_to = payload.get("reply_to")
    received_at = now_iso()
    return [
        {
            "provider": NAME,
            "id": msg_id,
            "received_at": received_at,
            "from": _addr(payload["from"]),
            **{key: [_addr(o) for o in pers.get(key) or []] for key in ("to", "cc", "bcc")},
            "reply_to": _addr(reply_to) if reply_to else None,
            "subject": pers.get("subject") or payload.get("subject"),
            "text": content.get("text/plain"),
            "html": content.get("text/html"),
            "custom": _merged(payload, pers, "custom_args"),
            "headers_in": _merged(payload, pers, "headers"),
            "message_id": header(_merged(payload, pers, "headers"), "Message-ID")
            or f"<{msg_id}@{MESSAGE_ID_HOST}>",
            "categories": list(payload.get("categories") or []),
            "attachments": [_file(item) for item in payload.get("attachments") or []],
        }
        for pers in payload["personalizations"]
    ]


def _authorized(request, key: str | None) -> bool:
    """Bearer token equal to the configured key (any non-empty token if unset)."""
    auth = request.authorization
    token = (auth.token or "").strip() if auth is not None and auth.type == "bearer" else ""
    if not token:
        return False
    return key is None or secrets.compare_digest(token.encode(), key.encode())


def send(request, key, reject_to) -> tuple[Answer, list[dict]]:
    """Answer a SendGrid send: auth, parse, validate, accept. Returns (answer, records)."""
    if not _authorized(request, key):
        return json_answer(401, AUTH_ERROR), []
    try:
        payload = json.loads(request.get_data())
    except ValueError:
        payload = None  # reported as "Bad Request" below, like SendGrid does
    errors = _errors(payload)
    if not errors and reject_to:
        rejected = _rejected(payload, reject_to)
        errors = [rejected] if rejected else []
    if errors:
        return json_answer(400, {"errors": errors}), []
    msg_id = secrets.token_urlsafe(16)  # 22 url-safe characters, like SendGrid's ids
    return Answer(b"", 202, headers=[("X-Message-Id", msg_id)]), _records(payload, msg_id)


def fault_body(status) -> tuple[bytes, str]:
    """The body SendGrid sends with this error status."""
    if status == 401:
        return dumps(AUTH_ERROR), JSON
    if status == 429:
        return dumps({"errors": [{"field": None, "message": "too many requests"}]}), JSON
    message = "internal error" if status >= 500 else phrase(status).lower()
    return dumps({"errors": [{"message": message, "field": None, "help": None}]}), JSON


def fault_headers(status, seconds) -> list[tuple[str, str]]:
    """Retry-After, and on a 429 SendGrid's rate-limit headers, when ``retry_after`` is set."""
    headers = retry_after(seconds)
    if headers and status == 429:
        headers += [
            ("X-RateLimit-Limit", "600"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", str(math.ceil(time.time() + seconds))),
        ]
    return headers
