"""SES's wire format: the signed SendEmail it builds, the MIME message inside, and how it
classifies SES's answers (by the error type, since most of them are 400s)."""

import base64
import json
from email import message_from_bytes, policy

import pytest

from providers import (
    REGISTRY,
    MessageRejected,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    Sent,
)
from providers.base import Message, Provider
from providers.ses import SES
from unit.providers.wire import MAIL_ID, Answer

CONFIG = {
    "PROVIDER_TIMEOUT": 10.0,
    "SES_REGION": "eu-west-1",
    "SES_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "SES_SECRET_ACCESS_KEY": "secret",
    "SES_BASE_URL": "",
    "SES_CONFIGURATION_SET": "",
}


def message(**fields):
    """A message with every part SES must carry, ``fields`` replaced."""
    return Message(
        **{
            "id": MAIL_ID,
            "from_address": "Shop <shop@example.com>",
            "to": ["Zoë <zoe@example.com>", "bob@example.com"],
            "cc": ["carl@example.com"],
            "bcc": ["dora@example.com"],
            "reply_to": "Help <help@example.com>",
            "subject": "Your order ✓",
            "text": "Thanks, Zoë! " + "long " * 300,
            "html": "<p>Thanks!</p>",
            "headers": {"X-Campaign": "spring"},
            "tags": ["welcome", "café", "spring-2026"],
            "attachments": [
                {"filename": "bill.pdf", "content_type": "application/pdf", "content": b"%PDF\0"}
            ],
            **fields,
        }
    )


def sent_body(provider, mail):
    """The JSON body ``provider`` builds for ``mail``, and the MIME message inside it."""
    request = provider.build_request(mail)
    body = json.loads(request["data"])
    raw = base64.b64decode(body["Content"]["Raw"]["Data"])
    return request, body, message_from_bytes(raw, policy=policy.default), raw


def failure(status, body=None, headers=None):
    """The error SES's answer raises; fails the test if it raises none."""
    with pytest.raises(ProviderError) as caught:
        SES(CONFIG).read_response(Answer(status, headers or {}), body)
    return caught.value


def typed(kind):
    """The header naming an error type, as SES sends it."""
    return {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.coral/"}


def test_ses_is_registered_and_reads_its_settings():
    assert REGISTRY["ses"] is SES
    ses = SES(CONFIG)
    assert ses.base_url == "https://email.eu-west-1.amazonaws.com"
    assert ses.is_configured() and ses.missing_settings() == []
    empty = SES({**CONFIG, "SES_REGION": "", "SES_SECRET_ACCESS_KEY": ""})
    assert not empty.is_configured()
    assert empty.missing_settings() == ["SES_REGION", "SES_SECRET_ACCESS_KEY"]
    assert Provider(CONFIG).missing_settings() == []


def test_the_request_is_signed_by_sigv4_over_its_exact_body():
    request, body, _, _ = sent_body(
        SES({**CONFIG, "SES_BASE_URL": "http://127.0.0.1:9/"}), message()
    )
    assert request["url"] == "http://127.0.0.1:9/v2/email/outbound-emails"
    auth = request["headers"]["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/")
    assert "/eu-west-1/ses/aws4_request" in auth
    assert "SignedHeaders=content-type;host;x-amz-date" in auth
    assert request["headers"]["X-Amz-Date"] and isinstance(request["data"], bytes)
    assert "secret" not in json.dumps(request["headers"])


def test_destination_tags_and_configuration_set():
    ses = SES({**CONFIG, "SES_CONFIGURATION_SET": "events"})
    _, body, _, _ = sent_body(ses, message())
    assert body["FromEmailAddress"] == "shop@example.com"
    assert body["Destination"] == {
        "ToAddresses": ["zoe@example.com", "bob@example.com"],
        "CcAddresses": ["carl@example.com"],
        "BccAddresses": ["dora@example.com"],
    }
    assert body["EmailTags"] == [
        {"Name": "mail_id", "Value": MAIL_ID},
        {"Name": "tag_0", "Value": "welcome"},
        {"Name": "tag_1", "Value": "spring-2026"},
    ]
    assert body["ConfigurationSetName"] == "events"
    _, plain, _, _ = sent_body(SES(CONFIG), message(cc=[], bcc=[]))
    assert plain["Destination"] == {"ToAddresses": ["zoe@example.com", "bob@example.com"]}
    assert "ConfigurationSetName" not in plain


def test_the_mime_message_keeps_every_part():
    _, _, mime, raw = sent_body(SES(CONFIG), message())
    assert mime["From"] == "Shop <shop@example.com>"
    assert mime["To"] == "Zoë <zoe@example.com>, bob@example.com"
    assert mime["Cc"] == "carl@example.com" and mime["Bcc"] is None
    assert mime["Reply-To"] == "Help <help@example.com>"
    assert mime["Subject"] == "Your order ✓" and mime["X-Campaign"] == "spring"
    assert mime.get_body(("plain",)).get_content().startswith("Thanks, Zoë! long")
    assert mime.get_body(("html",)).get_content().strip() == "<p>Thanks!</p>"
    [attachment] = mime.iter_attachments()
    assert attachment.get_filename() == "bill.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_payload(decode=True) == b"%PDF\0"
    assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_html_only_and_text_only_mails():
    _, _, html_only, _ = sent_body(SES(CONFIG), message(text=None, attachments=[]))
    assert html_only.get_content_type() == "text/html"
    _, _, text_only, _ = sent_body(SES(CONFIG), message(html=None, attachments=[]))
    assert text_only.get_content_type() == "text/plain"


def test_tags_ses_takes():
    assert SES.tags_for(["a b", "ok", "é", "x" * 257, "x" * 256, "_-9"]) == ["ok", "x" * 256, "_-9"]
    assert SES.tags_for([f"t{n}" for n in range(12)]) == [f"t{n}" for n in range(10)]


def test_x_ses_headers_are_instructions_to_ses():
    assert SES.reads_as_instruction("X-SES-CONFIGURATION-SET")
    assert SES.reads_as_instruction("x-ses-message-tags")
    assert not SES.reads_as_instruction("X-Sesame")


def test_a_200_with_a_message_id_is_sent():
    ses = SES(CONFIG)
    result = ses.read_response(Answer(200), {"MessageId": "0100-abc-000000"})
    assert isinstance(result, Sent) and result.message_id == "0100-abc-000000"
    with pytest.raises(ProviderMisconfigured, match="SES_BASE_URL"):
        ses.read_response(Answer(200), {"ok": True})


@pytest.mark.parametrize(
    "kind, status, wanted",
    [
        ("MessageRejected", 400, MessageRejected),
        ("BadRequestException", 400, MessageRejected),
        ("AccountSuspendedException", 400, ProviderMisconfigured),
        ("SendingPausedException", 400, ProviderMisconfigured),
        ("MailFromDomainNotVerifiedException", 400, ProviderMisconfigured),
        ("NotFoundException", 404, ProviderMisconfigured),
        ("SignatureDoesNotMatch", 403, ProviderMisconfigured),
        ("UnrecognizedClientException", 403, ProviderMisconfigured),
        ("TooManyRequestsException", 429, RateLimited),
        ("LimitExceededException", 400, RateLimited),
        ("InternalFailure", 500, ProviderUnavailable),
        ("ServiceUnavailable", 503, ProviderUnavailable),
    ],
)
def test_errors_are_classified_by_their_type(kind, status, wanted):
    error = failure(status, {"message": "what SES says"}, typed(kind))
    assert type(error) is wanted
    assert error.reason.startswith(f"{kind}: what SES says")


def test_the_type_may_come_in_the_body_and_a_bare_status_still_counts():
    assert type(failure(400, {"__type": "AccountSuspendedException"})) is ProviderMisconfigured
    assert type(failure(400, {"code": "com.amazon#MessageRejected"})) is MessageRejected
    assert type(failure(403, "<html>Forbidden</html>")) is ProviderMisconfigured
    assert type(failure(429)) is RateLimited
    assert type(failure(502, "Bad gateway")) is ProviderUnavailable


def test_rate_limits_wait_as_told_or_a_minute():
    assert (
        failure(429, None, {**typed("TooManyRequestsException"), "Retry-After": "7"}).retry_after
        == 7
    )
    assert failure(400, None, typed("LimitExceededException")).retry_after == 60.0
