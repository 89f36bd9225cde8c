"""Each provider's wire format: the request it builds, and how it classifies the answer.

``read_response`` only reads an answer's status code and headers (the body comes parsed), so a
tiny stand-in answer is enough; no HTTP and no ``requests`` internals are involved.
"""

import time

import pytest

from providers import (
    MessageRejected,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    Sent,
)
from providers.mailgun import Mailgun
from providers.sendgrid import SendGrid
from unit.providers.wire import MAIL_ID, Answer, message

CONFIG = {
    "PROVIDER_TIMEOUT": 10.0,
    "MAILGUN_API_KEY": "key-mailgun",
    "MAILGUN_DOMAIN": "mg.example.com",
    "MAILGUN_BASE_URL": "https://api.eu.mailgun.net/",  # a trailing slash is tolerated
    "SENDGRID_API_KEY": "SG.sendgrid",
    "SENDGRID_BASE_URL": "https://api.eu.sendgrid.com",
}
MAILGUN = Mailgun(CONFIG)
SENDGRID = SendGrid(CONFIG)


def full_message():
    """A message using every field, with display names and several recipients."""
    return message(
        from_address="Shop <shop@example.com>",
        to=["Ann <ann@example.com>", "bob@example.com"],
        cc=["carl@example.com"],
        bcc=["dora@example.com"],
        reply_to="Help <help@example.com>",
        text="Thanks!",
        html="<p>Thanks!</p>",
    )


def failure(provider, status, body=None, headers=None):
    """The error ``provider`` raises for an answer; fails the test if it raises none."""
    with pytest.raises(ProviderError) as caught:
        provider.read_response(Answer(status, headers or {}), body)
    return caught.value


# --- Mailgun: the request ---------------------------------------------------------------------


def test_mailgun_posts_form_fields_to_the_domain_with_basic_auth():
    request = MAILGUN.build_request(full_message())
    assert request == {
        "url": "https://api.eu.mailgun.net/v3/mg.example.com/messages",
        "auth": ("api", "key-mailgun"),
        "data": [
            ("from", "Shop <shop@example.com>"),
            ("to", "Ann <ann@example.com>"),
            ("to", "bob@example.com"),
            ("cc", "carl@example.com"),
            ("bcc", "dora@example.com"),
            ("subject", "Your order"),
            ("text", "Thanks!"),
            ("html", "<p>Thanks!</p>"),
            ("h:Message-Id", f"<{MAIL_ID}@example.com>"),
            ("h:Reply-To", "Help <help@example.com>"),
            ("v:mail_id", MAIL_ID),
        ],
    }


def test_mailgun_leaves_out_the_parts_a_message_does_not_have():
    fields = MAILGUN.build_request(message(html="<p>Hi</p>"))["data"]
    ours = ["h:Message-Id", "v:mail_id"]
    assert [name for name, _ in fields] == ["from", "to", "subject", "html", *ours]
    fields = MAILGUN.build_request(message(text="Hi"))["data"]
    assert [name for name, _ in fields] == ["from", "to", "subject", "text", *ours]


# --- Mailgun: the answer ----------------------------------------------------------------------


def test_mailgun_200_with_an_id_is_sent():
    body = {"id": "<20260101.1@mg.example.com>", "message": "Queued. Thank you."}
    assert MAILGUN.read_response(Answer(200), body) == Sent(
        "<20260101.1@mg.example.com>", 200, body
    )


@pytest.mark.parametrize("status", [400, 413, 422])
def test_mailgun_4xx_rejects_the_message_with_its_reason(status):
    body = {"message": "'to' parameter is not a valid address. please check documentation"}
    error = failure(MAILGUN, status, body)
    assert type(error) is MessageRejected and error.outcome == "rejected"
    assert error.reason == body["message"]
    assert (error.status_code, error.response) == (status, body)


def test_mailgun_4xx_without_a_reason_names_the_status():
    assert failure(MAILGUN, 400, "<html>Bad Request</html>").reason == "HTTP 400"


@pytest.mark.parametrize("status", [401, 403])
def test_mailgun_refused_credentials_are_a_misconfiguration(status):
    error = failure(MAILGUN, status, {"message": "Invalid private key"})
    assert type(error) is ProviderMisconfigured and error.outcome == "misconfigured"
    assert error.reason == "credentials refused: Invalid private key"
    assert error.status_code == status


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_mailgun_408_and_5xx_mean_unavailable(status):
    error = failure(MAILGUN, status, {"message": "Service Unavailable"})
    assert type(error) is ProviderUnavailable and error.outcome == "transient"
    assert error.reason == "Service Unavailable" and error.status_code == status


def test_mailgun_429_is_rate_limited_for_its_retry_after():
    error = failure(MAILGUN, 429, {"message": "Too many requests"}, {"Retry-After": "7"})
    assert type(error) is RateLimited and error.outcome == "rate_limited"
    assert error.retry_after == 7.0 and error.reason == "Too many requests"


def test_mailgun_429_without_a_wait_pauses_for_the_default():
    error = failure(MAILGUN, 429, {"message": "Too many requests"})
    assert type(error) is RateLimited and error.retry_after == MAILGUN.default_retry_after


def test_mailgun_redirect_is_an_unexpected_answer():
    error = failure(MAILGUN, 302, None)
    assert type(error) is ProviderUnavailable and error.reason == "unexpected answer: HTTP 302"


def test_mailgun_404_domain_not_found_is_misconfigured():
    body = {"message": "Domain not found: mg.example.com"}
    error = failure(MAILGUN, 404, body)
    assert type(error) is ProviderMisconfigured and error.outcome == "misconfigured"
    assert "'mg.example.com' not found" in error.reason
    assert "MAILGUN_BASE_URL" in error.reason
    assert (error.status_code, error.response) == (404, body)


@pytest.mark.parametrize("body", [{"message": "Not Found"}, None, "<html>404</html>"])
def test_mailgun_other_404_is_what_it_says(body):
    # Only Mailgun's own words mean a wrong region; any other 404 is a plain 4xx answer.
    error = failure(MAILGUN, 404, body)
    assert type(error) is MessageRejected and error.outcome == "rejected"


@pytest.mark.parametrize(
    "body",
    [
        {"message": "Mailgun Magnificent API"},
        "Mailgun Magnificent API",
        "<html>welcome to the proxy</html>",
        {"id": ""},
        None,
    ],
)
def test_mailgun_200_without_an_id_is_a_misconfiguration(body):
    error = failure(MAILGUN, 200, body)
    assert type(error) is ProviderMisconfigured and error.outcome == "misconfigured"
    assert "without a message id" in error.reason and "MAILGUN_BASE_URL" in error.reason
    assert (error.status_code, error.response) == (200, body)


def test_mailgun_domain_is_quoted_and_a_path_is_refused():
    config = {**CONFIG, "MAILGUN_DOMAIN": "mg.example.com?x=1"}
    assert (
        Mailgun(config)
        .build_request(message())["url"]
        .endswith("/v3/mg.example.com%3Fx%3D1/messages")
    )
    with pytest.raises(ValueError, match="MAILGUN_DOMAIN"):
        Mailgun({**CONFIG, "MAILGUN_DOMAIN": "mg.example.com/../other"})


# --- SendGrid: the request --------------------------------------------------------------------


def test_sendgrid_posts_one_personalization_as_json_with_a_bearer_key():
    request = SENDGRID.build_request(full_message())
    assert request == {
        "url": "https://api.eu.sendgrid.com/v3/mail/send",
        "headers": {"Authorization": "Bearer SG.sendgrid"},
        "json": {
            "personalizations": [
                {
                    "to": [
                        {"email": "ann@example.com", "name": "Ann"},
                        {"email": "bob@example.com"},
                    ],
                    "cc": [{"email": "carl@example.com"}],
                    "bcc": [{"email": "dora@example.com"}],
                }
            ],
            "from": {"email": "shop@example.com", "name": "Shop"},
            "subject": "Your order",
            # Plain text must come before HTML.
            "content": [
                {"type": "text/plain", "value": "Thanks!"},
                {"type": "text/html", "value": "<p>Thanks!</p>"},
            ],
            "custom_args": {"mail_id": MAIL_ID},
            "headers": {"Message-ID": f"<{MAIL_ID}@example.com>"},
            "reply_to": {"email": "help@example.com", "name": "Help"},
        },
    }


def test_sendgrid_leaves_out_the_parts_a_message_does_not_have():
    body = SENDGRID.build_request(message(html="<p>Hi</p>"))["json"]
    assert body["personalizations"] == [{"to": [{"email": "ann@example.com"}]}]
    assert body["content"] == [{"type": "text/html", "value": "<p>Hi</p>"}]
    assert "reply_to" not in body
    assert SENDGRID.build_request(message(text="Hi"))["json"]["content"] == [
        {"type": "text/plain", "value": "Hi"}
    ]


def test_sendgrid_names_each_address_once_across_to_cc_and_bcc():
    mail = message(
        to=["ann@example.com", "ANN@example.com"],
        cc=["Ann <Ann@Example.com>", "carl@example.com"],
        bcc=["carl@example.com", "dora@example.com"],
        text="Hi",
    )
    [personalization] = SENDGRID.build_request(mail)["json"]["personalizations"]
    assert personalization == {
        "to": [{"email": "ann@example.com"}],
        "cc": [{"email": "carl@example.com"}],
        "bcc": [{"email": "dora@example.com"}],
    }


# --- SendGrid: the answer ---------------------------------------------------------------------


def test_sendgrid_202_is_sent_with_the_id_from_its_header():
    answer = Answer(202, {"X-Message-Id": "4kTgm1dAQ0y0b5W1nB2f7A"})
    assert SENDGRID.read_response(answer, None) == Sent("4kTgm1dAQ0y0b5W1nB2f7A", 202, None)


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_sendgrid_4xx_rejects_the_message_with_every_reason(status):
    body = {
        "errors": [
            {
                "message": "Does not contain a valid address.",
                "field": "personalizations.0.to.0.email",
                "help": "http://sendgrid.com/docs",
            },
            {"message": "The subject is required.", "field": None},
        ]
    }
    error = failure(SENDGRID, status, body)
    assert type(error) is MessageRejected and error.outcome == "rejected"
    assert error.reason == (
        "Does not contain a valid address. (personalizations.0.to.0.email); "
        "The subject is required."
    )
    assert (error.status_code, error.response) == (status, body)


@pytest.mark.parametrize("body", [None, "Bad Request", {"errors": "nope"}, {"errors": []}])
def test_sendgrid_error_without_a_readable_reason_names_the_status(body):
    assert failure(SENDGRID, 400, body).reason == "HTTP 400"


@pytest.mark.parametrize("status", [401, 403])
def test_sendgrid_refused_credentials_are_a_misconfiguration(status):
    body = {
        "errors": [
            {
                "message": "The provided authorization grant is invalid, expired, or revoked",
                "field": None,
            }
        ]
    }
    error = failure(SENDGRID, status, body)
    assert type(error) is ProviderMisconfigured and error.outcome == "misconfigured"
    assert error.reason.startswith("credentials refused: The provided authorization grant")


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_sendgrid_408_and_5xx_mean_unavailable(status):
    error = failure(SENDGRID, status, None)
    assert type(error) is ProviderUnavailable and error.outcome == "transient"
    assert error.reason == f"HTTP {status}" and error.status_code == status


def test_sendgrid_429_waits_until_x_ratelimit_reset():
    headers = {"X-RateLimit-Reset": str(int(time.time()) + 40)}
    error = failure(SENDGRID, 429, {"errors": [{"message": "too many requests"}]}, headers)
    assert type(error) is RateLimited and error.outcome == "rate_limited"
    assert error.retry_after == pytest.approx(40, abs=2)
    assert error.reason == "too many requests"


def test_sendgrid_202_without_a_message_id_is_a_misconfiguration():
    error = failure(SENDGRID, 202, None)
    assert type(error) is ProviderMisconfigured and "SENDGRID_BASE_URL" in error.reason
