"""Log lines: human-readable by default, one JSON object per line with ``LOG_FORMAT=json``.

Each process sets up logging once, with ``configure(LOG_FORMAT, level)``: the worker
(mail_service.py), the development server (app.py) and gunicorn (``GunicornLogger``, named in
gunicorn.conf.py, which formats gunicorn's own lines too). Everything goes to stderr.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then
``mail_id``, ``worker`` and ``provider`` when they apply, and ``exception`` (the traceback) when
there is one. The three context fields reach a line in one of three ways, the first winning:

- ``extra={"mail_id": ..., "provider": ...}`` on the logging call;
- ``with context(mail_id=...)``: every line logged in the block on this thread (a contextvar;
  the worker wraps each send in one, so the breaker's lines about that send carry the mail);
- ``bind_process(worker=...)``: every line of the process (the worker's name).

Secrets: the JSON line holds only the fields above (never a record's other attributes, such as
a request's headers), and ``redact`` masks a password in a URL, a key or token in a query
string and the credentials of an ``Authorization`` header or ``Bearer`` token, in messages and
tracebacks of both formats. That is a safety net: the code itself never logs a key.
"""

import contextvars
import json
import logging
import re
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from gunicorn.glogging import Logger as BaseGunicornLogger

from mailer.config import CHOICES, load_config

FORMATS = CHOICES["LOG_FORMAT"]  # text, json
FIELDS = ("mail_id", "worker", "provider")  # the context a line may carry, in this order
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

SECRETS = (
    # postgresql://mail:password@host/mail
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
    # ?api_key=...&token=...&signature=...
    (
        re.compile(
            r"(?i)([?&;][\w.-]*(?:key|token|secret|passw(?:or)?d|signature|sig)[\w.-]*=)"
            r"[^&;\s'\"]+"
        ),
        r"\1***",
    ),
    # Authorization: Basic ..., 'Authorization': 'Bearer ...', Bearer ...
    (
        re.compile(
            r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:(?:basic|bearer|token)\s+)?)"
            r"[^\s'\",}]+"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)(\bbearer\s+)[\w.~+/=-]+"), r"\1***"),
)

_context = contextvars.ContextVar("log_context", default=None)
_process = {}


def redact(text):
    """``text`` with credentials in URLs, query strings and authorization headers masked."""
    if not may_hold_secret(text):
        return text
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


def may_hold_secret(text):
    """Whether ``text`` has what some pattern of ``SECRETS`` needs: "://", "=", "authorization"
    or "bearer" (in any case).

    Most lines have none (the worker logs one per mail), and these tests cost a tenth of the
    four regular expressions. Text that is not all ASCII always goes through them: a letter
    such as the Kelvin sign matches "k" when the case is ignored.
    """
    if not text.isascii() or "://" in text or "=" in text:
        return True
    lowered = text.lower()
    return "authorization" in lowered or "bearer" in lowered


def origin(url):
    """Only the scheme, host and port of ``url``: a webhook's path or query may hold its key."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


class context:  # noqa: N801 (used as a function: ``with context(mail_id=...)``)
    """Every line logged in the block (on this thread) carries ``fields``.

    A class rather than a generator: the worker enters one per send, and a generator's
    context manager costs twice as much."""

    __slots__ = ("fields", "token")

    def __init__(self, **fields):
        self.fields = fields

    def __enter__(self):
        outer = _context.get()
        self.token = _context.set({**outer, **self.fields} if outer else self.fields)

    def __exit__(self, *_exc_info):
        _context.reset(self.token)


def bind_process(**fields):
    """Every line of this process carries ``fields`` (unless a line sets its own)."""
    _process.update(fields)


class ContextFilter(logging.Filter):
    """Adds the fields of ``context`` and ``bind_process`` to each record that lacks them."""

    def filter(self, record):
        """Fill in the context fields; never drops a record."""
        for source in (_context.get() or {}, _process):
            for name, value in source.items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The human-readable line (``TEXT_FORMAT``), secrets masked."""

    def __init__(self, fmt=TEXT_FORMAT, datefmt=None):
        super().__init__(fmt, datefmt)
        self._second = None  # the whole second whose time text is ``_stamp``
        self._stamp = ""

    def format(self, record):
        """The usual line, with ``redact`` applied to it (and to its traceback)."""
        return redact(super().format(record))

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        """``logging``'s time text, its date and time worked out once a second: the worker
        logs a line per mail, many in the same second."""
        second = int(record.created)
        if second != self._second:
            moment = self.converter(record.created)
            self._stamp = time.strftime(datefmt or self.default_time_format, moment)
            self._second = second
        if datefmt:
            return self._stamp
        return self.default_msec_format % (self._stamp, record.msecs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exception."""

    def format(self, record):
        """The record as a single line of JSON (newlines in a message or traceback escaped)."""
        entry = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str)


def utc_time(created):
    """A record's time as ISO 8601 in UTC with milliseconds: 2026-01-31T12:00:00.123Z."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def formatter(log_format):
    """The formatter of ``LOG_FORMAT`` (``text`` or ``json``); ValueError for another value."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"setting LOG_FORMAT: {log_format!r} is not one of {', '.join(FORMATS)}")


def configure(log_format, level="INFO"):
    """Send every logger's lines to stderr in ``log_format``, from ``level`` up.

    Replaces the handler a previous call installed (so a process may start in ``text`` and
    switch once its settings are read), and leaves any other handler alone.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    handler.mail_service = True
    root = logging.getLogger()
    for old in [old for old in root.handlers if getattr(old, "mail_service", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


def skip_unshown_fields():
    """Stop ``logging`` from filling in the fields of a record that neither format shows.

    Where the call was made (a walk up the stack for ``pathname``, ``lineno`` and ``funcName``),
    the thread's name and the multiprocessing process's name are work done for every line, and
    the worker logs a line per mail (the "Optimization" section of Python's logging HOWTO names
    these switches; a ``stack_info=True`` then shows no stack). Process-wide: only for a
    process whose every line goes through ``configure``'s formats (the worker; gunicorn's own
    format shows the pid, which stays).
    """
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None


class GunicornLogger(BaseGunicornLogger):
    """gunicorn's logger (``logger_class`` in gunicorn.conf.py), following ``LOG_FORMAT``.

    gunicorn formats its own lines ("Booting worker", "Worker exiting") with handlers of its
    own; with ``LOG_FORMAT=json`` they get the JSON formatter too. The app's loggers go to
    stderr in the same format at gunicorn's ``loglevel``.
    """

    def setup(self, cfg):
        """gunicorn's set-up (also run on a reload), then the format of LOG_FORMAT."""
        super().setup(cfg)
        log_format = configured_format()
        configure(log_format, self.loglevel)
        if log_format == "json":
            for logger in (self.error_log, self.access_log):
                for handler in logger.handlers:
                    handler.setFormatter(JsonFormatter())
                    handler.addFilter(ContextFilter())


def configured_format():
    """``LOG_FORMAT`` from the settings; ``text`` when they cannot be read (wsgi.py says why)."""
    try:
        return load_config()["LOG_FORMAT"]
    except ValueError:
        return "text"
