"""Log lines: the JSON formatter, the context fields and the masking of secrets."""

import json
import logging
import re
import sys

import pytest

from mailer.config import load_config
from mailer.telemetry import logs

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def record(message="mail %s sent", args=("m-1",), exc_info=None, **extra):
    """A log record as a logging call makes it, with ``extra`` attributes."""
    made = logging.LogRecord(
        "mail_service.worker", logging.INFO, __file__, 1, message, args, exc_info
    )
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def formatted(made):
    """``made`` through the context filter and the JSON formatter, parsed back."""
    logs.ContextFilter().filter(made)
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    return json.loads(line)


def test_a_json_line_has_time_in_utc_level_logger_message_and_the_context():
    entry = formatted(record(mail_id="m-1", provider="mailgun", worker="host:1:abc"))
    assert ISO_UTC.match(entry.pop("time"))
    assert entry == {
        "level": "INFO",
        "logger": "mail_service.worker",
        "message": "mail m-1 sent",
        "mail_id": "m-1",
        "worker": "host:1:abc",
        "provider": "mailgun",
    }


def test_an_exception_is_one_field_of_the_one_line():
    try:
        raise RuntimeError("boom\non two lines")
    except RuntimeError:
        entry = formatted(record(exc_info=sys.exc_info()))
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom\non two lines" in entry["exception"]


def test_context_fills_what_a_line_does_not_set_itself():
    logs.bind_process(worker="w-1")
    try:
        with logs.context(mail_id="m-2", provider="sendgrid"):
            with logs.context(provider="mailgun"):
                inner = formatted(record())
            explicit = formatted(record(provider="explicit"))
        outside = formatted(record())
    finally:
        logs._process.clear()
    assert (inner["mail_id"], inner["provider"], inner["worker"]) == ("m-2", "mailgun", "w-1")
    assert explicit["provider"] == "explicit"
    assert "mail_id" not in outside and outside["worker"] == "w-1"


def test_only_the_listed_fields_are_written_never_other_attributes():
    entry = formatted(record(headers={"Authorization": "Basic c2VjcmV0"}, url="https://x/?k=1"))
    assert set(entry) == {"time", "level", "logger", "message"}


@pytest.mark.parametrize(
    "text, secret",
    [
        ("could not connect to postgresql://mail:hunter2@db/mail", "hunter2"),
        ("GET https://hooks.example.com/in?api_key=abc123&x=1 failed", "abc123"),
        ("posting to https://h.example.com/cb?token=t0k3n", "t0k3n"),
        ("headers {'Authorization': 'Basic a2V5LXNlY3JldA=='}", "a2V5LXNlY3JldA=="),
        ("Authorization: Bearer SG.secret-key", "SG.secret-key"),
        ("sent with bearer sk_live_42", "sk_live_42"),
    ],
)
def test_secrets_are_masked_in_messages(text, secret):
    assert secret not in logs.redact(text)
    assert "***" in logs.redact(text)
    entry = formatted(record(message="%s", args=(text,)))
    assert secret not in entry["message"]


def test_plain_text_is_left_alone():
    text = "mail 1b2c sent via mailgun (message id <20260101.1@mg.example.com>); key rotation"
    assert logs.redact(text) == text


def test_origin_keeps_only_scheme_host_and_port():
    assert (
        logs.origin("https://user:pw@hooks.example.com:8443/T0/secret?token=x")
        == "https://hooks.example.com:8443"
    )


def test_the_text_format_is_the_readable_line():
    line = logs.TextFormatter().format(
        record(message="mail %s via %s", args=("m-3", "https://a/?key=zz"))
    )
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO mail_service\.worker: "
        r"mail m-3 via https://a/\?key=\*\*\*$",
        line,
    )


def test_log_format_is_text_or_json():
    assert load_config(environ={})["LOG_FORMAT"] == "text"
    assert load_config(environ={"LOG_FORMAT": "json"})["LOG_FORMAT"] == "json"
    with pytest.raises(ValueError, match="setting LOG_FORMAT: 'yaml' is not one of text, json"):
        load_config(environ={"LOG_FORMAT": "yaml"})
