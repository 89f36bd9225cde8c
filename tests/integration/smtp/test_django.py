"""Django's SMTP EmailBackend (``send_mail``, ``EmailMultiAlternatives`` with an attachment and
an HTML alternative) pointed at the SMTP door: each mail arrives at the sandbox as Django wrote
it. Django is a test requirement (requirements-dev.txt), as any other client the tests use."""

import pytest
from django.conf import settings as django_settings
from django.core import mail as django_mail

from integration.smtp.door import running_door

pytestmark = pytest.mark.committed
BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@pytest.fixture
def connection(settings):
    """A Django SMTP connection to a door in protected mode (loopback, no login needed)."""
    if not django_settings.configured:
        django_settings.configure(EMAIL_BACKEND=BACKEND, DEFAULT_CHARSET="utf-8")
    with running_door(settings) as door:
        yield django_mail.get_connection(BACKEND, host=door.host, port=door.port, timeout=10)


def test_send_mail(app, client, sandbox, run_worker, connection):
    sent = django_mail.send_mail(
        "Welcome",
        "Hello from Django.",
        "Shop <shop@example.com>",
        ["ann@example.com"],
        html_message="<p>Hello from <b>Django</b>.</p>",
        connection=connection,
    )
    assert sent == 1

    run_worker(PROVIDERS="smtp")

    [mail] = client.get("/mail?source=smtp").get_json()["mails"]
    assert mail["status"] == "sent"
    [received] = sandbox.messages("smtp")
    assert received["from"] == "Shop <shop@example.com>" and received["to"] == ["ann@example.com"]
    assert received["subject"] == "Welcome"
    assert received["text"].strip() == "Hello from Django."
    assert received["html"].strip() == "<p>Hello from <b>Django</b>.</p>"


def test_email_multi_alternatives_with_an_attachment(app, client, sandbox, run_worker, connection):
    message = django_mail.EmailMultiAlternatives(
        subject="Your invoice",
        body="Your invoice is attached.",
        from_email="billing@example.com",
        to=["Ann <ann@example.com>"],
        cc=["carl@example.com"],
        bcc=["audit@example.com"],
        reply_to=["help@example.com"],
        headers={"X-Invoice": "2024-17"},
        connection=connection,
    )
    message.attach_alternative("<p>Your invoice is attached.</p>", "text/html")
    message.attach("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf")
    assert message.send() == 1

    run_worker(PROVIDERS="smtp")

    [received] = sandbox.messages("smtp")
    assert received["from"] == "billing@example.com"
    assert (received["to"], received["cc"], received["bcc"]) == (
        ["Ann <ann@example.com>"],
        ["carl@example.com"],
        ["audit@example.com"],
    )
    assert received["reply_to"] == "help@example.com"
    assert received["subject"] == "Your invoice"
    assert received["text"].strip() == "Your invoice is attached."
    assert received["html"].strip() == "<p>Your invoice is attached.</p>"
    assert received["headers_in"]["X-Invoice"] == "2024-17"
    [attachment] = received["attachments"]
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "invoice.pdf",
        "application/pdf",
        len(b"%PDF-1.4 invoice"),
    )
