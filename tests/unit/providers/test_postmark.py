"""Postmark's wire format: the JSON body it is sent, how its answers are classified by their
ErrorCode, and what it takes of a mail's tags and metadata (issue 20, item 1)."""

import base64

import pytest

from mailer.validation.mail import ValidationError, validate_mail
from providers import (
    REGISTRY,
    Message,
    MessageRejected,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    Sent,
)
from providers.postmark import Postmark
from unit.providers.wire import MAIL_ID, Answer, message

CONFIG = {
    "PROVIDER_TIMEOUT": 10.0,
    "POSTMARK_SERVER_TOKEN": "pm-token",
    "POSTMARK_BASE_URL": "https://api.postmarkapp.com/",
    "POSTMARK_MESSAGE_STREAM": "outbound",
}
POSTMARK = Postmark(CONFIG)
MAIL = {"from": "a@example.com", "to": "b@example.com", "subject": "Hi", "text": "Hello"}


def failure(status, body=None, headers=None):
    """The error Postmark's answer raises; fails the test if it raises none."""
    with pytest.raises(ProviderError) as caught:
        POSTMARK.read_response(Answer(status, headers or {}), body)
    return caught.value


def test_the_body_carries_every_part_of_the_mail():
    request = POSTMARK.build_request(
        message(
            from_address="Shop <shop@example.com>",
            to=["Ann <ann@example.com>", "bob@example.com"],
            cc=["carl@example.com"],
            bcc=["dora@example.com", "eve@example.com"],
            reply_to="Help <help@example.com>",
            text="Thanks!",
            html="<p>Thanks!</p>",
            headers={"X-Campaign": "spring"},
            tags=["welcome", "second"],
            metadata={"user": "42"},
            attachments=[{"filename": "a.pdf", "content_type": "application/pdf", "content": b"%"}],
        )
    )
    assert request["url"] == "https://api.postmarkapp.com/email"
    assert request["headers"]["X-Postmark-Server-Token"] == "pm-token"
    assert request["json"] == {
        "From": "Shop <shop@example.com>",
        "To": "Ann <ann@example.com>, bob@example.com",
        "Cc": "carl@example.com",
        "Bcc": "dora@example.com, eve@example.com",
        "Subject": "Your order",
        "TextBody": "Thanks!",
        "HtmlBody": "<p>Thanks!</p>",
        "ReplyTo": "Help <help@example.com>",
        "Headers": [
            {"Name": "Message-ID", "Value": f"<{MAIL_ID}@example.com>"},
            {"Name": "X-Campaign", "Value": "spring"},
        ],
        "Tag": "welcome",
        "Metadata": {"user": "42", "mail_id": MAIL_ID},
        "Attachments": [
            {
                "Name": "a.pdf",
                "Content": base64.b64encode(b"%").decode(),
                "ContentType": "application/pdf",
            }
        ],
        "MessageStream": "outbound",
    }


def test_parts_a_mail_does_not_have_are_left_out():
    body = POSTMARK.build_request(message(text="t"))["json"]
    assert set(body) == {
        "From",
        "To",
        "Subject",
        "TextBody",
        "Headers",
        "Metadata",
        "MessageStream",
    }
    assert body["Headers"] == [{"Name": "Message-ID", "Value": f"<{MAIL_ID}@example.com>"}]


def test_the_message_stream_is_a_setting():
    postmark = Postmark({**CONFIG, "POSTMARK_MESSAGE_STREAM": "receipts"})
    assert postmark.build_request(message(text="t"))["json"]["MessageStream"] == "receipts"


def test_error_code_zero_is_sent_with_its_message_id():
    body = {"To": "ann@example.com", "MessageID": "b7bc2f4a", "ErrorCode": 0, "Message": "OK"}
    sent = POSTMARK.read_response(Answer(200), body)
    assert isinstance(sent, Sent) and sent.message_id == "b7bc2f4a"


def test_a_200_without_a_message_id_is_not_postmark():
    assert isinstance(failure(200, {"hello": "proxy"}), ProviderMisconfigured)


@pytest.mark.parametrize(
    "code, message",
    [
        (300, "Invalid 'To' address: 'nobody'."),
        (406, "You tried to send to recipient(s) that have been marked as inactive."),
        (411, "Forbidden attachment type"),
    ],
)
def test_bad_or_inactive_recipients_and_bad_messages_are_rejected(code, message):
    error = failure(422, {"ErrorCode": code, "Message": message})
    assert type(error) is MessageRejected
    assert error.reason == f"ErrorCode {code}: {message}"


@pytest.mark.parametrize(
    "status, code", [(401, 10), (422, 400), (422, 401), (422, 405), (422, 412), (422, 413)]
)
def test_token_sender_and_account_errors_are_misconfigured(status, code):
    error = failure(status, {"ErrorCode": code, "Message": "no"})
    assert type(error) is ProviderMisconfigured
    assert f"ErrorCode {code}: no" in error.reason


def test_a_missing_message_stream_names_the_setting():
    body = {"ErrorCode": 1235, "Message": "The 'MessageStream' provided does not exist."}
    assert "POSTMARK_MESSAGE_STREAM" in failure(422, body).reason


def test_429_is_rate_limited_as_status_or_as_error_code():
    assert failure(429, {"ErrorCode": 429}, {"Retry-After": "7"}).retry_after == 7.0
    error = failure(422, {"ErrorCode": 429, "Message": "Rate limit exceeded"})
    assert isinstance(error, RateLimited) and error.retry_after == POSTMARK.default_retry_after


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_transient_whatever_its_body_says(status):
    error = failure(status, {"ErrorCode": 406, "Message": "?"})
    assert type(error) is ProviderUnavailable


def test_maintenance_is_transient():
    assert type(failure(422, {"ErrorCode": 100, "Message": "Maintenance"})) is ProviderUnavailable


def test_an_unknown_error_code_goes_by_the_status():
    assert type(failure(422, {"ErrorCode": 9999, "Message": "new"})) is MessageRejected


def test_one_tag_the_first_that_fits():
    assert Postmark.tags_for(["x" * 1001, "Café", "b"]) == ["Café"]
    assert Postmark.tags_for([]) == []


def test_the_token_is_the_one_setting_it_needs():
    assert POSTMARK.is_configured() and POSTMARK.missing_settings() == []
    empty = Postmark({**CONFIG, "POSTMARK_SERVER_TOKEN": ""})
    assert not empty.is_configured()
    assert empty.missing_settings() == ["POSTMARK_SERVER_TOKEN"]
    assert "postmark" in REGISTRY


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(10)},
        {"a_rather_long_key_name": "v"},
        {"note": "x" * 81},
        {"MAIL_ID": "mine"},
    ],
)
def test_metadata_beyond_postmarks_limits_is_taken_and_kept_whole(metadata):
    """Postmark's limits do not restrict what a client may give: the mail keeps it all."""
    assert validate_mail({**MAIL, "metadata": metadata})["metadata"] == metadata


def test_postmark_is_sent_the_mail_id_and_the_metadata_that_fits():
    metadata = {
        "a_rather_long_key_name": "v",
        "note": "x" * 81,
        "MAIL_ID": "mine",
        **{f"k{i}": str(i) for i in range(7)},
    }
    message = Message(
        id="m-1",
        from_address="a@example.com",
        to=["b@example.net"],
        subject="s",
        text="t",
        metadata=metadata,
    )
    sent = POSTMARK.build_request(message)["json"]["Metadata"]
    assert sent == {"mail_id": "m-1", **{f"k{i}": str(i) for i in range(7)}}


@pytest.mark.parametrize("name", ["X-PM-Message-Stream", "x-pm-tag", "X-PM-Metadata-user"])
def test_postmark_instruction_headers_are_refused(name):
    with pytest.raises(ValidationError) as caught:
        validate_mail({**MAIL, "headers": {name: "broadcasts"}})
    [error] = caught.value.errors
    assert error["field"] == f"headers.{name}" and "postmark" in error["message"]


def test_postmark_is_sent_ten_metadata_fields_at_most_the_mail_id_first():
    metadata = {f"k{i}": str(i) for i in range(10)}
    message = Message(
        id="m-1",
        from_address="a@example.com",
        to=["b@example.net"],
        subject="s",
        text="t",
        metadata=metadata,
    )
    sent = POSTMARK.build_request(message)["json"]["Metadata"]
    assert sent == {"mail_id": "m-1", **{f"k{i}": str(i) for i in range(9)}}
