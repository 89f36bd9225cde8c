"""A mail with an inline image and an attached file, submitted through the API and sent by the
worker through each of the five providers, arrives at the sandbox over real HTTP or SMTP with
the image inline under its Content-ID (issue 23), and with our Message-ID wherever the
provider lets us set it (issue 25); SES delivers its own."""

import base64
import hashlib

import pytest

pytestmark = pytest.mark.committed

PROVIDERS = ("mailgun", "sendgrid", "ses", "postmark", "smtp")
LOGO, BILL = b"\x89PNG\r\n\x1a\n logo", b"%PDF-1.4 bill"
HTML = '<p><img src="cid:logo@shop.example"> Thanks!</p>'


def post_mail(client):
    """Submit the mail with its inline logo and attached bill; its id."""
    response = client.post(
        "/mail",
        json={
            "from": "Shop <orders@shop.example>",
            "to": "ann@example.com",
            "subject": "Your order",
            "text": "Thanks!",
            "html": HTML,
            "attachments": [
                {
                    "filename": "logo.png",
                    "content_type": "image/png",
                    "content": base64.b64encode(LOGO).decode(),
                    "content_id": "logo@shop.example",
                },
                {
                    "filename": "bill.pdf",
                    "content_type": "application/pdf",
                    "content": base64.b64encode(BILL).decode(),
                },
            ],
        },
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def received_file(name, content_type, content, disposition, content_id=None):
    """A file as the sandbox records one."""
    return {
        "filename": name,
        "content_type": content_type,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "disposition": disposition,
        "content_id": content_id,
    }


BILL_RECEIVED = received_file("bill.pdf", "application/pdf", BILL, "attachment")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_inline_image_arrives_inline_with_its_content_id(client, sandbox, run_worker, provider):
    mail_id = post_mail(client)
    shown = client.get(f"/mail/{mail_id}").get_json()["attachments"]
    assert [(item["filename"], item["content_id"]) for item in shown] == [
        ("logo.png", "logo@shop.example"),
        ("bill.pdf", None),
    ]

    run_worker(PROVIDERS=provider)

    assert client.get(f"/mail/{mail_id}").get_json()["provider"] == provider
    [received] = sandbox.messages(provider)
    assert received["html"].strip() == HTML
    # Mailgun makes an inline file's name its Content-ID: the name it is sent is the id.
    name = "logo@shop.example" if provider == "mailgun" else "logo.png"
    logo = received_file(name, "image/png", LOGO, "inline", "logo@shop.example")
    assert sorted(received["attachments"], key=lambda item: item["disposition"]) == [
        BILL_RECEIVED,
        logo,
    ]


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid", "postmark", "smtp"])
def test_each_provider_that_lets_us_delivers_our_message_id(client, sandbox, run_worker, provider):
    mail_id = post_mail(client)
    run_worker(PROVIDERS=provider)
    [received] = sandbox.messages(provider)
    assert received["message_id"] == f"<{mail_id}@shop.example>"


def test_the_message_id_domain_is_a_setting(client, sandbox, run_worker):
    mail_id = post_mail(client)
    run_worker(PROVIDERS="sendgrid", MESSAGE_ID_DOMAIN="replies.example.org")
    [received] = sandbox.messages("sendgrid")
    assert received["message_id"] == f"<{mail_id}@replies.example.org>"


def test_ses_delivers_its_own_message_id_not_ours(client, sandbox, run_worker):
    mail_id = post_mail(client)
    run_worker(PROVIDERS="ses")
    [received] = sandbox.messages("ses")
    assert received["headers_in"]["Message-ID"] == f"<{mail_id}@shop.example>"  # as sent
    assert received["message_id"] == f"<{received['id']}@eu-west-1.amazonses.com>"
    shown = client.get(f"/mail/{mail_id}").get_json()
    assert shown["provider_message_id"] == received["id"]
