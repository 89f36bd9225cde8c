"""What each provider takes of a mail's tags, and the submission rule built from every
registered provider's limits (issue 19, item 15)."""

import pytest

import providers
from mailer.validation.mail import ValidationError, validate_mail
from providers import Message, Provider
from providers.base import MAX_DOMAIN
from providers.mailgun import MAX_OPTIONS_BYTES, Mailgun
from providers.sendgrid import MAX_CUSTOM_ARGS_BYTES, SendGrid

MAIL = {"from": "a@example.com", "to": "b@example.com", "subject": "Hi", "text": "Hello"}
# The Message-ID the submission counts among Mailgun's options: the longest the service could
# write, whatever MESSAGE_ID_DOMAIN a worker has.
LONGEST_MESSAGE_ID = f"<{'0' * 36}@{'x' * MAX_DOMAIN}>"


def message(**fields):
    """A message with only the required parts, plus ``fields``."""
    return Message(
        **{
            "id": "0" * 36,
            "from_address": "a@example.com",
            "to": ["b@example.com"],
            "subject": "s",
        },
        **fields,
    )


def test_mailgun_takes_the_first_three_ascii_tags_once_each_ignoring_case():
    tags = ["Café", "News", "news", "x" * 129, "x" * 128, "ünï", "b", "c"]
    assert Mailgun.tags_for(tags) == ["News", "x" * 128, "b"]
    assert Mailgun.tags_for(["é"]) == [] and Mailgun.tags_for([]) == []


def test_sendgrid_takes_ten_ascii_categories():
    tags = [f"t{i}" for i in range(9)] + ["é", "last", "over"]
    assert SendGrid.tags_for(tags) == [f"t{i}" for i in range(9)] + ["last"]


def test_mailgun_counts_every_option_it_is_sent():
    fields = Mailgun.options(
        message(reply_to="r@example.com", headers={"X-A": "1"}, tags=["t"] * 2, metadata={"k": "é"})
    )
    assert fields == [
        ("h:Message-Id", LONGEST_MESSAGE_ID),
        ("h:Reply-To", "r@example.com"),
        ("h:X-A", "1"),
        ("o:tag", "t"),
        ("v:k", "é"),
        ("v:mail_id", "0" * 36),
    ]


def test_mailgun_counts_the_message_id_it_is_sent():
    given = "<" + "0" * 36 + "@mail.example.org>"
    assert Mailgun.options(message(), given)[0] == ("h:Message-Id", given)


def test_headers_one_byte_beyond_mailgun_options_are_refused_naming_the_field():
    ours = len("v:mail_id") + 36 + len("h:Message-Id") + len(LONGEST_MESSAGE_ID)
    room = MAX_OPTIONS_BYTES - ours - len("h:X-Big")
    headers = {f"X-H{i:02d}": "x" * 990 for i in range(room // 996)}
    headers["X-Big"] = "x" * (room - sum(len(f"h:{n}") + len(v) for n, v in headers.items()))
    assert validate_mail({**MAIL, "headers": headers})["headers"] == headers
    headers["X-Big"] += "x"
    with pytest.raises(ValidationError) as caught:
        validate_mail({**MAIL, "headers": headers})
    [error] = caught.value.errors
    assert error["field"] == "headers" and caught.value.status == 400


def test_sendgrid_refuses_custom_args_beyond_its_limit():
    field, reason = SendGrid.refusal(message(metadata={"k": "x" * MAX_CUSTOM_ARGS_BYTES}))
    assert field == "metadata" and "10000" in reason
    assert SendGrid.refusal(message()) is None


def test_a_registered_provider_brings_its_own_limits(monkeypatch):
    class Tiny(Provider):
        name = "tiny"

        @classmethod
        def refusal(cls, message):
            if len(message.headers) > 1:
                return "headers", "Tiny takes one custom header"
            return None

    monkeypatch.setitem(providers.REGISTRY, "tiny", Tiny)
    assert validate_mail({**MAIL, "headers": {"X-A": "1"}})
    with pytest.raises(ValidationError) as caught:
        validate_mail({**MAIL, "headers": {"X-A": "1", "X-B": "2"}})
    assert caught.value.errors == [{"field": "headers", "message": "Tiny takes one custom header"}]
