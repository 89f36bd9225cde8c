"""SendGrid's v3 send API: ``POST {base}/v3/mail/send`` with a JSON body.

Auth is ``Authorization: Bearer {key}``. Success is ``202`` with an empty body and the id in the
``X-Message-Id`` header; errors carry ``{"errors": [{"message", "field", "help"}]}``, and a 429
may say when to come back in ``X-RateLimit-Reset``. The EU region lives at
https://api.eu.sendgrid.com, so the base URL is a setting.

What SendGrid accepts of a message beyond its addresses and bodies, from its mail/send
reference: "categories" holds at most 10 unique names, "Each category name may not exceed 255
characters", and "Categories must be in 7-bit encoding using the US-ASCII character set"
(Working with Categories); "Total custom_args size may not exceed 10,000 bytes".

Our Message-ID goes in ``headers``: it is not one of the headers SendGrid reserves ("x-sg-id,
x-sg-eid, received, dkim-signature, Content-Type, Content-Transfer-Encoding, To, From,
Subject, Reply-To, CC, BCC"), and SendGrid delivers it as given. An inline part is an
attachment with ``"disposition": "inline"`` and its ``content_id``.
"""

import base64
import json
from email.utils import parseaddr

from providers.base import Provider, accepted_tags

MAX_CATEGORIES = 10  # per message
MAX_CATEGORY_LENGTH = 255  # characters, US-ASCII only
MAX_CUSTOM_ARGS_BYTES = 10_000  # custom_args as JSON, UTF-8


def _address(value):
    """SendGrid's ``{"email", "name"}`` object for 'Name <addr>' or 'addr'."""
    name, email = parseaddr(value)
    return {"email": email, "name": name} if name else {"email": email}


def _unique(addresses, seen):
    """Addresses not yet in ``seen`` (case-insensitive), which records them.

    SendGrid rejects a personalization that names one address twice across to, cc and bcc
    ("Each email address in the personalization block should be unique between to, cc, and
    bcc"), where Mailgun simply delivers once.
    """
    kept = []
    for value in addresses:
        email = parseaddr(value)[1].lower()
        if email not in seen:
            seen.add(email)
            kept.append(_address(value))
    return kept


def _attachment(item):
    """SendGrid's attachment object: a file, or an inline part with its ``content_id``."""
    attachment = {
        "content": base64.b64encode(item["content"]).decode("ascii"),
        "filename": item["filename"],
        "type": item["content_type"],
        "disposition": "attachment",
    }
    if item.get("content_id"):
        attachment.update(disposition="inline", content_id=item["content_id"])
    return attachment


class SendGrid(Provider):
    """Sends through SendGrid."""

    name = "sendgrid"
    # X-SMTPAPI is SendGrid's instruction header (its "to" adds recipients, its "unique_args"
    # change what the events carry); X-SG-ID and X-SG-EID are the ids SendGrid stamps and its
    # events are matched by ("You may not overwrite the following reserved headers: x-sg-id,
    # x-sg-eid, ..."), and the X-SG- prefix is SendGrid's own.
    control_headers = ("X-SMTPAPI",)
    control_header_prefixes = ("X-SG-",)
    required_settings = ("SENDGRID_API_KEY",)

    def __init__(self, config):
        super().__init__(config)
        self.base_url = config["SENDGRID_BASE_URL"].rstrip("/")
        self.api_key = config["SENDGRID_API_KEY"]

    @classmethod
    def tags_for(cls, tags):
        """The first ten ASCII tags of at most 255 characters (SendGrid's categories)."""
        return accepted_tags(tags, MAX_CATEGORIES, MAX_CATEGORY_LENGTH)

    @classmethod
    def custom_args(cls, message):
        """The metadata with our mail id, echoed back in SendGrid's event webhook, so a delivery
        event finds its mail."""
        return {**message.metadata, "mail_id": message.id}

    @classmethod
    def refusal(cls, message):
        """The metadata must fit in SendGrid's 10,000 bytes of ``custom_args`` beside the mail
        id that the service adds."""
        size = len(json.dumps(cls.custom_args(message), ensure_ascii=False).encode())
        if size <= MAX_CUSTOM_ARGS_BYTES:
            return None
        return "metadata", (
            f"Metadata and the mail id take {size} bytes as SendGrid's custom_args; SendGrid "
            f"takes at most {MAX_CUSTOM_ARGS_BYTES}"
        )

    def build_request(self, message):
        """The v3 JSON body: one personalization, plain text before HTML as SendGrid requires."""
        seen = set()
        personalization = {"to": _unique(message.to, seen)}
        for kind in ("cc", "bcc"):
            addresses = _unique(getattr(message, kind), seen)
            if addresses:
                personalization[kind] = addresses
        content = []
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        body = {
            "personalizations": [personalization],
            "from": _address(message.from_address),
            "subject": message.subject,
            "content": content,
            "custom_args": self.custom_args(message),
        }
        if message.reply_to:
            body["reply_to"] = _address(message.reply_to)
        body["headers"] = {"Message-ID": self.message_id_for(message), **message.headers}
        categories = self.tags_for(message.tags)
        if categories:
            body["categories"] = categories
        if message.attachments:
            body["attachments"] = [_attachment(item) for item in message.attachments]
        return {
            "url": f"{self.base_url}/v3/mail/send",
            "headers": {"Authorization": f"Bearer {self.api_key}"},
            "json": body,
        }

    def message_id(self, response, body):
        """SendGrid's id comes in a header; the 202 body is empty."""
        return response.headers.get("X-Message-Id")

    def error_reason(self, body):
        """The messages of SendGrid's ``errors`` list, with the field each one names."""
        if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
            return None
        parts = []
        for error in body["errors"]:
            if isinstance(error, dict):
                field = f" ({error['field']})" if error.get("field") else ""
                parts.append(f"{error.get('message')}{field}")
        return "; ".join(parts) or None
