"""Amazon SES's API v2 SendEmail as the sandbox speaks it: ``POST /v2/email/outbound-emails``.

Every request must carry an AWS Signature Version 4 of itself: the sandbox recomputes it with
botocore's ``SigV4Auth`` over the request it received (the headers the ``Authorization``
header names, the path, the body) with the credentials it was given (``ses_access_key_id``,
``ses_secret_access_key``), and compares in constant time. Without credentials it takes any
signature of SigV4's form. Refusals are AWS's 403s, the error type in ``x-amzn-ErrorType`` and
the reason in ``{"message"}``: ``MissingAuthenticationTokenException`` (no signature),
``UnrecognizedClientException`` (another access key), ``InvalidSignatureException`` (a
signature for another service, or more than 5 minutes old) and ``SignatureDoesNotMatch``.

The body is SendEmail's JSON with ``Content.Raw.Data`` (base64 of a MIME message, parsed with
the standard library into the message record) and ``Destination`` (who it goes to; Bcc
included). Success is ``200 {"MessageId"}``; a recipient containing ``reject_to`` is SES's
``MessageRejected`` 400. An injected fault with ``error`` (e.g. ``AccountSuspendedException``)
answers that error type with the fault's status.

"If you provide a Message-ID header, Amazon SES overrides the header with its own value"
(Amazon SES header fields): the record's ``message_id``, the Message-ID the mail is delivered
with, is SES's, ``<{MessageId}@{region}.amazonses.com>`` (``email.amazonses.com`` in
us-east-1), whatever the raw message held (its ``headers_in`` shows what was sent).
"""

import base64
import binascii
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime
from email import message_from_bytes, policy

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.routing import Rule

from devkit.sandbox.wire import (
    ADDRESS,
    JSON,
    Answer,
    dumps,
    mime_files,
    now_iso,
    phrase,
    retry_after,
)

NAME = "ses"
RULES = [Rule("/v2/email/outbound-emails", endpoint=NAME, methods=["POST"])]
SERVICE = "ses"
MAX_SKEW = 300  # seconds a signature's X-Amz-Date may be off, as AWS allows
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request,\s*SignedHeaders=(?P<headers>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
NO_MATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
# The default error type of an injected status, as SES answers it.
STATUS_ERRORS = {
    400: "BadRequestException",
    403: "AccessDeniedException",
    404: "NotFoundException",
    429: "TooManyRequestsException",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
MIME_PARTS = ("from", "to", "cc", "bcc", "reply-to", "subject", "date", "mime-version")


def error_answer(status, kind, message, headers=()) -> Answer:
    """An AWS rest-json error: the type in ``x-amzn-ErrorType``, the reason in the body."""
    header = ("x-amzn-ErrorType", f"{kind}:http://internal.amazon.com/coral/com.amazon.coral/")
    request_id = ("x-amzn-RequestId", secrets.token_hex(16))
    return Answer(
        dumps({"message": message}),
        status,
        headers=[header, request_id, *headers],
        content_type=JSON,
    )


# The signature --------------------------------------------------------------------------------


def refusal(request, credentials) -> Answer | None:
    """The 403 for a request whose SigV4 signature does not hold, or None."""
    found = AUTHORIZATION.match(request.headers.get("Authorization", ""))
    if found is None:
        message = "Missing Authentication Token"
        return error_answer(403, "MissingAuthenticationTokenException", message)
    if found["service"] != SERVICE:
        message = f"Credential should be scoped to correct service: '{SERVICE}'. "
        return error_answer(403, "InvalidSignatureException", message)
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return error_answer(403, "IncompleteSignatureException", "X-Amz-Date is missing or wrong")
    if abs(time.time() - signed_at.timestamp()) > MAX_SKEW:
        return error_answer(403, "InvalidSignatureException", f"Signature expired: {stamp}")
    if credentials is None:
        return None
    key_id, secret = credentials
    if not hmac.compare_digest(found["key"].encode(), key_id.encode()):
        message = "The security token included in the request is invalid."
        return error_answer(403, "UnrecognizedClientException", message)
    expected = expected_signature(request, found, secret, stamp)
    if not hmac.compare_digest(expected.encode(), found["signature"].encode()):
        return error_answer(403, "SignatureDoesNotMatch", NO_MATCH)
    return None


def expected_signature(request, found, secret, stamp) -> str:
    """The signature botocore computes over the received request: the headers it names, its
    method, path, query and body, at its own X-Amz-Date, in its own credential scope."""
    names = found["headers"].split(";")
    headers = {name: request.headers.get(name, "") for name in names}
    query = request.query_string.decode()
    url = f"{request.scheme}://{request.host}{request.path}" + (f"?{query}" if query else "")
    received = AWSRequest(method=request.method, url=url, data=request.get_data(), headers=headers)
    received.context["timestamp"] = stamp
    auth = SigV4Auth(Credentials(found["key"], secret), SERVICE, found["region"])
    string_to_sign = auth.string_to_sign(received, auth.canonical_request(received))
    return auth.signature(string_to_sign, received)


# The message ----------------------------------------------------------------------------------


def _record(payload, mime) -> dict:
    """The message record: the envelope from ``Destination``, the rest from the MIME message."""
    destination = payload.get("Destination") or {}
    text = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    tags = {tag.get("Name"): tag.get("Value") for tag in payload.get("EmailTags") or []}
    return {
        "provider": NAME,
        "id": None,
        "received_at": None,
        "from": str(mime.get("From", "")),
        "to": list(destination.get("ToAddresses") or []),
        "cc": list(destination.get("CcAddresses") or []),
        "bcc": list(destination.get("BccAddresses") or []),
        "reply_to": str(mime["Reply-To"]) if mime["Reply-To"] else None,
        "subject": str(mime.get("Subject", "")),
        "text": _content(text),
        "html": _content(html),
        "custom": tags,
        "headers_in": {
            name: str(value)
            for name, value in mime.items()
            if name.lower() not in MIME_PARTS and not name.lower().startswith("content-")
        },
        "to_header": str(mime.get("To", "")),
        "configuration_set": payload.get("ConfigurationSetName"),
        "attachments": mime_files(mime),
    }


def _content(part) -> str | None:
    """A body part's text with the line ends of the mail read on Unix (MIME's are CRLF)."""
    return None if part is None else part.get_content().replace("\r\n", "\n")


def _message_id(message_id, request) -> str:
    """The Message-ID SES delivers a mail with: its own, in the region the request was signed
    for (``email.amazonses.com`` in us-east-1)."""
    found = AUTHORIZATION.match(request.headers.get("Authorization", ""))
    region = found["region"] if found else "us-east-1"
    host = "email" if region == "us-east-1" else region
    return f"<{message_id}@{host}.amazonses.com>"


def _parsed(body):
    """``(payload, MIME message)`` of a SendEmail body; a BadRequestException message if not."""
    try:
        payload = json.loads(body)
        raw = base64.b64decode(payload["Content"]["Raw"]["Data"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None, "Content.Raw.Data must be a base64 MIME message in a JSON body"
    if not isinstance(payload.get("Destination", {}), dict):
        return None, "Destination must be an object"
    return (payload, message_from_bytes(raw, policy=policy.default)), None


def _error(payload, mime, reject_to) -> tuple[str, str] | None:
    """``(error type, message)`` for a message SES would refuse, or None."""
    destination = payload.get("Destination") or {}
    recipients = [
        address
        for key in ("ToAddresses", "CcAddresses", "BccAddresses")
        for address in destination.get(key) or []
    ]
    if not recipients:
        return "BadRequestException", "Missing required field Destination.ToAddresses"
    if not mime["From"]:
        return "MessageRejected", "Missing required header 'From'."
    if not all(isinstance(a, str) and ADDRESS.match(a) for a in recipients):
        return "BadRequestException", "Illegal address"
    if reject_to and any(reject_to in address for address in recipients):
        return "MessageRejected", "Email address is not verified. The following identities failed"
    return None


def send(request, credentials, reject_to) -> tuple[Answer, list[dict]]:
    """Answer a SendEmail: signature, parse, validate, accept. Returns (answer, records)."""
    refused = refusal(request, credentials)
    if refused is not None:
        return refused, []
    parsed, problem = _parsed(request.get_data())
    if problem:
        return error_answer(400, "BadRequestException", problem), []
    payload, mime = parsed
    error = _error(payload, mime, reject_to)
    if error:
        return error_answer(400, *error), []
    record = _record(payload, mime)
    record["id"] = f"{secrets.token_hex(8)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}-000000"
    record["message_id"] = _message_id(record["id"], request)
    record["received_at"] = now_iso()
    return Answer(dumps({"MessageId": record["id"]}), 200, content_type=JSON), [record]


def fault_body(status) -> tuple[bytes, str]:
    """The body SES sends with this error status."""
    message = "Too many requests." if status == 429 else phrase(status)
    return dumps({"message": message}), JSON


def fault_headers(status, seconds) -> list[tuple[str, str]]:
    """SES's error type for the status, and Retry-After when the behaviour sets it."""
    kind = STATUS_ERRORS.get(status, "InternalFailure" if status >= 500 else "BadRequestException")
    return [("x-amzn-ErrorType", f"{kind}:"), *retry_after(seconds)]


def error_fault(status, kind, seconds) -> Answer:
    """An injected fault of SES error type ``kind`` (the behaviour's ``error``)."""
    return error_answer(status, kind, f"{kind} (injected by the sandbox)", retry_after(seconds))
