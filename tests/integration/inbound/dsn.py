"""Helpers of the bounce-report tests: a mail sent through the ``smtp`` relay to two
recipients, the relay's RFC 3464 report for one of them, the SMTP door as the MX of the
inbound domain delivering it, and what the client sees of the mail."""

import contextlib

from integration.inbound.posts import INBOUND_DOMAIN
from integration.smtp.door import API_KEY, certificates, client_tls, connect, running_door

SHOP = f"shop@{INBOUND_DOMAIN}"  # the mail's sender: where the relay's reports go
REPORT_READ = (250, b"2.0.0 Ok: bounce report read")
# Bob's reason, as a report's status and diagnostic become it.
REASON = "5.1.1 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"


@contextlib.contextmanager
def mx_door(settings):
    """The SMTP door as the MX of the inbound domain (keys, a certificate, INBOUND_DOMAINS),
    for the block: the door and its CA file."""
    with (
        certificates() as (ca, cert, key),
        running_door(
            settings,
            API_KEYS=API_KEY,
            SMTP_TLS_CERT=cert,
            SMTP_TLS_KEY=key,
            INBOUND_DOMAINS=INBOUND_DOMAIN,
        ) as door,
    ):
        yield door, ca


def send_to_ann_and_bob(client, sandbox, run_worker):
    """Submit a mail to Ann and Bob and let the worker send it through the sandbox's relay:
    its id and the headers the relay received."""
    answer = client.post(
        "/mail",
        json={
            "from": f"Shop <{SHOP}>",
            "to": ["ann@example.com", "Bob <Bob@Example.com>"],
            "subject": "Your order",
            "text": "Thanks!",
        },
    )
    assert answer.status_code == 202, answer.get_json()
    mail_id = answer.get_json()["id"]
    run_worker(PROVIDERS="smtp")
    [relayed] = sandbox.messages("smtp")
    assert relayed["message_id"] == f"<{mail_id}@{INBOUND_DOMAIN}>"
    assert client.get(f"/mail/{mail_id}").get_json()["status"] == "sent"
    return mail_id, relayed["headers_in"]


def report(returned_headers, recipient="bob@example.com", sender="MAILER-DAEMON@relay.example"):
    """The relay's report (Postfix's RFC 3464 shape) that it gave up on ``recipient``,
    returning the headers of the mail as it received them; lines end in CRLF, as on the
    wire."""
    headers = "".join(f"{name}: {value}\n" for name, value in returned_headers.items())
    text = f"""Return-Path: <>
From: {sender} (Mail Delivery System)
To: {SHOP}
Subject: Undelivered Mail Returned to Sender
Date: Mon, 07 Dec 2026 10:00:00 +0000
Message-Id: <20261207100000.B1@relay.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="B1.1/relay.example"

This is a MIME-encapsulated message.

--B1.1/relay.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host relay.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.com[192.0.2.25] said: 550 5.1.1
    <{recipient}>: Recipient address rejected: User unknown (in reply to RCPT TO
    command)

--B1.1/relay.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example
X-Postfix-Queue-ID: B1
Arrival-Date: Mon, 07 Dec 2026 09:59:58 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:
    User unknown

--B1.1/relay.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}
--B1.1/relay.example--
"""
    return text.replace("\n", "\r\n").encode()


def deliver(door, ca, data, sender=""):
    """A mail server delivering ``data`` to the shop's address at the door: STARTTLS, no AUTH,
    ``MAIL FROM:<>`` (a report's null sender) unless ``sender``; the end of DATA's reply."""
    with connect(door) as smtp:
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("relay.example")
        assert smtp.mail(sender)[0] == 250
        assert smtp.rcpt(SHOP)[0] == 250
        return smtp.data(data)


def state(client, sql, mail_id):
    """What the client sees of the mail: its status, each recipient's status and reason, its
    events, the suppression list, the received mail's subjects, and the webhooks written for
    the mail."""
    body = client.get(f"/mail/{mail_id}").get_json()
    return {
        "status": body["status"],
        "recipients": {r["address"]: (r["status"], r["reason"]) for r in body["recipients"]},
        "events": [
            (e["provider"], e["event"], e["type"], e["recipient"], e["reason"])
            for e in body["events"]
        ],
        "suppressed": [
            (s["address"], s["reason"])
            for s in client.get("/suppressions").get_json()["suppressions"]
        ],
        "inbound": [item["subject"] for item in client.get("/inbound").get_json()["inbound"]],
        "webhooks": [
            (row["event_type"], row["recipient"])
            for row in sql(
                "SELECT event_type, payload -> 'data' ->> 'recipient' AS recipient "
                "FROM webhook_outbox WHERE email_id = :id ORDER BY id",
                id=mail_id,
            )
        ],
    }


def bounced(webhooks):
    """The state of the mail once Bob's report was read (``webhooks``: those written before
    it, ``mail.bounced`` follows)."""
    return {
        "status": "bounced",
        "recipients": {
            "ann@example.com": ("sent", None),
            "Bob@example.com": ("bounced", REASON),  # the address as the mail was sent to it
        },
        "events": [("smtp", "dsn", "bounced", "Bob@example.com", REASON)],
        "suppressed": [("Bob@example.com", "bounce")],
        "inbound": [],  # a report is read, not stored
        "webhooks": [*webhooks, ("mail.bounced", "Bob@example.com")],
    }
