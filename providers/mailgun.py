"""Mailgun's send API: ``POST {base}/v3/{domain}/messages`` with form fields.

Auth is HTTP basic ``api:{key}``. Success is ``200 {"id": "<...@domain>", "message": "Queued.
Thank you."}``; errors carry ``{"message": "..."}``. The EU region lives at
https://api.eu.mailgun.net, so the base URL is a setting.
"""

from urllib.parse import quote

from providers.base import Provider, ProviderMisconfigured


class Mailgun(Provider):
    """Sends through Mailgun."""

    name = "mailgun"
    # Mailgun takes every sending option as an X-Mailgun-* header too ("For SMTP you must use
    # the SMTP Headers below": X-Mailgun-Drop-Message, X-Mailgun-Sending-Ip, ...), and its
    # variables as X-Mailgun-Variables and X-Mailgun-Recipient-Variables. A custom header goes
    # to Mailgun as a header (an ``h:`` field), where it may act on it.
    control_header_prefixes = ("X-Mailgun-",)

    def __init__(self, config):
        super().__init__(config)
        self.base_url = config["MAILGUN_BASE_URL"].rstrip("/")
        self.domain = config["MAILGUN_DOMAIN"]
        self.api_key = config["MAILGUN_API_KEY"]
        if "/" in self.domain:
            raise ValueError(f"MAILGUN_DOMAIN {self.domain!r} must be a domain, not a path")

    def is_configured(self):
        """Mailgun needs a key and a sending domain."""
        return bool(self.api_key and self.domain)

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
        if message.reply_to:
            fields.append(("h:Reply-To", message.reply_to))
        fields += [(f"h:{name}", value) for name, value in message.headers.items()]
        fields += [("o:tag", tag) for tag in message.tags]
        fields += [(f"v:{key}", value) for key, value in message.metadata.items()]
        # Echoed back in Mailgun's webhooks, so a delivery event finds its mail.
        fields.append(("v:mail_id", message.id))
        request = {
            "url": f"{self.base_url}/v3/{quote(self.domain, safe='')}/messages",
            "auth": ("api", self.api_key),
            "data": fields,
        }
        if message.attachments:  # multipart/form-data, one "attachment" part per file
            request["files"] = [
                ("attachment", (item["filename"], item["content"], item["content_type"]))
                for item in message.attachments
            ]
        return request

    def message_id(self, response, body):
        """The ``id`` of Mailgun's JSON answer."""
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            return body["id"]
        return None

    def error_reason(self, body):
        """Mailgun puts its reason in ``message``."""
        if isinstance(body, dict):
            return body.get("message")
        return None

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
