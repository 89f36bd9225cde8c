"""Mail through Postmark in the sandbox, over real HTTP: what arrives, and how each of its
answers is classified by the worker (issue 20, item 1)."""

import base64
import hashlib
import json

import pytest
from helpers import sample_mail

PDF = b"%PDF-1.4 tiny"


def post_mail(client, **fields):
    """Submit a mail through the API and return its id."""
    response = client.post("/mail", json=sample_mail(**fields))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_mail_arrives_at_postmark_intact(client, sandbox, run_worker):
    mail_id = post_mail(
        client,
        to=["Ann <ann@example.com>", "bob@example.com"],
        cc=["carl@example.com"],
        bcc=["dora@example.com"],
        reply_to="Help <help@example.com>",
        html="<p>Hi</p>",
        headers={"X-Campaign": "spring"},
        tags=["welcome", "second"],
        metadata={"user": "42"},
        attachments=[
            {
                "filename": "a.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(PDF).decode(),
            }
        ],
    )
    run_worker(PROVIDERS="postmark")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "postmark"
    [received] = sandbox.messages("postmark")
    assert body["provider_message_id"] == received["id"]
    assert received["to"] == ["Ann <ann@example.com>", "bob@example.com"]
    assert (received["cc"], received["bcc"]) == (["carl@example.com"], ["dora@example.com"])
    assert received["reply_to"] == "Help <help@example.com>"
    assert (received["subject"], received["text"], received["html"]) == (
        "Hello",
        "Plain body",
        "<p>Hi</p>",
    )
    assert received["headers_in"] == {
        "Message-ID": f"<{mail_id}@example.com>",
        "X-Campaign": "spring",
    }
    assert received["tag"] == "welcome"
    assert received["custom"] == {"user": "42", "mail_id": mail_id}
    assert received["message_stream"] == "outbound"
    assert received["attachments"] == [
        {
            "filename": "a.pdf",
            "content_type": "application/pdf",
            "size": len(PDF),
            "sha256": hashlib.sha256(PDF).hexdigest(),
            "disposition": "attachment",
            "content_id": None,
        }
    ]


def test_an_inactive_recipient_fails_the_mail_without_failover(client, sandbox, run_worker):
    sandbox.configure("postmark", reject_to="gone")
    mail_id = post_mail(client, to="gone@example.com")
    run_worker(PROVIDERS="postmark,mailgun")
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "failed"
    assert "ErrorCode 406" in body["last_error"] and "inactive" in body["last_error"]
    assert [answer["outcome"] for answer in body["result"]] == ["rejected"]
    assert sandbox.messages() == []


def postmark_error(code, message):
    """An injected 422 with Postmark's error body."""
    return {
        "status": 422,
        "body": json.dumps({"ErrorCode": code, "Message": message}),
        "content_type": "application/json",
    }


@pytest.mark.parametrize(
    "behaviour, overrides, outcome, status",
    [
        ({}, {"POSTMARK_SERVER_TOKEN": "wrong-token"}, "misconfigured", 401),
        (postmark_error(401, "Sender signature not confirmed"), {}, "misconfigured", 422),
        (postmark_error(405, "Not allowed to send"), {}, "misconfigured", 422),
        ({"status": 429, "retry_after": 30}, {}, "rate_limited", 429),
        (postmark_error(429, "Rate limit exceeded"), {}, "rate_limited", 422),
        ({"status": 503}, {}, "transient", 503),
    ],
)
def test_each_classification_fails_over_to_the_next_provider(
    client, sandbox, run_worker, behaviour, overrides, outcome, status
):
    sandbox.set_behaviour("postmark", behaviour)
    mail_id = post_mail(client)
    run_worker(PROVIDERS="postmark,mailgun", **overrides)
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "mailgun"
    first, second = body["result"]
    assert (first["outcome"], first["status_code"]) == (outcome, status)
    assert second["outcome"] == "sent"
    assert sandbox.messages("postmark") == []
    [received] = sandbox.messages("mailgun")
    assert received["custom"] == {"mail_id": mail_id}
