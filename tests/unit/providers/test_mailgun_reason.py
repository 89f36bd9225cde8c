"""Mailgun's reason when its ``message`` is not a string: the answer is still classified by its
status, and the reason is text (what a mail's ``last_error`` and the attempt log store)."""

import pytest

from providers import MessageRejected, ProviderError, ProviderUnavailable
from providers.mailgun import Mailgun

MAILGUN = Mailgun(
    {
        "PROVIDER_TIMEOUT": 10.0,
        "MAILGUN_API_KEY": "key-mailgun",
        "MAILGUN_DOMAIN": "mg.example.com",
        "MAILGUN_BASE_URL": "https://api.mailgun.net",
    }
)


class Answer:
    """The parts of an HTTP answer that ``read_response`` reads."""

    def __init__(self, status_code):
        self.status_code = status_code
        self.headers = {}


def failure(status, body):
    """The error Mailgun's ``read_response`` raises for this answer."""
    with pytest.raises(ProviderError) as caught:
        MAILGUN.read_response(Answer(status), body)
    return caught.value


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"error": "not a string"}, '{"error": "not a string"}'),
        (["bad", 1], '["bad", 1]'),
        (42, "42"),
        (True, "true"),
        ({"détail": "é"}, '{"détail": "é"}'),
    ],
)
@pytest.mark.parametrize("status", [400, 404])
def test_a_message_that_is_not_a_string_becomes_its_json_text(status, message, reason):
    error = failure(status, {"message": message})
    assert type(error) is MessageRejected and error.reason == reason


def test_a_5xx_with_an_object_message_is_unavailable_with_text():
    error = failure(503, {"message": {"code": 503}})
    assert type(error) is ProviderUnavailable and error.reason == '{"code": 503}'


@pytest.mark.parametrize("body", [{"message": None}, {"message": ""}, {}])
def test_no_message_names_the_status(body):
    assert failure(400, body).reason == "HTTP 400"


def test_a_string_message_is_kept_as_it_is():
    assert failure(404, {"message": "Not Found"}).reason == "Not Found"
