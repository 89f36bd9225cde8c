"""Mailgun's send API: ``POST {base}/v3/{domain}/messages`` with form fields.

Auth is HTTP basic ``api:{key}``. Success is ``200 {"id": "<...@domain>", "message": "Queued.
Thank you."}``; errors carry ``{"message": "..."}``. The EU region lives at
https://api.eu.mailgun.net, so the base URL is a setting.

What Mailgun accepts of a message beyond its addresses and bodies, from its documentation:
"A single message may be marked with up to 3 tags. Tags are case insensitive and should be
ascii only. The maximum length of characters is 128." (Tagging), and "Send options (parameters
starting with o:, h:, v:, or t:) are limited to 16KB total" (Messages API).

Our Message-ID goes as the header field ``h:Message-Id``, which Mailgun delivers as it is
(Mailgun's FAQ, "How do I track which email a recipient has replied to?"). An inline part goes
as an ``inline`` file, not an ``attachment``: Mailgun makes the file's name its Content-ID, so
the name we give it is the content id, the one the HTML's ``cid:`` refers to.
"""

import json
from dataclasses import replace
from urllib.parse import quote

from providers.base import MAX_DOMAIN, Provider, ProviderMisconfigured, accepted_tags

MAX_TAGS = 3  # o:tag fields per message
MAX_TAG_LENGTH = 128  # characters, ASCII only
MAX_OPTIONS_BYTES = 16 * 1024  # o:, h:, v: and t: fields, names and values, UTF-8, in total


def options_size(fields):
    """The bytes of the sending options among form ``fields``, as Mailgun's limit counts them
    (names with their values: the documentation does not say, so we count the larger)."""
    return sum(
        len(name.encode()) + len(value.encode())
        for name, value in fields
        if name[:2] in ("o:", "h:", "v:", "t:")
    )


class Mailgun(Provider):
    """Sends through Mailgun."""

    name = "mailgun"
    # Mailgun takes every sending option as an X-Mailgun-* header too ("For SMTP you must use
    # the SMTP Headers below": X-Mailgun-Drop-Message, X-Mailgun-Sending-Ip, ...), and its
    # variables as X-Mailgun-Variables and X-Mailgun-Recipient-Variables. A custom header goes
    # to Mailgun as a header (an ``h:`` field), where it may act on it.
    control_header_prefixes = ("X-Mailgun-",)
    required_settings = ("MAILGUN_API_KEY", "MAILGUN_DOMAIN")

    def __init__(self, config):
        super().__init__(config)
        self.base_url = config["MAILGUN_BASE_URL"].rstrip("/")
        self.domain = config["MAILGUN_DOMAIN"]
        self.api_key = config["MAILGUN_API_KEY"]
        if "/" in self.domain:
            raise ValueError(f"MAILGUN_DOMAIN {self.domain!r} must be a domain, not a path")

    @classmethod
    def tags_for(cls, tags):
        """The first three ASCII tags of at most 128 characters, once each ignoring case (Mailgun
        counts "Welcome" and "welcome" as one tag)."""
        return accepted_tags(tags, MAX_TAGS, MAX_TAG_LENGTH, key=str.lower)

    @classmethod
    def options(cls, message, message_id=None):
        """The message's sending options: ``h:`` headers (our ``message_id`` first; None: the
        longest one we could write, as the submission counts them), ``o:tag`` tags, ``v:``
        variables."""
        message_id = message_id or f"<{message.id}@{'x' * MAX_DOMAIN}>"
        fields = [("h:Message-Id", message_id)]
        fields += [("h:Reply-To", message.reply_to)] if message.reply_to else []
        fields += [(f"h:{name}", value) for name, value in message.headers.items()]
        fields += [("o:tag", tag) for tag in cls.tags_for(message.tags)]
        fields += [(f"v:{key}", value) for key, value in message.metadata.items()]
        # Echoed back in Mailgun's webhooks, so a delivery event finds its mail.
        fields.append(("v:mail_id", message.id))
        return fields

    @classmethod
    def refusal(cls, message):
        """The custom headers and metadata must fit in Mailgun's 16 KB of sending options
        beside what the service adds itself (the mail id, the tags, Reply-To)."""
        size = options_size(cls.options(message))
        if size <= MAX_OPTIONS_BYTES:
            return None
        ours = options_size(cls.options(replace(message, headers={}, metadata={})))
        return "headers" if message.headers else "metadata", (
            f"Custom headers and metadata take {size - ours} bytes of Mailgun's sending "
            f"options, and this mail leaves them {MAX_OPTIONS_BYTES - ours}: Mailgun takes "
            f"{MAX_OPTIONS_BYTES} bytes of h:, o: and v: fields (names and values) in all, and "
            f"the service adds {ours} for the mail id, the Message-ID, the tags and reply_to"
        )

    def build_request(self, message):
        """Form fields; repeated ``to``/``cc``/``bcc`` fields carry several recipients."""
        fields = [("from", message.from_address)]
        fields += [("to", address) for address in message.to]
        fields += [("cc", address) for address in message.cc]
        fields += [("bcc", address) for address in message.bcc]
        fields.append(("subject", message.subject))
        if message.text:
            fields.append(("text", message.text))
        if message.html:
            fields.append(("html", message.html))
        fields += self.options(message, self.message_id_for(message))
        request = {
            "url": f"{self.base_url}/v3/{quote(self.domain, safe='')}/messages",
            "auth": ("api", self.api_key),
            "data": fields,
        }
        if message.attachments:  # multipart/form-data, one part per file
            request["files"] = [_file(item) for item in message.attachments]
        return request

    def message_id(self, response, body):
        """The ``id`` of Mailgun's JSON answer."""
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            return body["id"]
        return None

    def error_reason(self, body):
        """Mailgun puts its reason in ``message``: a string as it is, any other value (an object
        from a proxy, say) as its JSON text, so the reason is always text or None."""
        message = body.get("message") if isinstance(body, dict) else None
        if message is None or isinstance(message, str):
            return message
        return json.dumps(message, ensure_ascii=False)

    def read_response(self, response, body):
        """Mailgun answers an unknown domain with 404 ``{"message": "Domain not found: ..."}``.

        That usually means the domain lives in the other region (US vs EU base URL): a settings
        problem, which must not fail the mail as if the message were bad. Any other 404 is what
        it says.
        """
        reason = self.error_reason(body) or ""
        if response.status_code == 404 and "domain not found" in reason.lower():
            raise ProviderMisconfigured(
                f"domain {self.domain!r} not found; check MAILGUN_DOMAIN and MAILGUN_BASE_URL",
                404,
                body,
            )
        return super().read_response(response, body)


def _file(item):
    """A file's multipart field: ``attachment`` with its name, or ``inline`` named by its
    content id (Mailgun's Content-ID of an inline part is its file name)."""
    if item.get("content_id"):
        return "inline", (item["content_id"], item["content"], item["content_type"])
    return "attachment", (item["filename"], item["content"], item["content_type"])
