"""Custom headers that a provider reads as instructions are refused (issue 19, item 5), by the
names each provider module declares in the registry."""

import pytest

from mailer.validation.mail import ValidationError, validate_mail
from providers import REGISTRY, Provider


def errors_of(data):
    """The {field: message} errors that validate_mail raises for ``data``."""
    with pytest.raises(ValidationError) as caught:
        validate_mail(data)
    return {error["field"]: error["message"] for error in caught.value.errors}


@pytest.mark.parametrize(
    "name, provider",
    [
        ("X-Mailgun-Variables", "mailgun"),
        ("X-Mailgun-Recipient-Variables", "mailgun"),
        ("X-Mailgun-Drop-Message", "mailgun"),
        ("x-mailgun-sending-ip", "mailgun"),
        ("X-MAILGUN-Anything-Later", "mailgun"),
        ("X-SMTPAPI", "sendgrid"),
        ("x-smtpapi", "sendgrid"),
        ("X-SG-ID", "sendgrid"),
        ("X-SG-EID", "sendgrid"),
    ],
)
def test_provider_control_headers_are_refused_by_name(name, provider, mail):
    errors = errors_of({**mail, "headers": {name: '{"to": ["victim@example.net"]}'}})
    assert list(errors) == [f"headers.{name}"]
    assert provider in errors[f"headers.{name}"]


def test_headers_that_merely_look_alike_still_pass(mail):
    headers = {"X-Mailgunner": "1", "X-SMTPAPI-Copy": "2", "X-SGID": "3", "List-Id": "<a.b>"}
    assert validate_mail({**mail, "headers": headers})["headers"] == headers


@pytest.fixture
def registry():
    """``providers.REGISTRY``, to change in a test: its entries and their order come back after."""
    saved = dict(REGISTRY)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(saved)


def test_each_provider_declares_its_own_control_headers(mail, registry):
    # A provider added to the registry brings its control headers with it; validation knows
    # no provider's names itself.
    class Postbox(Provider):
        name = "postbox"
        control_headers = ("X-PB-Stream",)
        control_header_prefixes = ("X-Postbox-",)

    registry["postbox"] = Postbox
    for header in ("X-PB-Stream", "x-postbox-route"):
        assert "postbox" in errors_of({**mail, "headers": {header: "x"}})[f"headers.{header}"]
    del registry["mailgun"]
    assert validate_mail({**mail, "headers": {"X-Mailgun-Variables": "{}"}})["headers"]
