"""Delivery events end to end: the sandbox posts signed events back for what it took (Postmark's
with the basic auth of its webhook URL), over real HTTP, and the service moves each mail to
delivered, bounced or complained, and suppresses."""

import pytest
from helpers import serving, wait_for
from signed import (
    MAILGUN_SIGNING_KEY,
    POSTMARK_WEBHOOK_PASSWORD,
    POSTMARK_WEBHOOK_USERNAME,
    SENDGRID_PRIVATE_KEY,
)

from app import create_app

pytestmark = pytest.mark.committed


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, and the sandbox posting its events to it."""
    application = create_app(settings)
    with serving(application) as url:
        sandbox.configure_events(
            url=url,
            mailgun_key=MAILGUN_SIGNING_KEY,
            sendgrid_key=SENDGRID_PRIVATE_KEY,
            postmark_username=POSTMARK_WEBHOOK_USERNAME,
            postmark_password=POSTMARK_WEBHOOK_PASSWORD,
            delay=0.0,
        )
        yield application.test_client()


def status_becomes(client, mail_id, wanted, timeout=10):
    """Wait until the mail's status is ``wanted``; the mail."""

    def check():
        body = client.get(f"/mail/{mail_id}").get_json()
        return body if body["status"] == wanted else None

    return wait_for(check, timeout, message=f"mail {mail_id} to be {wanted}")


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_a_mail_goes_queued_sending_sent_delivered(live, mail, run_worker, sandbox, provider):
    mail_id = live.post("/mail", json={**mail, "cc": "copy@example.com"}).get_json()["id"]
    run_worker(PROVIDERS=provider)
    body = status_becomes(live, mail_id, "delivered")
    assert {r["status"] for r in body["recipients"]} == {"delivered"}
    assert "delivered" in [event["type"] for event in body["events"]]
    assert {post["status"] for post in sandbox.posted_events()} == {200}


def test_sendgrid_duplicate_deliveries_are_counted_once(live, mail, run_worker, sandbox, sql):
    sandbox.configure_events(duplicates=3)
    mail_id = live.post("/mail", json=mail).get_json()["id"]
    run_worker(PROVIDERS="sendgrid")
    status_becomes(live, mail_id, "delivered")
    wait_for(lambda: len(sandbox.posted_events()) == 3, timeout=10, message="three posts")
    assert sql("SELECT type FROM delivery_event ORDER BY type") == [
        {"type": "accepted"},
        {"type": "delivered"},
    ]


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_a_bounce_suppresses_the_address_for_the_next_mail(
    live, mail, run_worker, sandbox, provider
):
    sandbox.configure_events(outcomes={"gone@example.com": "bounce"})
    first = live.post(
        "/mail", json={**mail, "to": "gone@example.com", "cc": "ok@example.com"}
    ).get_json()["id"]
    run_worker(PROVIDERS=provider)
    status_becomes(live, first, "bounced")
    wait_for(
        lambda: (
            {r["address"]: r["status"] for r in live.get(f"/mail/{first}").get_json()["recipients"]}
            == {"gone@example.com": "bounced", "ok@example.com": "delivered"}
        ),
        timeout=10,
        message="the other recipient's delivery",
    )
    assert live.get("/suppressions").get_json()["suppressions"][0]["reason"] == "bounce"
    sandbox.reset()
    second = live.post(
        "/mail", json={**mail, "to": "gone@example.com", "bcc": "gone@EXAMPLE.com"}
    ).get_json()["id"]
    run_worker(PROVIDERS=provider)
    assert live.get(f"/mail/{second}").get_json()["status"] == "suppressed"
    assert sandbox.requests() == []


def test_complaints_and_deferrals(live, mail, run_worker, sandbox):
    sandbox.configure_events(
        outcomes={"angry@example.com": "complain", "slow@example.com": "defer"}
    )
    angry = live.post("/mail", json={**mail, "to": "angry@example.com"}).get_json()["id"]
    slow = live.post("/mail", json={**mail, "to": "slow@example.com"}).get_json()["id"]
    run_worker()
    status_becomes(live, angry, "complained")
    wait_for(
        lambda: live.get(f"/mail/{slow}").get_json()["recipients"][0]["status"] == "deferred",
        timeout=10,
        message="the deferral",
    )
    assert live.get(f"/mail/{slow}").get_json()["status"] == "sent"


# --- Postmark: no signature, the basic auth of its webhook URL ----------------------------------


def recipients_become(client, mail_id, wanted, timeout=10):
    """Wait until the mail's recipients have the ``wanted`` statuses; the mail."""

    def check():
        body = client.get(f"/mail/{mail_id}").get_json()
        found = {r["address"]: r["status"] for r in body["recipients"]}
        return body if found == wanted else None

    return wait_for(check, timeout, message=f"mail {mail_id}'s recipients to be {wanted}")


def test_outcomes_move_mail_and_recipients_and_suppress(live, mail, run_worker, sandbox):
    sandbox.configure_events(
        outcomes={
            "gone@example.com": "bounce",
            "slow@example.com": "defer",
            "angry@example.com": "complain",
        }
    )
    mail_id = live.post(
        "/mail",
        json={
            **mail,
            "to": "ok@example.com",
            "cc": ["gone@example.com", "slow@example.com", "angry@example.com"],
        },
    ).get_json()["id"]
    run_worker(PROVIDERS="postmark")
    body = recipients_become(
        live,
        mail_id,
        {
            "ok@example.com": "delivered",
            "gone@example.com": "bounced",
            "slow@example.com": "deferred",
            "angry@example.com": "complained",
        },
    )
    assert {event["provider"] for event in body["events"]} == {"postmark"}
    assert {post["status"] for post in sandbox.posted_events()} == {200}
    suppressed = live.get("/suppressions").get_json()["suppressions"]
    assert {(s["address"], s["reason"]) for s in suppressed} == {
        ("gone@example.com", "bounce"),
        ("angry@example.com", "complaint"),
    }
    sandbox.reset()
    second = live.post("/mail", json={**mail, "to": "gone@example.com"}).get_json()["id"]
    run_worker(PROVIDERS="postmark")
    assert live.get(f"/mail/{second}").get_json()["status"] == "suppressed"
    assert sandbox.requests() == []


def test_events_posted_twice_are_recorded_once(live, mail, run_worker, sandbox, sql):
    sandbox.configure_events(duplicates=2)
    mail_id = live.post("/mail", json=mail).get_json()["id"]
    run_worker(PROVIDERS="postmark")
    recipients_become(live, mail_id, {"rcpt@example.com": "delivered"})
    wait_for(lambda: len(sandbox.posted_events()) == 2, timeout=10, message="both posts")
    assert sql("SELECT type, provider FROM delivery_event") == [
        {"type": "delivered", "provider": "postmark"}
    ]


def test_wrong_basic_auth_is_refused_and_changes_nothing(live, mail, run_worker, sandbox, sql):
    sandbox.configure_events(postmark_password="a-guess", outcomes={"rcpt@example.com": "bounce"})
    mail_id = live.post("/mail", json=mail).get_json()["id"]
    run_worker(PROVIDERS="postmark")
    wait_for(lambda: sandbox.posted_events(), timeout=10, message="the post")
    assert [post["status"] for post in sandbox.posted_events()] == [401]
    body = live.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["recipients"][0]["status"] == "sent"
    assert sql("SELECT count(*) AS n FROM delivery_event") == [{"n": 0}]
    assert live.get("/suppressions").get_json()["suppressions"] == []
