"""A bounce report for a mail sent through the ``smtp`` relay makes its recipient bounced and
suppressed (issue 25), end to end: the mail goes to Ann and Bob through the worker and the
sandbox's relay; the relay's later report for Bob (RFC 3464: ``multipart/report`` with its
``message/delivery-status`` and the ``text/rfc822-headers`` of the mail as the relay got it)
is delivered by ``smtplib`` to the SMTP door, as the MX of the inbound domain, and posted by
Mailgun's route as ``body-mime``. The client sees the bounce, the suppression and a signed
``mail.bounced``; nothing is stored as received mail; the same report again changes nothing.
A report about someone the mail was not sent to, and one that a co-recipient writes from her
own address, change nothing. (swaks delivers the report in tests/system/smtp/test_swaks.py.)"""

import threading

import pytest
from helpers import serving, wait_for
from standardwebhooks import Webhook

from app import create_app
from integration.inbound.dsn import (
    REASON,
    REPORT_READ,
    SHOP,
    bounced,
    deliver,
    mx_door,
    report,
    send_to_ann_and_bob,
    state,
)
from integration.inbound.posts import CREDENTIALS
from integration.receiver import SECRET, Receiver

pytestmark = pytest.mark.committed


@pytest.fixture
def receiver():
    """The client's webhook endpoint, on loopback."""
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def settings(settings, receiver):
    """Mail through the SMTP relay only; client webhooks to ``receiver``."""
    return {**settings, "PROVIDERS": "smtp", "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def mx(settings):
    """The SMTP door as the MX of the inbound domain, and its CA file."""
    with mx_door(settings) as door_and_ca:
        yield door_and_ca


@pytest.fixture
def sent(client, sandbox, run_worker):
    """The mail to Ann and Bob, sent through the relay: its id and the headers it had."""
    return send_to_ann_and_bob(client, sandbox, run_worker)


def in_background(run_worker):
    """A worker on a thread, which posts the outbox's webhooks."""
    thread = threading.Thread(target=run_worker, kwargs={"burst": False}, daemon=True)
    thread.start()
    return wait_for(lambda: run_worker.workers and run_worker.workers[-1], timeout=30)


def verified(receiver, event_type):
    """The payloads of ``event_type`` the client's endpoint got, each verified with the
    Standard Webhooks library as a client verifies it."""
    payloads = [Webhook(SECRET).verify(body, headers) for headers, body in receiver.received]
    return [payload for payload in payloads if payload["type"] == event_type]


def test_a_report_through_the_smtp_door_bounces_and_suppresses_the_recipient(
    client, sql, sent, mx, receiver, run_worker
):
    mail_id, returned = sent
    data = report(returned)

    assert deliver(*mx, data) == REPORT_READ

    seen = state(client, sql, mail_id)
    assert seen == bounced(webhooks=[("mail.sent", None)])
    in_background(run_worker)
    [payload] = wait_for(
        lambda: verified(receiver, "mail.bounced"), timeout=30, message="mail.bounced"
    )
    event = payload["data"]
    assert (event["mail_id"], event["status"], event["recipient"], event["reason"]) == (
        mail_id,
        "bounced",
        "Bob@example.com",
        REASON,
    )
    assert deliver(*mx, data) == REPORT_READ  # the same report again: a server's retry
    assert state(client, sql, mail_id) == seen


def test_the_report_posted_by_mailguns_route_as_body_mime_is_read_too(
    settings, client, sql, sent, sandbox
):
    mail_id, returned = sent
    with serving(create_app(settings)) as url:
        sandbox.configure_events(url=url, **CREDENTIALS)
        [answer] = sandbox.post_inbound(
            "mailgun", raw=report(returned), envelope_from="", envelope_to=[SHOP]
        )
    assert answer["status"] == 200, answer
    assert answer["answer"]["kind"] == "report"
    assert state(client, sql, mail_id) == bounced(webhooks=[("mail.sent", None)])


def test_a_report_about_someone_the_mail_was_not_sent_to_changes_nothing(client, sql, sent, mx):
    mail_id, returned = sent
    before = state(client, sql, mail_id)
    assert deliver(*mx, report(returned, recipient="carl@example.com")) == REPORT_READ
    assert state(client, sql, mail_id) == before
    assert (before["status"], before["suppressed"]) == ("sent", [])


def test_a_report_a_co_recipient_writes_from_her_own_address_bounces_no_one(client, sql, sent, mx):
    # Ann got the mail: she knows its Message-ID, and that Bob got it too.
    mail_id, returned = sent
    before = state(client, sql, mail_id)
    forged = report(returned, sender="ann@example.com").replace(b"Return-Path: <>\r\n", b"")
    code, text = deliver(*mx, forged, sender="ann@example.com")
    assert code == 250 and text.startswith(b"2.0.0 Ok: received as "), text
    after = state(client, sql, mail_id)
    assert after == {**before, "inbound": ["Undelivered Mail Returned to Sender"]}  # her mail
