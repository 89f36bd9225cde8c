"""Amazon SES's API v2: ``POST {base}/v2/email/outbound-emails`` (SendEmail) with a JSON body.

The request is signed with AWS Signature Version 4 by botocore's ``SigV4Auth`` (service
``ses``, the region of ``SES_REGION``) and sent with ``requests`` on the caller's session.
The mail goes as ``Content.Raw``: a MIME message built with the standard library
(``providers.mime``), so attachments, inline parts, custom headers, Cc and Reply-To travel as
the client gave them; every recipient (Bcc too, which has no header) is listed in
``Destination``. Our mail id goes as the message tag ``mail_id``, which SES echoes in every
event it publishes (``mail.tags``).

The raw message carries our Message-ID, but SES does not deliver it: "If you provide a
Message-ID header, Amazon SES overrides the header with its own value" (Amazon SES header
fields). The mail arrives as ``<{MessageId}@{region}.amazonses.com>`` (``email.amazonses.com``
in us-east-1), SES's ``MessageId`` being the id it answers, which we keep as the mail's
provider message id.

Success is ``200 {"MessageId": "..."}``. An error names its type in the ``x-amzn-ErrorType``
header (``MessageRejected:http://internal.amazon.com/...``) and in the body's ``__type`` or
``code``, with the human reason in ``message``. Most of SendEmail's errors are 400s
(botocore's service model of SES v2: only ``TooManyRequestsException`` is a 429 and
``NotFoundException`` a 404), so the type decides, not the status:

- rejected (the message is bad): ``MessageRejected``, ``BadRequestException``;
- misconfigured (fail over): ``AccountSuspendedException``, ``SendingPausedException``,
  ``MailFromDomainNotVerifiedException``, ``NotFoundException`` (a configuration set that does
  not exist), and any 401 or 403 (a wrong signature or unknown credentials);
- rate limited: ``TooManyRequestsException``, ``LimitExceededException``,
  ``ThrottlingException``, any 429;
- transient: any 5xx, a timeout.

SES message tags take only ASCII letters, digits, ``_`` and ``-``, at most 256 of them
("MessageTagName"/"MessageTagValue" in the API reference). A mail's tags that fit go as
``tag_0``, ``tag_1``, ... in order; the others stay with us only.
"""

import base64
import json
import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from providers.base import (
    MAX_RETRY_AFTER,
    MessageRejected,
    Provider,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    retry_after_seconds,
)
from providers.mime import add_parts

SIGNING_NAME = "ses"  # the service name in SES's SigV4 credential scope
SEND_PATH = "/v2/email/outbound-emails"
MAX_TAGS = 10  # of the mail's tags sent as message tags, as many as a mail may have
TAG_TEXT = re.compile(r"[A-Za-z0-9_-]{1,256}")  # a message tag's name or value
MISCONFIGURED = frozenset(
    {
        "AccountSuspendedException",
        "SendingPausedException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
    }
)
RATE_LIMITED = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "ThrottlingException"}
)
# Lines of the raw message stay under SMTP's 998 characters whatever the bodies hold.
MIME_POLICY = SMTP.clone(max_line_length=78)


def error_type(headers, body):
    """SES's name for an error: the ``x-amzn-ErrorType`` header's before any ``:``, else the
    body's ``__type`` or ``code`` after any ``#`` (as botocore reads rest-json errors)."""
    header = headers.get("x-amzn-ErrorType")
    if header:
        return header.split(":", 1)[0].strip()
    if isinstance(body, dict):
        for key in ("__type", "code"):
            if isinstance(body.get(key), str):
                return body[key].rsplit("#", 1)[-1]
    return None


def mime_message(message, message_id):
    """The mail as a MIME message (``providers.mime``), with ``message_id`` as its Message-ID.

    The bodies are quoted-printable, so no line is too long for SMTP and non-ASCII text
    arrives intact; there is no Bcc header (the recipients are in ``Destination``).
    """
    mime = EmailMessage(policy=MIME_POLICY)
    mime["From"] = message.from_address
    mime["To"] = ", ".join(message.to)
    if message.cc:
        mime["Cc"] = ", ".join(message.cc)
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(usegmt=True)
    mime["Message-ID"] = message_id
    for name, value in message.headers.items():
        mime[name] = value
    add_parts(mime, message, cte="quoted-printable")
    return mime.as_bytes()


def _bare(addresses):
    """The addr-specs of 'Name <addr>' entries: SES's ``Destination`` takes plain addresses."""
    return [parseaddr(address)[1] or address for address in addresses]


class SES(Provider):
    """Sends through Amazon SES (API v2)."""

    name = "ses"
    # SES reads X-SES-* headers of a raw message as instructions and removes them before
    # sending: X-SES-CONFIGURATION-SET (where the events go), X-SES-MESSAGE-TAGS, and the
    # sending-authorization X-SES-SOURCE-ARN, X-SES-FROM-ARN and X-SES-RETURN-PATH-ARN.
    control_header_prefixes = ("X-SES-",)
    required_settings = ("SES_REGION", "SES_ACCESS_KEY_ID", "SES_SECRET_ACCESS_KEY")

    def __init__(self, config):
        super().__init__(config)
        self.region = config["SES_REGION"]
        self.access_key_id = config["SES_ACCESS_KEY_ID"]
        self.secret_access_key = config["SES_SECRET_ACCESS_KEY"]
        self.configuration_set = config["SES_CONFIGURATION_SET"]
        base = config["SES_BASE_URL"] or f"https://email.{self.region}.amazonaws.com"
        self.base_url = base.rstrip("/")

    @classmethod
    def tags_for(cls, tags):
        """The first ten tags that SES takes as a message tag's value: 1 to 256 ASCII letters,
        digits, underscores or dashes. Another tag is skipped, not rewritten."""
        return [tag for tag in tags if TAG_TEXT.fullmatch(tag)][:MAX_TAGS]

    @classmethod
    def email_tags(cls, message):
        """SendEmail's ``EmailTags``: our mail id (echoed in SES's events), then the tags."""
        tags = [{"Name": "mail_id", "Value": message.id}]
        tags += [
            {"Name": f"tag_{number}", "Value": tag}
            for number, tag in enumerate(cls.tags_for(message.tags))
        ]
        return tags

    def raw(self, message):
        """The raw MIME message of ``message``, with our Message-ID (which SES replaces)."""
        return mime_message(message, self.message_id_for(message))

    def payload(self, message):
        """SendEmail's JSON body: the raw MIME message, every recipient, the tags."""
        destination = {"ToAddresses": _bare(message.to)}
        if message.cc:
            destination["CcAddresses"] = _bare(message.cc)
        if message.bcc:
            destination["BccAddresses"] = _bare(message.bcc)
        body = {
            "FromEmailAddress": _bare([message.from_address])[0],
            "Destination": destination,
            "Content": {"Raw": {"Data": base64.b64encode(self.raw(message)).decode()}},
            "EmailTags": self.email_tags(message),
        }
        if self.configuration_set:
            body["ConfigurationSetName"] = self.configuration_set
        return body

    def build_request(self, message):
        """The body as JSON bytes with the headers that SigV4 signed over exactly them."""
        url = f"{self.base_url}{SEND_PATH}"
        data = json.dumps(self.payload(message)).encode()
        request = AWSRequest(
            method="POST", url=url, data=data, headers={"Content-Type": "application/json"}
        )
        credentials = Credentials(self.access_key_id, self.secret_access_key)
        SigV4Auth(credentials, SIGNING_NAME, self.region).add_auth(request)
        return {"url": url, "data": data, "headers": dict(request.headers.items())}

    def message_id(self, response, body):
        """The ``MessageId`` of SES's JSON answer."""
        if isinstance(body, dict) and isinstance(body.get("MessageId"), str):
            return body["MessageId"]
        return None

    def error_reason(self, body):
        """SES's ``message`` (``Message`` in some of AWS's answers)."""
        if not isinstance(body, dict):
            return None
        reason = body.get("message") or body.get("Message")
        return reason if isinstance(reason, str) else None

    def read_response(self, response, body):
        """Classify an error by SES's error type, then by its status as the base class does."""
        status = response.status_code
        if 200 <= status < 300:
            return self.accepted(response, body)
        kind = error_type(response.headers, body)
        reason = self.error_reason(body) or f"HTTP {status}"
        reason = f"{kind}: {reason}" if kind else reason
        if kind in MISCONFIGURED or status in (401, 403):
            if kind == "NotFoundException":
                reason += "; check SES_CONFIGURATION_SET"
            raise ProviderMisconfigured(reason, status, body)
        if kind in RATE_LIMITED or status == 429:
            retry_after = retry_after_seconds(response.headers)
            if retry_after is None:
                retry_after = self.default_retry_after
            raise RateLimited(reason, status, body, min(retry_after, MAX_RETRY_AFTER))
        if status == 408 or status >= 500:
            raise ProviderUnavailable(reason, status, body)
        if 400 <= status < 500:
            raise MessageRejected(reason, status, body)
        raise ProviderUnavailable(f"unexpected answer: {reason}", status, body)
