"""Postmark's events end to end: the sandbox posts them back, with the basic auth of the
webhook URL, over real HTTP, for what the worker sent through it (issue 20, item 2)."""

import pytest
from helpers import serving, wait_for
from signed import POSTMARK_WEBHOOK_PASSWORD, POSTMARK_WEBHOOK_USERNAME

from app import create_app

pytestmark = pytest.mark.committed


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, and the sandbox posting Postmark's events to it."""
    application = create_app(settings)
    with serving(application) as url:
        sandbox.configure_events(
            url=url,
            postmark_username=POSTMARK_WEBHOOK_USERNAME,
            postmark_password=POSTMARK_WEBHOOK_PASSWORD,
            delay=0.0,
        )
        yield application.test_client()


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
