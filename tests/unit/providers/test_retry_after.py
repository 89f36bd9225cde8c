"""How long a 429 asks us to wait: Retry-After (seconds or HTTP date), else X-RateLimit-Reset."""

import time
from email.utils import formatdate

import pytest

from providers.base import MAX_RETRY_AFTER, RateLimited, retry_after_seconds
from providers.mailgun import Mailgun

SLACK = 2.0  # seconds: the clock moves between building the header and reading it


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 30 ", 30.0),
    ],
)
def test_retry_after_in_seconds(value, seconds):
    assert retry_after_seconds({"Retry-After": value}) == seconds


def test_retry_after_as_an_http_date():
    value = formatdate(time.time() + 90, usegmt=True)  # "Wed, 01 Jan 2026 12:01:30 GMT"
    assert retry_after_seconds({"Retry-After": value}) == pytest.approx(90, abs=SLACK)


def test_x_ratelimit_reset_is_an_epoch_time():
    reset = str(int(time.time()) + 30)
    assert retry_after_seconds({"X-RateLimit-Reset": reset}) == pytest.approx(30, abs=SLACK)


def test_retry_after_wins_over_x_ratelimit_reset():
    headers = {"Retry-After": "5", "X-RateLimit-Reset": str(int(time.time()) + 300)}
    assert retry_after_seconds(headers) == 5.0


def test_unreadable_retry_after_falls_back_to_x_ratelimit_reset():
    headers = {"Retry-After": "soon", "X-RateLimit-Reset": str(int(time.time()) + 30)}
    assert retry_after_seconds(headers) == pytest.approx(30, abs=SLACK)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Retry-After": ""},
        {"Retry-After": "soon"},
        {"Retry-After": "Someday, 99 Foo 20xx"},
        {"X-RateLimit-Reset": "tomorrow"},
        {"Retry-After": "soon", "X-RateLimit-Reset": "tomorrow"},
    ],
    ids=["none", "empty", "word", "bad-date", "bad-reset", "both-bad"],
)
def test_garbage_means_the_provider_did_not_say(headers):
    assert retry_after_seconds(headers) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "-5"},
        {"Retry-After": formatdate(time.time() - 3600, usegmt=True)},
        {"X-RateLimit-Reset": str(int(time.time()) - 3600)},
    ],
    ids=["negative-seconds", "past-date", "past-reset"],
)
def test_a_moment_in_the_past_means_no_wait(headers):
    assert retry_after_seconds(headers) == 0.0


class TooMany:
    """A 429 answer with the given headers, as ``read_response`` reads it."""

    status_code = 429

    def __init__(self, headers):
        self.headers = headers


MAILGUN = Mailgun(
    {
        "PROVIDER_TIMEOUT": 1.0,
        "MAILGUN_API_KEY": "k",
        "MAILGUN_DOMAIN": "d",
        "MAILGUN_BASE_URL": "https://api.mailgun.net",
    }
)


@pytest.mark.parametrize(
    "headers, wait",
    [
        ({"Retry-After": "0"}, 0.0),  # "now" is an answer, not a missing one
        ({}, 60.0),  # no header: the provider's default
        ({"Retry-After": "inf"}, 60.0),  # nonsense: the default, not an overflow
        ({"Retry-After": "1e12"}, MAX_RETRY_AFTER),  # capped
    ],
)
def test_the_pause_a_429_imposes(headers, wait):
    with pytest.raises(RateLimited) as caught:
        MAILGUN.read_response(TooMany(headers), None)
    assert caught.value.retry_after == wait
