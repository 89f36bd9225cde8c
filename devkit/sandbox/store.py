"""What the sandbox received, how each provider is told to behave, and the settings of its
event webhooks (``events``), behind one lock.

A behaviour is a dict per provider: ``status`` (+ optional ``body``/``content_type``,
``retry_after``, and for SES ``error``, its error type), ``hang`` and ``cut`` are the injected
fault, limited to the next ``count`` requests when ``count`` is set; ``latency_ms`` and
``reject_to`` apply to every request. ``cut`` handles the request as usual (a valid mail is
taken), then closes the connection without an answer, so the client cannot know whether it
was sent. The SMTP relay reads them in its own words, with ``stage`` and ``refuse_auth``
besides (see ``smtp``).
"""

import threading

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
    return clean


def copy_record(record: dict) -> dict:
    """Copy a message record deeply enough that callers cannot alter the store."""
    out = dict(record)
    for key in ("to", "cc", "bcc"):
        out[key] = list(record[key])
    for key in ("custom", "headers_in"):
        out[key] = dict(record[key])
    return out


class Store:
    """Messages, request log and behaviour, guarded by one lock."""

    def __init__(self, default_latency_ms, event_settings=None):
        """Start empty, with no behaviour configured (events as ``event_settings`` says)."""
        self.lock = threading.Lock()
        self.default_latency_ms = default_latency_ms
        self.event_defaults = check_settings(event_settings or {})
        self.events = dict(self.event_defaults)
        self.messages: list[dict] = []
        self.requests: list[dict] = []
        self.behaviours: dict[str, dict] = {p: {} for p in PROVIDERS}

    def take(self, provider) -> tuple[float, dict | None, str | None]:
        """Return (latency_ms, fault snapshot or None, reject_to), consuming one 'count'."""
        with self.lock:
            b = self.behaviours[provider]
            latency = b.get("latency_ms", self.default_latency_ms)
            reject_to = b.get("reject_to")
            if not any(key in b for key in FAULTS):
                return latency, None, reject_to
            count = b.get("count")
            if count is not None:
                if count <= 0:
                    return latency, None, reject_to
                b["count"] = count - 1
            return latency, dict(b), reject_to

    def record(self, provider, at, status, records) -> None:
        """Log one send request and keep the messages it created."""
        with self.lock:
            self.requests.append({"provider": provider, "at": at, "status": status})
            self.messages.extend(records)

    def reset(self) -> None:
        """Forget messages, requests and behaviour."""
        with self.lock:
            self.messages = []
            self.requests = []
            self.behaviours = {p: {} for p in PROVIDERS}
            self.events = dict(self.event_defaults)

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
