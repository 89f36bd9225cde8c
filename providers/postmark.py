"""Postmark's email API: ``POST {base}/email`` with a JSON body.

Auth is the header ``X-Postmark-Server-Token``. Success is ``200 {"To", "SubmittedAt",
"MessageID", "ErrorCode": 0, "Message": "OK"}``; an error is ``{"ErrorCode": n, "Message":
"..."}``, with HTTP 401 for a wrong token, 422 for every other refusal ("Something with the
message isn't quite right ... the response body contains JSON {ErrorCode: 405, Message:
"details"} with an API error code"), 429 when we send too fast and 500 for Postmark's own
faults. The ErrorCode, not the HTTP status, says what went wrong, so it is read first:

| ErrorCode     | Postmark's name                                          | ours          |
|---------------|----------------------------------------------------------|---------------|
| 300           | Invalid email request (a bad address, no body, ...)      | rejected      |
| 406           | Inactive recipient (a hard bounce or a spam complaint)   | rejected      |
| 411           | Forbidden attachment type                                | rejected      |
| 10            | Bad or missing API token                                 | misconfigured |
| 400, 401      | Sender signature not found / not confirmed               | misconfigured |
| 402, 403, 409 | Invalid JSON / Incompatible JSON / JSON required         | misconfigured |
| 405           | Not allowed to send (out of credits)                     | misconfigured |
| 412, 413      | Account is pending / Account may not send                | misconfigured |
| 1221, 1235,   | the MessageStream is not one that sends / does not exist | misconfigured |
| 1236          | on this server / sending is not supported on it          |               |
| 100           | Maintenance                                              | transient     |
| 429           | Rate limit exceeded (or HTTP 429 whatever the code)      | rate limited  |
| any other     | by the HTTP status, as every provider: 5xx transient,    |               |
|               | 401/403 misconfigured, other 4xx rejected                |               |

What Postmark accepts of a message beyond its addresses and bodies, from its documentation:
one ``Tag`` per message, of at most 1000 characters ("Tags are limited though in that only one
tag can be applied to each message", Custom metadata FAQ), and custom ``Metadata``: at most 10
fields, names of at most 20 characters, values of at most 80, and no two names that differ
only in case ("duplicate keys, including the same key with case differences, are not
allowed"). The service sends the first tag and the metadata that fits (``metadata``), and keeps
the rest with the mail.

Our Message-ID goes in ``Headers``, where Postmark's API takes it in place of its own (over its
SMTP service it would take ``X-PM-KeepID: true`` as well; the API needs none). An inline part
is an attachment with a ``ContentID`` of ``cid:<id>``, as Postmark's examples write it.
"""

import base64

from providers.base import (
    MAX_RETRY_AFTER,
    MessageRejected,
    Provider,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    retry_after_seconds,
)

MAX_TAG_LENGTH = 1000  # characters of the one Tag
MAX_METADATA_FIELDS = 10  # per message, our mail id included
MAX_METADATA_NAME = 20  # characters
MAX_METADATA_VALUE = 80  # characters

REJECTED = {
    300: "invalid email request",
    406: "inactive recipient",
    411: "forbidden attachment type",
}
MISCONFIGURED = {
    10: "bad or missing server token; check POSTMARK_SERVER_TOKEN",
    400: "sender signature not found for the From address",
    401: "sender signature not confirmed for the From address",
    402: "Postmark could not read our JSON",
    403: "Postmark found our JSON incompatible",
    405: "not allowed to send: the account has run out of credits",
    409: "Postmark wants JSON",
    412: "the account is pending approval",
    413: "the account may not send",
    1221: "POSTMARK_MESSAGE_STREAM is not a stream that sends",
    1235: "POSTMARK_MESSAGE_STREAM does not exist on this server",
    1236: "POSTMARK_MESSAGE_STREAM cannot send",
}
TRANSIENT = {100: "Postmark is down for maintenance"}
RATE_LIMITED = 429


def error_code(body):
    """Postmark's ``ErrorCode`` in an answer's parsed body, or None if it has none."""
    code = body.get("ErrorCode") if isinstance(body, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _attachment(item):
    """Postmark's attachment object: a file, or an inline part with its ``ContentID``."""
    attachment = {
        "Name": item["filename"],
        "Content": base64.b64encode(item["content"]).decode("ascii"),
        "ContentType": item["content_type"],
    }
    if item.get("content_id"):
        attachment["ContentID"] = f"cid:{item['content_id']}"
    return attachment


class Postmark(Provider):
    """Sends through Postmark."""

    name = "postmark"
    # Postmark reads its X-PM- headers as instructions (X-PM-Message-Stream, X-PM-Tag,
    # X-PM-Metadata-*, X-PM-TrackOpens, X-PM-TrackLinks, X-PM-KeepID: "Send email with SMTP"),
    # so a client's copy could move the mail to another stream or rewrite its metadata.
    control_header_prefixes = ("X-PM-",)
    required_settings = ("POSTMARK_SERVER_TOKEN",)

    def __init__(self, config):
        super().__init__(config)
        self.base_url = config["POSTMARK_BASE_URL"].rstrip("/")
        self.token = config["POSTMARK_SERVER_TOKEN"]
        self.message_stream = config["POSTMARK_MESSAGE_STREAM"]

    @classmethod
    def tags_for(cls, tags):
        """The first tag of at most 1000 characters: Postmark takes one ``Tag``."""
        return [tag for tag in tags if len(tag) <= MAX_TAG_LENGTH][:1]

    @classmethod
    def metadata(cls, message):
        """Our mail id, echoed back in Postmark's webhooks so that an event finds its mail, and
        the client's metadata that fits Postmark's limits, in order.

        An entry that does not fit (the eleventh, a name over 20 characters, a value over 80,
        a name alike another but for case) is left out rather than refused: the mail keeps all
        its metadata with us, and the client's webhooks carry it from there, as the tags that a
        provider does not take (``tags_for``)."""
        fields, seen = {"mail_id": message.id}, {"mail_id"}
        for key, value in message.metadata.items():
            if len(fields) == MAX_METADATA_FIELDS:
                break
            fits = len(key) <= MAX_METADATA_NAME and len(value) <= MAX_METADATA_VALUE
            if fits and key.lower() not in seen:
                seen.add(key.lower())
                fields[key] = value
        return fields

    def build_request(self, message):
        """The JSON body of ``/email``; several addresses of a field are comma separated."""
        body = {
            "From": message.from_address,
            "To": ", ".join(message.to),
            "Subject": message.subject,
            "MessageStream": self.message_stream,
            "Metadata": self.metadata(message),
        }
        if message.cc:
            body["Cc"] = ", ".join(message.cc)
        if message.bcc:
            body["Bcc"] = ", ".join(message.bcc)
        if message.text:
            body["TextBody"] = message.text
        if message.html:
            body["HtmlBody"] = message.html
        if message.reply_to:
            body["ReplyTo"] = message.reply_to
        headers = {"Message-ID": self.message_id_for(message), **message.headers}
        body["Headers"] = [{"Name": k, "Value": v} for k, v in headers.items()]
        tags = self.tags_for(message.tags)
        if tags:
            body["Tag"] = tags[0]
        if message.attachments:
            body["Attachments"] = [_attachment(item) for item in message.attachments]
        return {
            "url": f"{self.base_url}/email",
            "headers": {"X-Postmark-Server-Token": self.token, "Accept": "application/json"},
            "json": body,
        }

    def message_id(self, response, body):
        """The ``MessageID`` of Postmark's JSON answer."""
        if isinstance(body, dict) and isinstance(body.get("MessageID"), str):
            return body["MessageID"]
        return None

    def error_reason(self, body):
        """Postmark's ``Message``, with its ``ErrorCode``."""
        if not isinstance(body, dict) or not isinstance(body.get("Message"), str):
            return None
        code = error_code(body)
        return body["Message"] if code is None else f"ErrorCode {code}: {body['Message']}"

    def read_response(self, response, body):
        """Classify by ``ErrorCode`` (the table above); without a known one, by the status."""
        status, code = response.status_code, error_code(body)
        if 200 <= status < 300 and not code:
            return self.accepted(response, body)
        if status == RATE_LIMITED or status >= 500:
            return super().read_response(response, body)
        reason = self.error_reason(body) or f"HTTP {status}"
        if code == RATE_LIMITED:  # "Rate Limit Exceeded" in a 422, as its other codes come
            retry_after = retry_after_seconds(response.headers)
            if retry_after is None:
                retry_after = self.default_retry_after
            raise RateLimited(reason, status, body, min(retry_after, MAX_RETRY_AFTER))
        if code in REJECTED:
            raise MessageRejected(reason, status, body)
        if code in MISCONFIGURED:
            raise ProviderMisconfigured(f"{MISCONFIGURED[code]}: {reason}", status, body)
        if code in TRANSIENT:
            raise ProviderUnavailable(f"{TRANSIENT[code]}: {reason}", status, body)
        return super().read_response(response, body)
