"""The contract every provider module fulfils, and the one family of errors they raise.

A send always goes the same way: build the request, post it with a timeout on the session that
the caller reuses, then either parse the provider's message id or classify the failure into one
of three kinds (as django-anymail does):

- ``MessageRejected``: the message itself is bad; trying another provider will not help;
- ``ProviderUnavailable``: the provider is down or misconfigured (``ProviderMisconfigured``:
  our key is refused, or a 2xx without a message id shows we are not talking to its API);
  try the next one;
- ``RateLimited``: the provider asks us to slow down; try the next one, and pause this one.

``OutcomeUnknown`` is the subtle case: the request went out and no answer came back, so the
provider may have accepted the mail.

Every mail goes out with a Message-ID of ours, ``<{mail id}@{MESSAGE_ID_DOMAIN}>`` (the
sender's domain when that is empty), wherever the provider lets us set it
(``Provider.message_id_for``): a reply names it in In-Reply-To, so it finds its mail.
"""

import json
import math
import re
import time
from dataclasses import dataclass, field
from email.utils import parseaddr, parsedate_to_datetime

import requests

MAX_STORED_BODY = 2000  # characters of a provider's answer that we keep
MAX_READ_BODY = 1024 * 1024  # bytes of an answer we read at all; a larger one is cut off
MAX_RETRY_AFTER = 3600.0  # seconds: the longest pause a 429 can impose on us
MAX_DOMAIN = 253  # characters of a domain name, the longest a Message-ID's domain can be
# A domain name as a Message-ID's id-right may be one: dot-separated labels of letters, digits
# and hyphens, at most MAX_DOMAIN characters in all.
DOMAIN = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dataclass
class Message:
    """One mail as the providers need it, independent of how it is stored."""

    id: str
    from_address: str
    to: list[str]
    subject: str
    text: str | None = None
    html: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_to: str | None = None
    headers: dict = field(default_factory=dict)  # custom headers, name -> value
    tags: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # flat, string values
    # filename, content_type, content; an inline part also its content_id (no angle brackets)
    attachments: list[dict] = field(default_factory=list)


@dataclass
class Sent:
    """A provider accepted the mail."""

    message_id: str | None
    status_code: int
    response: object
    # Recipients the provider refused while it took the mail for the others (an SMTP relay's
    # 5xx to RCPT TO), by address, with its reply ("550 5.1.1 ..."): each one has bounced.
    refused: dict = field(default_factory=dict)


class ProviderError(Exception):
    """A send that did not succeed, with what the provider answered (if anything)."""

    outcome = "transient"

    def __init__(self, reason, status_code=None, response=None):
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.response = response


class MessageRejected(ProviderError):
    """The provider says the message is bad (4xx): no provider will take it."""

    outcome = "rejected"


class ProviderUnavailable(ProviderError):
    """The provider is down: 5xx, connection refused, or a timeout before sending."""

    outcome = "transient"


class ProviderMisconfigured(ProviderUnavailable):
    """401/403: our key or domain for this provider is wrong. Operators must act."""

    outcome = "misconfigured"


class OutcomeUnknown(ProviderUnavailable):
    """The request went out but no answer came: the provider may have taken the mail."""

    outcome = "unknown"


class RateLimited(ProviderError):
    """429: the provider asks us to wait ``retry_after`` seconds."""

    outcome = "rate_limited"

    def __init__(self, reason, status_code=None, response=None, retry_after=None):
        super().__init__(reason, status_code, response)
        self.retry_after = retry_after


class Provider:
    """Base class: subclasses set ``name`` and implement ``build_request`` and ``message_id``."""

    name = "provider"
    base_url = ""
    default_retry_after = 60.0  # seconds, when a 429 does not say how long to wait
    # Headers this provider reads as instructions (who receives the mail, where its events go,
    # whether it is delivered at all) rather than passing them on: a client's custom headers
    # must not hold one. Exact names, and prefixes of names; any case.
    control_headers = ()
    control_header_prefixes = ()
    required_settings = ()  # the settings without which this provider cannot send

    @classmethod
    def reads_as_instruction(cls, header):
        """Whether this provider takes the header named ``header`` as an instruction to it."""
        name = header.lower()
        return any(name == known.lower() for known in cls.control_headers) or any(
            name.startswith(prefix.lower()) for prefix in cls.control_header_prefixes
        )

    def __init__(self, config):
        self.timeout = config["PROVIDER_TIMEOUT"]
        self.missing = [name for name in self.required_settings if not config.get(name)]
        self.message_id_domain = message_id_domain(config)

    def message_id_for(self, message):
        """The Message-ID we give ``message``: ``<{mail id}@{domain}>`` (``make_message_id``)."""
        return make_message_id(message.id, message.from_address, self.message_id_domain)

    def is_configured(self):
        """Whether the settings this provider needs are present."""
        return not self.missing_settings()

    def missing_settings(self):
        """The names of the settings in ``required_settings`` that are empty, so that the
        worker's start-up refusal can name them."""
        return list(self.missing)

    def close(self):
        """Release what this provider keeps between sends (an SMTP relay's connections)."""

    @classmethod
    def tags_for(cls, tags):
        """The mail's tags that this provider takes, in order (all of them unless it limits
        them). The mail keeps every tag with us, whatever a provider takes."""
        return list(tags)

    @classmethod
    def refusal(cls, message):
        """Why this provider would refuse ``message`` for the custom headers or metadata its
        client chose, whatever our settings: ``(field, reason)``, or None.

        The submission asks every provider in ``providers.REGISTRY`` (``mailer.validation``),
        so that a mail accepted by the API can go through any of them.
        """
        return None

    def build_request(self, message):
        """Keyword arguments for ``requests.Session.post``: url, auth, data or json."""
        raise NotImplementedError

    def message_id(self, response, body):
        """The provider's id for an accepted mail from its answer, or None if it has none."""
        raise NotImplementedError

    def error_reason(self, body):
        """The human reason in an error answer's parsed body."""
        return None

    def send(self, session, message):
        """Post ``message``; return ``Sent`` or raise a ``ProviderError``."""
        request = self.build_request(message)
        try:
            response = session.post(timeout=self.timeout, stream=True, **request)
        except requests.ConnectTimeout as err:
            raise ProviderUnavailable(f"connect timeout: {err}") from err
        except requests.ConnectionError as err:
            if _request_was_sent(err):
                raise OutcomeUnknown(f"connection lost after sending: {err}") from err
            raise ProviderUnavailable(f"connection failed: {err}") from err
        except requests.Timeout as err:
            raise OutcomeUnknown(f"no answer within {self.timeout:g}s: {err}") from err
        except requests.RequestException as err:
            raise ProviderUnavailable(f"request failed: {err}") from err
        try:
            body = read_body(response)
        except requests.RequestException as err:
            # The headers came, so the provider had the request: its verdict is unknown.
            raise OutcomeUnknown(f"answer cut off: {err}", response.status_code) from err
        return self.read_response(response, body)

    def read_response(self, response, body):
        """Turn an HTTP answer and its parsed body into ``Sent`` or a ``ProviderError``."""
        status = response.status_code
        if 200 <= status < 300:
            return self.accepted(response, body)
        reason = self.error_reason(body) or f"HTTP {status}"
        if status == 429:
            retry_after = retry_after_seconds(response.headers)
            if retry_after is None:  # 0 is an answer ("try again now"), not a missing one
                retry_after = self.default_retry_after
            raise RateLimited(reason, status, body, min(retry_after, MAX_RETRY_AFTER))
        if status in (401, 403):
            raise ProviderMisconfigured(f"credentials refused: {reason}", status, body)
        if status == 408 or status >= 500:
            raise ProviderUnavailable(reason, status, body)
        if 400 <= status < 500:
            raise MessageRejected(reason, status, body)
        raise ProviderUnavailable(f"unexpected answer: {reason}", status, body)

    def accepted(self, response, body):
        """A 2xx is a sent mail only with the provider's message id in it.

        A 2xx without one is not the provider's send API talking: a wrong base URL (Mailgun's
        root answers 200 "Mailgun Magnificent API") or a proxy's page. That is our settings'
        fault, not proof that the mail went, and not a reason to fail the mail either.
        """
        message_id = self.message_id(response, body)
        if not message_id:
            raise ProviderMisconfigured(
                f"answered {response.status_code} without a message id: not {self.name}'s "
                f"send API; check {self.name.upper()}_BASE_URL",
                response.status_code,
                body,
            )
        return Sent(message_id, response.status_code, body)


def message_id_domain(config):
    """``MESSAGE_ID_DOMAIN``, or the deprecated ``SMTP_MESSAGE_ID_DOMAIN`` when only that is set;
    empty for the sender's domain. ValueError, naming the setting, for one that is not a
    domain: it would make every mail's Message-ID malformed."""
    for name in ("MESSAGE_ID_DOMAIN", "SMTP_MESSAGE_ID_DOMAIN"):
        domain = config.get(name) or ""
        if domain:
            try:
                ascii_domain = domain.encode("idna").decode("ascii")
            except UnicodeError:
                ascii_domain = ""
            if not DOMAIN.fullmatch(ascii_domain):
                raise ValueError(f"{name} {domain!r} must be a domain, e.g. mail.example.com")
            return domain
    return ""


def make_message_id(mail_id, from_address, domain=""):
    """The Message-ID of the mail ``mail_id``: ``<{mail id}@{domain}>``, ``domain`` being the
    sender's when empty. The domain is written in ASCII (IDNA), lower case: a Message-ID's
    msg-id is ASCII (RFC 5322, section 3.6.4), and a reply quotes it byte for byte."""
    domain = domain or (parseaddr(from_address)[1] or from_address).rpartition("@")[2]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = domain.encode("ascii", "ignore").decode() or "localhost"
    return f"<{mail_id}@{domain.lower()}>"


def accepted_tags(tags, most, longest, key=None):
    """The first ``most`` of ``tags`` that are ASCII and at most ``longest`` characters long,
    each once (as ``key`` compares them, e.g. ``str.lower`` for a provider that ignores case).

    A tag that does not fit is skipped, not cut short or stripped of its accents: that would
    file the provider's statistics under a name the client never gave.
    """
    kept, seen = [], set()
    for tag in tags:
        same = key(tag) if key else tag
        if tag.isascii() and len(tag) <= longest and same not in seen:
            seen.add(same)
            kept.append(tag)
            if len(kept) == most:
                break
    return kept


def _request_was_sent(err):
    """Whether a connection error happened after the request was on the wire.

    urllib3 reports a peer that hung up mid-answer as a ProtocolError ("Connection aborted" /
    "RemoteDisconnected"), while a refused or unreachable peer is a NewConnectionError.
    """
    text = str(err)
    return "Connection aborted" in text or "RemoteDisconnected" in text


def read_body(response):
    """Read at most ``MAX_READ_BODY`` bytes of an answer and parse it.

    Reading an answer to its end keeps the connection for the next send; a larger answer (a
    misbehaving proxy, say) is cut off and its connection closed rather than held in memory.
    """
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_READ_BODY:
            break
    response.close()
    text = b"".join(chunks).decode(response.encoding or "utf-8", errors="replace")
    return parse_body(text)


def parse_body(text):
    """The answer as JSON if it is JSON, else its text cut to ``MAX_STORED_BODY``."""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text[:MAX_STORED_BODY]


def retry_after_seconds(headers):
    """Seconds to wait from Retry-After (seconds or HTTP date) or X-RateLimit-Reset (epoch)."""
    value = headers.get("Retry-After")
    if value:
        try:
            seconds = float(value)
            return max(0.0, seconds) if math.isfinite(seconds) else None
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            seconds = float(reset) - time.time()
            return max(0.0, seconds) if math.isfinite(seconds) else None
        except ValueError:
            pass
    return None
