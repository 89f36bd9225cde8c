"""Bounce reports received as mail, applied (``mailer.queue.inbound_reports.apply_report``): a
mail goes out through the worker to the sandbox's SMTP relay, a report in RFC 3464's shape comes
back naming its Message-ID, and what the client sees follows, as for a provider's bounce."""

import pytest
from inbound_mail import inbound_of

from integration.receiver import SECRET, Receiver
from mailer.database import transaction
from mailer.inbound.reports import read_report
from mailer.queue.inbound_reports import apply_report

pytestmark = pytest.mark.committed


@pytest.fixture
def receiver():
    """The client's webhook endpoint, for the test."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, receiver):
    """Mail through the SMTP relay only, with client webhooks on."""
    return {**settings, "PROVIDERS": "smtp", "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def sent(client, sandbox, run_worker):
    """Send a mail to ann and bob through the worker and the relay; its id and the headers the
    relay received."""
    body = {
        "from": "Shop <shop@example.com>",
        "to": ["ann@example.com", "Bob <Bob@Example.com>"],
        "subject": "Your order",
        "text": "Thanks!",
    }
    response = client.post("/mail", json=body)
    assert response.status_code == 202, response.get_json()
    mail_id = response.get_json()["id"]
    run_worker()
    [received] = sandbox.messages("smtp")
    assert client.get(f"/mail/{mail_id}").get_json()["status"] == "sent"
    return mail_id, received["headers_in"]


def report(returned_headers, recipient="bob@example.com", action="failed", status="5.1.1"):
    """A Postfix-shaped delivery status notification returning a mail with those headers."""
    headers = "".join(f"{name}: {value}\n" for name, value in returned_headers.items())
    return f"""Return-Path: <>
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: shop@example.com
Date: Thu, 29 Apr 2021 23:34:45 +0200
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1.1/mx"
Message-Id: <20210429213445.B1@mx.example.com>

--B1.1/mx
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.

<{recipient}>: host mx.example.com said: 550 {status} <{recipient}>:
    Recipient address rejected: User unknown (in reply to RCPT TO command)

--B1.1/mx
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
Arrival-Date: Thu, 29 Apr 2021 23:34:40 +0200

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected:
    User unknown

--B1.1/mx
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}
--B1.1/mx--
""".encode()


def apply(app, data, keep_raw=True):
    """Read the report ``data`` as received, apply it as the app would; the recipients that
    became bounced."""
    with app.app_context(), transaction() as conn:
        found = read_report(inbound_of(data, keep_raw=keep_raw))
        return apply_report(conn, found, app.config, app.extensions["webhooks"])


def state(client, sql, mail_id):
    """What the client and the outbox show of the mail: its status, each recipient's status
    and reason, its suppressions, its events, its webhooks."""
    body = client.get(f"/mail/{mail_id}").get_json()
    return {
        "status": body["status"],
        "recipients": {r["address"]: (r["status"], r["reason"]) for r in body["recipients"]},
        "suppressed": [
            (s["address"], s["reason"])
            for s in client.get("/suppressions").get_json()["suppressions"]
        ],
        "events": [(e["provider"], e["event"], e["type"], e["recipient"]) for e in body["events"]],
        "webhooks": [
            (row["event_type"], row["recipient"])
            for row in sql(
                "SELECT event_type, payload -> 'data' ->> 'recipient' AS recipient "
                "FROM webhook_outbox WHERE email_id = :id ORDER BY id",
                id=mail_id,
            )
        ],
    }


def test_a_report_bounces_the_recipient_suppresses_it_and_tells_the_client(app, client, sql, sent):
    mail_id, headers = sent
    assert headers["Message-ID"] == f"<{mail_id}@example.com>"
    assert apply(app, report(headers)) == 1
    seen = state(client, sql, mail_id)
    assert seen["status"] == "bounced"
    reason = "5.1.1 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"
    assert seen["recipients"] == {
        "ann@example.com": ("sent", None),
        "Bob@example.com": ("bounced", reason),  # the address as the mail was sent to it
    }
    assert seen["suppressed"] == [("Bob@example.com", "bounce")]
    assert seen["events"] == [("smtp", "dsn", "bounced", "Bob@example.com")]
    assert seen["webhooks"] == [("mail.sent", None), ("mail.bounced", "Bob@example.com")]
    # The same report again (received twice, or from the parts a provider gives) is a repeat.
    assert apply(app, report(headers)) == 0
    assert apply(app, report(headers), keep_raw=False) == 0
    assert state(client, sql, mail_id) == seen


def test_a_delayed_recipient_is_left_as_it_is(app, client, sql, sent):
    mail_id, headers = sent
    before = state(client, sql, mail_id)
    assert apply(app, report(headers, action="delayed", status="4.4.1")) == 0
    assert state(client, sql, mail_id) == before


def test_a_report_of_an_address_the_mail_was_not_sent_to_changes_nothing(app, client, sql, sent):
    mail_id, headers = sent
    before = state(client, sql, mail_id)
    assert apply(app, report(headers, recipient="carl@example.com")) == 0
    assert state(client, sql, mail_id) == before


def test_a_report_of_a_mail_we_do_not_know_changes_nothing(app, client, sql, sent):
    mail_id, headers = sent
    before = state(client, sql, mail_id)
    unknown = {**headers, "Message-ID": "<00000000-0000-4000-8000-000000000000@example.com>"}
    theirs = {**headers, "Message-ID": "<20210429.B1@mail.example.org>"}
    assert apply(app, report(unknown)) == 0
    assert apply(app, report(theirs)) == 0
    assert state(client, sql, mail_id) == before
