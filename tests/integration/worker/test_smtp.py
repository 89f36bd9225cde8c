"""The SMTP relay provider through the worker: the API stores, the worker sends over STARTTLS
with AUTH to the sandbox's aiosmtpd relay (its certificate trusted through SMTP_CA_FILE), and
the relay's replies decide what becomes of the mail."""

import base64
import hashlib
import threading

import pytest
from helpers import is_due, mail_rows, wait_for

from integration.receiver import SECRET, Receiver

pytestmark = pytest.mark.committed

SMTP_ONLY = {"PROVIDERS": "smtp"}
PDF = b"%PDF-1.4 a tiny file"


def post_mail(client, **fields):
    """Submit a mail through the API and return its id."""
    body = {
        "from": "Shop <shop@example.com>",
        "to": "ann@example.com",
        "subject": "Your order",
        "text": "Thanks!",
        **fields,
    }
    response = client.post("/mail", json=body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_mail_arrives_intact(client, sandbox, run_worker):
    mail_id = post_mail(
        client,
        to=["Ann <ann@example.com>", "bob@example.com"],
        cc=["carl@example.com"],
        bcc=["dora@example.com"],
        reply_to="help@example.com",
        html="<p>Thanks!</p>",
        headers={"X-Campaign": "spring"},
        attachments=[
            {
                "filename": "bill.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(PDF).decode(),
            }
        ],
    )
    run_worker(**SMTP_ONLY)
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "smtp"
    assert body["provider_message_id"] == f"<{mail_id}@example.com>"
    assert body["result"][0]["status_code"] == 250
    [received] = sandbox.messages("smtp")
    assert received["id"] == f"<{mail_id}@example.com>"
    assert received["from"] == "Shop <shop@example.com>"
    assert received["to"] == ["Ann <ann@example.com>", "bob@example.com"]
    assert received["cc"] == ["carl@example.com"] and received["bcc"] == ["dora@example.com"]
    assert "Bcc" not in received["headers_in"]
    assert received["reply_to"] == "help@example.com" and received["subject"] == "Your order"
    assert received["text"].strip() == "Thanks!" and received["html"].strip() == "<p>Thanks!</p>"
    assert received["headers_in"]["X-Campaign"] == "spring"
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


def test_a_wrong_password_is_misconfigured_and_fails_over(client, sandbox, run_worker):
    mail_id = post_mail(client)
    run_worker(PROVIDERS="smtp,mailgun", SMTP_PASSWORD="not-the-password")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "mailgun"
    assert [(a["provider"], a["outcome"], a["status_code"]) for a in body["result"]] == [
        ("smtp", "misconfigured", 535),
        ("mailgun", "sent", 200),
    ]
    assert sandbox.messages("smtp") == []


def test_an_untrusted_certificate_is_misconfigured_and_fails_over(client, sandbox, run_worker):
    mail_id = post_mail(client)
    run_worker(PROVIDERS="smtp,mailgun", SMTP_CA_FILE="")  # the system's CAs: not the sandbox's
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["provider"] == "mailgun"
    [refused, _] = body["result"]
    assert refused["outcome"] == "misconfigured" and "certificate verify failed" in refused["error"]


def test_a_4xx_is_retried(client, sandbox, run_worker, settings):
    sandbox.configure("smtp", status=451, count=1)
    mail_id = post_mail(client)
    retries = {**SMTP_ONLY, "RETRY_BASE": 1.0, "RETRY_CAP": 1.0}
    run_worker(**retries)
    row = mail_rows(settings["DATABASE_URL"])[mail_id]
    assert row["status"] == "queued" and row["attempts"] == 1 and "451" in row["last_error"]
    wait_for(lambda: is_due(settings["DATABASE_URL"], mail_id), timeout=10, message="the retry due")
    run_worker(**retries)
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["attempts"] == 2
    assert [a["status_code"] for a in body["attempt_log"]] == [451, 250]


def test_a_5xx_at_data_fails_the_mail(client, sandbox, run_worker):
    sandbox.configure("smtp", status=554, stage="data")
    mail_id = post_mail(client)
    run_worker(PROVIDERS="smtp,mailgun")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "failed" and "DATA: 554 5.7.1 Transaction failed" in body["last_error"]
    assert [a["outcome"] for a in body["result"]] == ["rejected"]  # no other provider tried
    assert sandbox.messages() == []


def test_two_mails_share_one_connection(client, sandbox, run_worker):
    before = sandbox.smtp_connections
    ids = [post_mail(client, subject=f"Mail {n}") for n in range(2)]
    run_worker(WORKER_CONCURRENCY=1, **SMTP_ONLY)
    assert {client.get(f"/mail/{i}").get_json()["status"] for i in ids} == {"sent"}
    assert len(sandbox.messages("smtp")) == 2
    assert sandbox.smtp_connections == before + 1


@pytest.fixture
def receiver():
    """A client's webhook endpoint for the test, shut down after it."""
    server = Receiver()
    yield server
    server.stop()


def test_a_recipient_refused_at_rcpt_bounces_and_the_others_get_the_mail(
    client, sandbox, run_worker, receiver, sql
):
    sandbox.configure("smtp", reject_to="gone@")
    mail_id = post_mail(client, to=["ann@example.com", "gone@example.com"], cc=["carl@example.com"])
    thread = threading.Thread(
        target=run_worker,
        kwargs={"burst": False, "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET, **SMTP_ONLY},
        daemon=True,
    )
    thread.start()
    wait_for(lambda: "mail.bounced" in receiver.types(), timeout=20, message="mail.bounced")
    [received] = sandbox.messages("smtp")
    assert received["envelope"]["rcpt_to"] == ["ann@example.com", "carl@example.com"]
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["provider"] == "smtp" and body["result"][0]["outcome"] == "sent"
    assert body["status"] == "bounced"  # the roll-up: one recipient bounced
    reply = "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown in local table"
    recipients = {r["address"]: (r["status"], r["reason"]) for r in body["recipients"]}
    assert recipients == {
        "ann@example.com": ("sent", None),
        "carl@example.com": ("sent", None),
        "gone@example.com": ("bounced", reply),
    }
    assert sql("SELECT address, reason, detail FROM suppression") == [
        {"address": "gone@example.com", "reason": "bounce", "detail": reply}
    ]
    assert sorted(receiver.types()) == ["mail.bounced", "mail.sent"]
    [event] = body["events"]
    assert (event["provider"], event["type"], event["recipient"]) == (
        "smtp",
        "bounced",
        "gone@example.com",
    )
