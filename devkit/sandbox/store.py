"""What the sandbox received, how each provider is told to behave, and the settings of its
event webhooks (``events``), behind one lock.

A behaviour is a dict per provider: ``status`` (+ optional ``body``/``content_type``,
``retry_after``, and for SES ``error``, its error type), ``hang`` and ``cut`` are the injected
fault, limited to the next ``count`` requests when ``count`` is set; ``latency_ms`` and
``reject_to`` apply to every request. ``cut`` handles the request as usual (a valid mail is
taken), then closes the connection without an answer, so the client cannot know whether it
was sent. With ``rate`` the fault applies to that share of the requests, drawn at random (a
provider that fails now and then). The SMTP relay reads them in its own words, with ``stage``
and ``refuse_auth`` besides (see ``smtp``).

Only the newest ``keep`` messages and requests are kept (all while ``keep`` is None), so a long
run's sandbox stays small; the ``Tally`` counts every one of them all the same: the requests by
provider and status, and the mails taken by their ``mail_id`` (the service's id, which it sends
as a custom variable), so that a mail taken twice shows however long the run.
"""

import random
import threading
from collections import Counter, deque

from devkit.sandbox.events import check_settings

PROVIDERS = ("mailgun", "sendgrid", "ses", "postmark", "smtp")
FAULTS = ("status", "hang", "cut")  # the keys that make a request fail (and spend one ``count``)


def _is_number(value) -> bool:
    """True for int/float but not bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value) -> bool:
    """True for int but not bool."""
    return isinstance(value, int) and not isinstance(value, bool)


# Behaviour keys and the check each value must pass (None always means "unset").
BEHAVIOUR_CHECKS = {
    "status": lambda v: _is_int(v) and 100 <= v <= 599,
    "count": lambda v: _is_int(v) and v >= 0,
    "retry_after": lambda v: _is_number(v) and v >= 0,
    "hang": lambda v: _is_number(v) and v >= 0,
    "cut": lambda v: isinstance(v, bool),
    "latency_ms": lambda v: _is_number(v) and v >= 0,
    "body": lambda v: isinstance(v, str | bytes),
    "content_type": lambda v: isinstance(v, str) and "\n" not in v and "\r" not in v,
    "reject_to": lambda v: isinstance(v, str) and v != "",
    "error": lambda v: isinstance(v, str) and v.isidentifier(),  # SES's error type
    # The SMTP relay's (see ``smtp``): where ``status`` is answered, and a refused login.
    "stage": lambda v: v in ("mail", "rcpt", "data"),
    "refuse_auth": lambda v: isinstance(v, bool),
    "rate": lambda v: _is_number(v) and 0 <= v <= 1,  # the share of requests the fault hits
}


def check_provider(provider) -> None:
    """Raise ValueError for anything but a known provider name."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")


def validate_behaviour(behaviour: dict) -> dict:
    """Return behaviour without None values, raising ValueError on bad keys or values."""
    clean = {}
    for key, value in behaviour.items():
        if key not in BEHAVIOUR_CHECKS:
            raise ValueError(f"unknown behaviour {key!r}; known: {sorted(BEHAVIOUR_CHECKS)}")
        if value is None:
            continue
        if not BEHAVIOUR_CHECKS[key](value):
            raise ValueError(f"invalid value for {key!r}: {value!r}")
        clean[key] = value
    for key in ("body", "error"):
        if key in clean and "status" not in clean:
            raise ValueError(f"'{key}' is only sent with an injected 'status'")
    if "rate" in clean and not any(key in clean for key in FAULTS):
        raise ValueError(f"'rate' is the share of requests a fault hits: set one of {FAULTS}")
    return clean


def check_keep(keep):
    """``keep`` if it is None or a whole number >= 0, else ValueError."""
    if keep is not None and not (_is_int(keep) and keep >= 0):
        raise ValueError("keep is a whole number >= 0, or null (keep everything)")
    return keep


def copy_record(record: dict) -> dict:
    """Copy a message record deeply enough that callers cannot alter the store."""
    out = dict(record)
    for key in ("to", "cc", "bcc"):
        out[key] = list(record[key])
    for key in ("custom", "headers_in"):
        out[key] = dict(record[key])
    return out


class Tally:
    """Counts of what the sandbox took, kept whole however few records the store keeps."""

    def __init__(self):
        self.requests = Counter()  # (provider, status answered or None) -> requests
        self.accepted = 0  # messages taken
        self.mail_ids = set()  # the service's ids of the mails taken
        self.repeats = Counter()  # mail id -> times taken beyond the first

    def add(self, provider, status, records) -> None:
        """Count one request and the messages it took."""
        self.requests[provider, status] += 1
        self.accepted += len(records)
        for record in records:
            mail_id = record["custom"].get("mail_id")
            if mail_id is None:
                continue
            if mail_id in self.mail_ids:
                self.repeats[mail_id] += 1
            else:
                self.mail_ids.add(mail_id)

    def shown(self) -> dict:
        """The counts as ``GET /_sandbox/tally`` shows them."""
        requests = {}
        for (provider, status), count in sorted(self.requests.items(), key=str):
            requests.setdefault(provider, {})[str(status)] = count
        return {
            "requests": requests,
            "accepted": self.accepted,
            "mail_ids": len(self.mail_ids),
            "repeats": {mail_id: count + 1 for mail_id, count in self.repeats.items()},
        }


class Store:
    """Messages, request log, tally and behaviour, guarded by one lock."""

    def __init__(self, default_latency_ms, event_settings=None, keep=None):
        """Start empty, with no behaviour configured (events as ``event_settings`` says),
        keeping the newest ``keep`` messages and requests (None: all)."""
        self.lock = threading.Lock()
        self.default_latency_ms = default_latency_ms
        self.event_defaults = check_settings(event_settings or {})
        self.events = dict(self.event_defaults)
        self.default_keep = check_keep(keep)
        self.keep = self.default_keep
        self.messages: deque[dict] = deque(maxlen=self.keep)
        self.requests: deque[dict] = deque(maxlen=self.keep)
        self.tally = Tally()
        self.behaviours: dict[str, dict] = {p: {} for p in PROVIDERS}

    def take(self, provider) -> tuple[float, dict | None, str | None]:
        """Return (latency_ms, fault snapshot or None, reject_to), consuming one 'count'."""
        with self.lock:
            b = self.behaviours[provider]
            latency = b.get("latency_ms", self.default_latency_ms)
            reject_to = b.get("reject_to")
            if not any(key in b for key in FAULTS):
                return latency, None, reject_to
            if "rate" in b and random.random() >= b["rate"]:
                return latency, None, reject_to  # spared this time: the fault hits a share
            count = b.get("count")
            if count is not None:
                if count <= 0:
                    return latency, None, reject_to
                b["count"] = count - 1
            return latency, dict(b), reject_to

    def record(self, provider, at, status, records) -> None:
        """Log one send request, keep the messages it created, and count both."""
        with self.lock:
            self.requests.append({"provider": provider, "at": at, "status": status})
            self.messages.extend(records)
            self.tally.add(provider, status, records)

    def reset(self) -> None:
        """Forget messages, requests, the tally and behaviour; keep as at the start."""
        with self.lock:
            self.keep = self.default_keep
            self.messages = deque(maxlen=self.keep)
            self.requests = deque(maxlen=self.keep)
            self.tally = Tally()
            self.behaviours = {p: {} for p in PROVIDERS}
            self.events = dict(self.event_defaults)

    def set_keep(self, keep) -> None:
        """Keep only the newest ``keep`` messages and requests from now on (None: all)."""
        check_keep(keep)
        with self.lock:
            self.keep = keep
            self.messages = deque(self.messages, maxlen=keep)
            self.requests = deque(self.requests, maxlen=keep)

    def counted(self) -> dict:
        """The tally as ``GET /_sandbox/tally`` shows it (with the ``keep`` in force)."""
        with self.lock:
            return {**self.tally.shown(), "keep": self.keep}

    def snapshot(self, kind, provider=None) -> list[dict]:
        """The messages or requests list (records are never mutated once stored)."""
        with self.lock:
            items = list(self.messages if kind == "messages" else self.requests)
        return [i for i in items if i["provider"] == provider] if provider else items

    def configure(self, provider, behaviour: dict) -> None:
        """Merge behaviour into a provider's (a None value removes that key)."""
        check_provider(provider)
        with self.lock:
            merged = {**self.behaviours[provider], **behaviour}
            self.behaviours[provider] = validate_behaviour(merged)

    def set_behaviour(self, provider, behaviour: dict) -> None:
        """Replace a provider's behaviour entirely."""
        check_provider(provider)
        clean = validate_behaviour(behaviour)
        with self.lock:
            self.behaviours[provider] = clean

    def event_settings(self) -> dict:
        """The current settings of the event webhooks (``events.DEFAULTS`` keys)."""
        with self.lock:
            return dict(self.events)

    def configure_events(self, settings: dict) -> dict:
        """Merge ``settings`` into the event webhooks' (ValueError if bad); the result."""
        with self.lock:
            self.events = check_settings({**self.events, **settings})
            return dict(self.events)

    def behaviour(self, provider) -> dict:
        """A copy of a provider's current behaviour (JSON-friendly)."""
        check_provider(provider)
        with self.lock:
            current = dict(self.behaviours[provider])
        if isinstance(current.get("body"), bytes):
            current["body"] = current["body"].decode("utf-8", "replace")
        return current
