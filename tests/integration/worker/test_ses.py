"""Through SES end to end: the API stores, the worker signs and sends, the sandbox checks the
SigV4 signature with the same credentials, parses the raw MIME message and answers as SES."""

import base64
import hashlib

import pytest
from helpers import sample_mail

PDF = b"%PDF-1.4 not really\0\xff"


def post_mail(client, **fields):
    """Submit a mail through the API and return its id."""
    response = client.post("/mail", json=sample_mail(**fields))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_mail_arrives_at_ses_whole(client, sandbox, run_worker):
    mail_id = post_mail(
        client,
        **{"from": "Shop <shop@example.com>"},
        to=["Zoë <zoe@example.com>"],
        cc=["carl@example.com"],
        bcc=["dora@example.com"],
        reply_to="Help <help@example.com>",
        subject="Your order ✓",
        text="Thanks, Zoë!",
        html="<p>Thanks!</p>",
        headers={"X-Campaign": "spring"},
        tags=["welcome", "café"],
        attachments=[
            {
                "filename": "bill.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(PDF).decode(),
            }
        ],
    )
    run_worker(PROVIDERS="ses")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "ses"
    [received] = sandbox.messages("ses")
    assert body["provider_message_id"] == received["id"]
    assert received["from"] == "Shop <shop@example.com>"
    assert received["to_header"] == "Zoë <zoe@example.com>"
    assert (received["to"], received["cc"], received["bcc"]) == (
        ["zoe@example.com"],
        ["carl@example.com"],
        ["dora@example.com"],
    )
    assert received["reply_to"] == "Help <help@example.com>"
    assert received["subject"] == "Your order ✓"
    assert received["text"].rstrip("\n") == "Thanks, Zoë!"
    assert received["html"].rstrip("\n") == "<p>Thanks!</p>"
    # Sent with our Message-ID, which SES replaces with its own.
    assert received["headers_in"] == {
        "Message-ID": f"<{mail_id}@example.com>",
        "X-Campaign": "spring",
    }
    assert received["message_id"] == f"<{received['id']}@eu-west-1.amazonses.com>"
    assert received["custom"] == {"mail_id": mail_id, "tag_0": "welcome"}
    assert received["attachments"] == [
        {
            "filename": "bill.pdf",
            "content_type": "application/pdf",
            "size": len(PDF),
            "sha256": hashlib.sha256(PDF).hexdigest(),
            "disposition": "attachment",
            "content_id": None,
        }
    ]


def test_a_wrong_secret_is_refused_by_the_signature_check_and_fails_over(
    client, sandbox, run_worker
):
    mail_id = post_mail(client)
    run_worker(PROVIDERS="ses,mailgun", SES_SECRET_ACCESS_KEY="not-the-secret")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "mailgun"
    first = body["result"][0]
    assert first["outcome"] == "misconfigured" and first["status_code"] == 403
    assert first["error"].startswith("SignatureDoesNotMatch: The request signature")
    assert sandbox.messages("ses") == []
    assert [request["status"] for request in sandbox.requests("ses")] == [403]


def test_another_access_key_is_unrecognized(client, sandbox, run_worker):
    mail_id = post_mail(client)
    run_worker(PROVIDERS="ses,sendgrid", SES_ACCESS_KEY_ID="AKIAOTHER")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["provider"] == "sendgrid"
    assert body["result"][0]["error"].startswith("UnrecognizedClientException")


@pytest.mark.parametrize(
    "behaviour, outcome",
    [
        ({"status": 400, "error": "AccountSuspendedException"}, "misconfigured"),
        ({"status": 400, "error": "SendingPausedException"}, "misconfigured"),
        ({"status": 400, "error": "MailFromDomainNotVerifiedException"}, "misconfigured"),
        ({"status": 429, "retry_after": 30}, "rate_limited"),
        ({"status": 400, "error": "LimitExceededException"}, "rate_limited"),
        ({"status": 500}, "transient"),
        ({"status": 503}, "transient"),
        ({"hang": 5}, "unknown"),
    ],
)
def test_each_ses_failure_fails_over_as_classified(client, sandbox, run_worker, behaviour, outcome):
    sandbox.configure("ses", count=1, **behaviour)
    mail_id = post_mail(client)
    run_worker(PROVIDERS="ses,mailgun", PROVIDER_TIMEOUT=0.5)
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "mailgun"
    assert body["result"][0]["outcome"] == outcome


def test_message_rejected_fails_the_mail_without_trying_another(client, sandbox, run_worker):
    sandbox.configure("ses", reject_to="nobody@")
    mail_id = post_mail(client, to="nobody@example.com")
    run_worker(PROVIDERS="ses,mailgun")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "failed"
    assert body["last_error"].startswith("MessageRejected: ")
    assert sandbox.messages() == []
