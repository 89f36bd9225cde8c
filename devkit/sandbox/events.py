"""The providers' event webhooks, as the sandbox plays them: signed events about what it took.

Off until a URL is set (``--events-url``, ``SANDBOX_EVENTS_URL`` or ``PUT /_sandbox/events``):
then, ``delay`` seconds after each accepted send, the sandbox posts events for every recipient
to ``<url>/webhooks/<provider>``, signed as the provider signs them with the keys it was given
(``mailgun_key``, Mailgun's HMAC signing key; ``sendgrid_key``, SendGrid's ECDSA private key as
base64 DER), or for Postmark, which signs nothing, with the basic auth of its webhook URL
(``postmark_username`` and ``postmark_password``). SES's events go as SNS Notifications of the
topic ``ses_topic_arn``, signed with the sandbox's own key (``sns``) in
``sns_signature_version`` 1 or 2: one per SES event, listing every recipient of that outcome. A
provider without its credentials (``CREDENTIALS``) posts nothing; the SMTP relay has no events.

Each recipient is ``delivered`` unless ``outcomes`` names its address: ``bounce`` (Mailgun
``failed``/permanent, SendGrid ``bounce``, Postmark ``Bounce``/``HardBounce``, SES a
``Permanent`` ``Bounce``), ``defer`` (``failed``/temporary, ``deferred``,
``Bounce``/``SoftBounce``, ``DeliveryDelay``), ``complain`` (delivered, then
``complained``/``spamreport``/``SpamComplaint``/``Complaint``) or ``none``; or unless ``rates``
gives an outcome to a share of the addresses, ``{"bounce": 0.02, "complain": 0.001}``, drawn
from a hash of the address (``outcome_of``: an address always fares the same, and whoever knows
the address knows its fate). SendGrid's batch, and each of Postmark's events, is posted
``duplicates`` times, as they deliver the same events more than once.

A send's events wait ``delay`` seconds, plus up to ``jitter`` more drawn at random; then they
are posted, at most ``posters`` posts at once (``schedule.Later``). What was posted is kept, the
newest ``keep`` posts of it (all while None); ``tally`` counts every post.

    PUT /_sandbox/events  {"url": "http://127.0.0.1:5000", "mailgun_key": "...",
                           "sendgrid_key": "...", "outcomes": {"a@example.com": "bounce"},
                           "duplicates": 2, "delay": 0.2}
    GET /_sandbox/events  the settings (keys shown only as set or not) and what was posted
"""

import hashlib
import json
import random
import secrets
import threading
import time
from collections import Counter, deque

import requests

from devkit.sandbox.schedule import MAX_LIMIT, Later
from devkit.sandbox.sns import SES_EVENTS, Signer, ses_event
from devkit.sandbox.wire import now_iso
from mailer.events.ses import HASHES
from mailer.events.signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    mailgun_signature,
    sendgrid_sign,
)
from mailer.validation.addresses import bare_address

OUTCOMES = ("deliver", "bounce", "defer", "complain", "none")
DEFAULTS = {
    "url": None,
    "mailgun_key": None,
    "sendgrid_key": None,
    "ses_topic_arn": None,
    "sns_signature_version": "1",
    "postmark_username": None,
    "postmark_password": None,
    # SendGrid's Inbound Parse URL's basic auth, for the inbound mail it posts (``inbound``).
    "sendgrid_inbound_username": None,
    "sendgrid_inbound_password": None,
    "outcomes": {},
    "duplicates": 1,
    "delay": 0.2,
    "jitter": 0.0,  # seconds: up to this much more delay, drawn for each send
    "rates": {},  # outcome -> the share of addresses (not in outcomes) that get it
    "posters": 1,  # posts at once
}
TIMEOUT = 10.0  # seconds per post
BOUNCE_REASON = {
    "code": 550,
    "message": "5.1.1 The email account that you tried to reach does not exist",
    "description": "mailbox unavailable",
}
DEFER_REASON = {"code": 421, "message": "4.7.0 Try again later", "description": "greylisted"}
# The settings a provider's posts need: without them it posts nothing.
CREDENTIALS = {
    "mailgun": ("mailgun_key",),
    "sendgrid": ("sendgrid_key",),
    "postmark": ("postmark_username", "postmark_password"),
    "ses": ("ses_topic_arn",),
}


def check_settings(settings):
    """The settings merged over the defaults, or ValueError saying what is wrong."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown event settings {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    merged = {**DEFAULTS, **{key: value for key, value in settings.items() if value is not None}}
    outcomes = merged["outcomes"]
    if not isinstance(outcomes, dict) or not set(outcomes.values()) <= set(OUTCOMES):
        raise ValueError(f"outcomes maps addresses to one of {OUTCOMES}")
    merged["outcomes"] = {bare_address(address): what for address, what in outcomes.items()}
    if not isinstance(merged["duplicates"], int) or not 1 <= merged["duplicates"] <= 50:
        raise ValueError("duplicates must be a whole number from 1 to 50")
    for name in ("delay", "jitter"):
        if not _is_number(merged[name]) or not 0 <= merged[name] <= 60:
            raise ValueError(f"{name} must be 0 to 60 seconds")
    _check_rates(merged["rates"])
    if not isinstance(merged["posters"], int) or not 1 <= merged["posters"] <= MAX_LIMIT:
        raise ValueError(f"posters must be a whole number from 1 to {MAX_LIMIT}")
    if merged["sns_signature_version"] not in HASHES:
        raise ValueError(f"sns_signature_version must be one of {sorted(HASHES)}")
    return merged


def _is_number(value):
    """True for int/float but not bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_rates(rates):
    """ValueError unless ``rates`` maps outcomes to shares that add up to at most 1."""
    if (
        not isinstance(rates, dict)
        or not set(rates) <= set(OUTCOMES)
        or not all(_is_number(share) and share >= 0 for share in rates.values())
        or sum(rates.values()) > 1
    ):
        raise ValueError(f"rates maps outcomes ({OUTCOMES}) to shares that add up to at most 1")


def outcome_of(address, settings):
    """What becomes of mail to the bare ``address``: what ``outcomes`` names, else what
    ``rates`` draws for it (from a hash of the address, so it never changes), else deliver."""
    named = settings["outcomes"].get(address)
    if named is not None:
        return named
    rates = settings.get("rates") or {}
    digest = hashlib.sha256(address.encode()).digest()
    share = int.from_bytes(digest[:8], "big") / 2**64
    for outcome in sorted(rates):
        share -= rates[outcome]
        if share < 0:
            return outcome
    return "deliver"


def shown(settings):
    """The settings as ``GET /_sandbox/events`` shows them: keys as set or not."""
    return {
        **settings,
        "mailgun_key": bool(settings["mailgun_key"]),
        "sendgrid_key": bool(settings["sendgrid_key"]),
        "postmark_password": bool(settings["postmark_password"]),
        "sendgrid_inbound_password": bool(settings["sendgrid_inbound_password"]),
    }


class Poster(threading.Thread):
    """Posts the events of accepted sends in the background, each send's after its delay, up
    to ``posters`` posts at once; the thread itself is ``schedule.Later``'s scheduler."""

    def __init__(self, stopping, keep=None):
        super().__init__(name="sandbox-events", daemon=True)
        self.stopping = stopping
        self.later = Later(stopping, "sandbox-post")
        self.lock = threading.Lock()
        self.default_keep = keep
        self.posted = deque(maxlen=keep)  # {"provider", "events", "status"} of each post
        self.tally = _PostTally()
        self.local = threading.local()  # a requests session per posting thread
        self.signer = Signer()  # SNS's part: signs SES's events, serves its certificate
        self.base_url = None  # the sandbox's own, where the certificate is (set at start)

    @property
    def session(self):
        """This thread's HTTP session (a session is not shared between threads)."""
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def submit(self, provider, records, settings):
        """Post the events of ``records`` (one send's accepted messages) after the delay."""
        needed = CREDENTIALS.get(provider)
        if settings["url"] and records and needed and all(settings[name] for name in needed):
            delay = settings["delay"] + random.uniform(0, settings["jitter"])
            self.later.put(
                time.monotonic() + delay,
                settings["posters"],
                lambda: self._post_records(provider, records, settings),
            )

    def run(self):
        """Hand each send's events to the posting threads once due, until the sandbox stops."""
        self.later.run()

    def _post_records(self, provider, records, settings):
        """Post the events of one send's records, in order."""
        for record in records:
            if provider == "mailgun":
                for body in mailgun_bodies(record, settings):
                    self._post(
                        provider,
                        settings,
                        json.dumps(body).encode(),
                        {"Content-Type": "application/json"},
                        [body["event-data"]],
                    )
            elif provider == "ses":
                self._post_ses(record, settings)
            elif provider == "postmark":
                self._post_postmark(record, settings)
            else:
                self._post_sendgrid(record, settings)

    def _post_sendgrid(self, record, settings):
        """Post one message's batch, signed, ``duplicates`` times."""
        events = sendgrid_batch(record, settings)
        raw = json.dumps(events).encode()
        for _ in range(settings["duplicates"]):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                SENDGRID_TIMESTAMP: timestamp,
                SENDGRID_SIGNATURE: sendgrid_sign(settings["sendgrid_key"], timestamp, raw),
            }
            self._post("sendgrid", settings, raw, headers, events)

    def _post_ses(self, record, settings):
        """Post one message's SES events, each as a signed SNS Notification."""
        for kind, recipients, event in ses_events(record, settings):
            message = self.signer.notification(
                self.base_url,
                settings["ses_topic_arn"],
                event,
                settings["sns_signature_version"],
            )
            headers = sns_headers(message)
            posted = [{"event": kind, "recipient": address} for address in recipients]
            self._post("ses", settings, json.dumps(message).encode(), headers, posted)

    def confirm_subscription(self, settings, topic_arn, **fields):
        """Post a signed SubscriptionConfirmation of ``topic_arn`` now; the status answered.
        ``fields`` replace the message's before it is signed (``subscribe_url``)."""
        message = self.signer.confirmation(
            self.base_url, topic_arn, settings["sns_signature_version"], **fields
        )
        url = f"{settings['url'].rstrip('/')}/webhooks/ses"
        body = json.dumps(message).encode()
        answer = self.session.post(url, data=body, headers=sns_headers(message), timeout=TIMEOUT)
        return answer.status_code

    def _post_postmark(self, record, settings):
        """Post one message's events, one a request, each ``duplicates`` times, with the basic
        auth of Postmark's webhook URL."""
        auth = (settings["postmark_username"], settings["postmark_password"])
        headers = {"Content-Type": "application/json"}
        for event in postmark_events(record, settings):
            shown = {"event": event["RecordType"], "recipient": postmark_recipient(event)}
            for _ in range(settings["duplicates"]):
                self._post("postmark", settings, json.dumps(event).encode(), headers, [shown], auth)

    def _post(self, provider, settings, body, headers, events, auth=None):
        """One post; its answer (or None if it got none) is kept in ``posted``."""
        url = f"{settings['url'].rstrip('/')}/webhooks/{provider}"
        try:
            status = self.session.post(url, data=body, headers=headers, timeout=TIMEOUT, auth=auth)
            status = status.status_code
        except requests.RequestException:
            status = None
        with self.lock:
            self.posted.append(
                {
                    "provider": provider,
                    "status": status,
                    "events": [
                        (event["event"], event.get("recipient") or event.get("email"))
                        for event in events
                    ],
                }
            )
            self.tally.add(status, len(events))

    def snapshot(self):
        """What was posted so far (the newest ``keep`` posts)."""
        with self.lock:
            return list(self.posted)

    def counted(self):
        """Every post counted, and the sends whose events wait (``GET /_sandbox/tally``)."""
        with self.lock:
            counted = self.tally.shown()
        return {**counted, **self.later.counts()}

    def set_keep(self, keep):
        """Keep only the newest ``keep`` posts from now on (None: all)."""
        with self.lock:
            self.posted = deque(self.posted, maxlen=keep)

    def reset(self):
        """Forget what was posted and the tally, and the subscriptions confirmed."""
        with self.lock:
            self.posted = deque(maxlen=self.default_keep)
            self.tally = _PostTally()
        self.later.forget_lateness()
        self.signer.forget()


class _PostTally:
    """Every event post counted: posts, events, answers, and the first and last post's time."""

    def __init__(self):
        self.posts = 0
        self.events = 0
        self.answers = Counter()  # status answered (None: no answer) -> posts
        self.first_at = self.last_at = None  # unix time

    def add(self, status, events):
        """Count one post of ``events`` events that got ``status``."""
        now = time.time()
        self.posts += 1
        self.events += events
        self.answers[str(status)] += 1
        self.first_at = self.first_at or now
        self.last_at = now

    def shown(self):
        """The counts, JSON-friendly."""
        return {
            "posts": self.posts,
            "events": self.events,
            "answers": dict(self.answers),
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


def recipients(record):
    """The bare addresses a message went to."""
    return list(
        dict.fromkeys(bare_address(entry) for entry in record["to"] + record["cc"] + record["bcc"])
    )


def mailgun_bodies(record, settings):
    """The signed Mailgun webhook bodies of one accepted message, one event each."""
    bodies = []
    for address in recipients(record):
        for event, extra in MAILGUN_EVENTS[outcome_of(address, settings)]:
            data = {
                "event": event,
                "recipient": address,
                "timestamp": time.time(),
                "id": secrets.token_urlsafe(16),
                **extra,
                "message": {"headers": {"message-id": record["id"].strip("<>")}},
                "user-variables": dict(record["custom"]),
            }
            timestamp, token = str(int(time.time())), secrets.token_hex(25)
            signature = mailgun_signature(settings["mailgun_key"], timestamp, token)
            bodies.append(
                {
                    "signature": {"timestamp": timestamp, "token": token, "signature": signature},
                    "event-data": data,
                }
            )
    return bodies


MAILGUN_EVENTS = {
    "deliver": [("delivered", {"delivery-status": {"code": 250, "message": "OK"}})],
    "bounce": [
        ("failed", {"severity": "permanent", "reason": "bounce", "delivery-status": BOUNCE_REASON})
    ],
    "defer": [
        ("failed", {"severity": "temporary", "reason": "generic", "delivery-status": DEFER_REASON})
    ],
    "complain": [("delivered", {}), ("complained", {})],
    "none": [],
}
SENDGRID_EVENTS = {
    "deliver": [("delivered", {"response": "250 OK"})],
    "bounce": [
        (
            "bounce",
            {
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 The email account does not exist",
            },
        )
    ],
    "defer": [("deferred", {"response": "421 4.7.0 Try again later", "attempt": "1"})],
    "complain": [("delivered", {}), ("spamreport", {})],
    "none": [],
}


def sendgrid_batch(record, settings):
    """SendGrid's batch of events for one accepted message: processed, then each outcome."""
    events = []
    for number, address in enumerate(recipients(record)):
        outcome = outcome_of(address, settings)
        for event, extra in [("processed", {})] + SENDGRID_EVENTS[outcome]:
            events.append(
                {
                    "email": address,
                    "timestamp": int(time.time()),
                    "event": event,
                    "sg_event_id": secrets.token_urlsafe(16),
                    "sg_message_id": f"{record['id']}.filter0001.{number}.0",
                    **extra,
                    **record["custom"],
                }
            )
    return events


def sns_headers(message):
    """The headers SNS sends with a message (its body is JSON sent as text/plain)."""
    return {
        "Content-Type": "text/plain; charset=UTF-8",
        "x-amz-sns-message-type": message["Type"],
        "x-amz-sns-message-id": message["MessageId"],
        "x-amz-sns-topic-arn": message["TopicArn"],
    }


def ses_events(record, settings):
    """``(event type, recipients, SES event)`` of one accepted message: for each outcome, in
    the order of ``SES_EVENTS``, one event listing every recipient of that outcome."""
    everyone = recipients(record)
    by_outcome = {}
    for address in everyone:
        by_outcome.setdefault(outcome_of(address, settings), []).append(address)
    return [
        (kind, addresses, ses_event(record, everyone, kind, addresses, extra))
        for outcome, addresses in by_outcome.items()
        for kind, extra in SES_EVENTS[outcome]
    ]


# Postmark's bounce and complaint records of each outcome: the RecordType, and its own fields.
POSTMARK_BOUNCES = {
    "bounce": (
        "Bounce",
        {
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message (ex: unknown user, "
            "mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Inactive": True,
        },
    ),
    "defer": (
        "Bounce",
        {
            "Type": "SoftBounce",
            "TypeCode": 4096,
            "Name": "Soft bounce/Undeliverable",
            "Description": "Unable to temporarily deliver this email.",
            "Details": "smtp;421 4.7.0 Try again later",
            "Inactive": False,
        },
    ),
    "complain": (
        "SpamComplaint",
        {
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Name": "Spam complaint",
            "Description": "The subscriber explicitly marked this email as spam.",
            "Details": "Test spam complaint details",
            "Inactive": True,
        },
    ),
}
POSTMARK_EVENTS = {
    "deliver": ["Delivery"],
    "bounce": ["bounce"],
    "defer": ["defer"],
    "complain": ["Delivery", "complain"],
    "none": [],
}


def postmark_recipient(event):
    """The address of a Postmark event: ``Email`` in bounces and complaints, else ``Recipient``."""
    return event.get("Email") or event.get("Recipient")


def postmark_events(record, settings):
    """Postmark's webhook bodies for one accepted message, one event each."""
    events = []
    for address in recipients(record):
        for kind in POSTMARK_EVENTS[outcome_of(address, settings)]:
            events.append(_postmark_event(kind, address, record))
    return events


def _postmark_event(kind, address, record):
    """One Postmark event: a Delivery, or a record of ``POSTMARK_BOUNCES``."""
    common = {
        "MessageID": record["id"],
        "MessageStream": record.get("message_stream", "outbound"),
        "ServerID": 1,
        "Tag": record.get("tag") or "",
        "Metadata": dict(record["custom"]),
    }
    if kind == "Delivery":
        delivered = {"Recipient": address, "DeliveredAt": now_iso(), "Details": "smtp;250 OK"}
        return {"RecordType": "Delivery", **common, **delivered}
    record_type, fields = POSTMARK_BOUNCES[kind]
    return {
        "RecordType": record_type,
        **common,
        "ID": secrets.randbits(52),
        **fields,
        "Email": address,
        "From": record["from"],
        "BouncedAt": now_iso(),
        "DumpAvailable": False,
        "CanActivate": True,
        "Subject": record["subject"],
    }
