"""SES's events through SNS end to end: the sandbox posts SNS messages signed with its own key,
whose certificate it serves on loopback (which ``SNS_URL_PATTERN`` allows here), and the
service checks them, moves mail and recipients, and suppresses; or refuses them and changes
nothing."""

import json
import re

import pytest
import requests
from helpers import serving, wait_for

from app import create_app
from mailer.events import ses

pytestmark = pytest.mark.committed

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-events"
STRANGER = "arn:aws:sns:eu-west-1:999999999999:someone-else"


@pytest.fixture
def settings(settings, sandbox):
    """The test settings with SES's events on: our topic, the sandbox's certificate allowed."""
    return {
        **settings,
        "SES_SNS_TOPIC_ARNS": f"{TOPIC},arn:aws:sns:eu-west-1:123456789012:other",
        "SNS_URL_PATTERN": "^" + re.escape(sandbox.url) + "/_sandbox/sns/",
    }


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, and the sandbox posting SES events to it; the
    server's URL is ``live.url``."""
    application = create_app(settings)
    with serving(application) as url:
        sandbox.configure_events(url=url, ses_topic_arn=TOPIC, delay=0.0)
        client = application.test_client()
        client.url = url
        yield client


def status_becomes(client, mail_id, wanted, timeout=10):
    """Wait until the mail's status is ``wanted``; the mail."""

    def check():
        body = client.get(f"/mail/{mail_id}").get_json()
        return body if body["status"] == wanted else None

    return wait_for(check, timeout, message=f"mail {mail_id} to be {wanted}")


def recipients_of(client, mail_id):
    """``{address: status}`` of a mail's recipients."""
    return {
        r["address"]: r["status"] for r in client.get(f"/mail/{mail_id}").get_json()["recipients"]
    }


def post_sns(url, message):
    """Post an SNS message as SNS does (JSON sent as text/plain); the answer."""
    return requests.post(
        f"{url}/webhooks/ses",
        data=json.dumps(message),
        headers={"Content-Type": "text/plain; charset=UTF-8"},
        timeout=10,
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_events_move_the_mail_to_delivered(live, mail, run_worker, sandbox, version):
    sandbox.configure_events(sns_signature_version=version)
    mail_id = live.post("/mail", json={**mail, "cc": "copy@example.com"}).get_json()["id"]
    run_worker(PROVIDERS="ses")
    body = status_becomes(live, mail_id, "delivered")
    assert {r["status"] for r in body["recipients"]} == {"delivered"}
    assert [e["type"] for e in body["events"]].count("delivered") == 2
    # The sandbox notes its post once the answer is back, which may be just after the mail moved.
    posted = wait_for(sandbox.posted_events, timeout=10, message="the sandbox's post")
    assert [post["status"] for post in posted] == [200]
    assert posted[0]["events"] == [
        ("Delivery", "rcpt@example.com"),
        ("Delivery", "copy@example.com"),
    ]


def test_a_bounce_suppresses_and_a_complaint_and_a_delay_are_recorded(
    live, mail, run_worker, sandbox
):
    sandbox.configure_events(
        outcomes={
            "gone@example.com": "bounce",
            "angry@example.com": "complain",
            "slow@example.com": "defer",
        }
    )
    mail_id = live.post(
        "/mail",
        json={
            **mail,
            "to": "gone@example.com",
            "cc": ["angry@example.com", "slow@example.com", "ok@example.com"],
        },
    ).get_json()["id"]
    run_worker(PROVIDERS="ses")
    wait_for(
        lambda: (
            recipients_of(live, mail_id)
            == {
                "gone@example.com": "bounced",
                "angry@example.com": "complained",
                "slow@example.com": "deferred",
                "ok@example.com": "delivered",
            }
        ),
        timeout=10,
        message="every recipient's outcome",
    )
    reasons = {
        s["address"]: s["reason"] for s in live.get("/suppressions").get_json()["suppressions"]
    }
    assert reasons == {"gone@example.com": "bounce", "angry@example.com": "complaint"}
    sandbox.reset()
    second = live.post("/mail", json={**mail, "to": "gone@example.com"}).get_json()["id"]
    run_worker(PROVIDERS="ses")
    assert live.get(f"/mail/{second}").get_json()["status"] == "suppressed"
    assert sandbox.requests() == []


def test_a_repeat_of_an_sns_message_changes_nothing(live, mail, run_worker, sandbox, sql):
    mail_id = live.post("/mail", json=mail).get_json()["id"]
    run_worker(PROVIDERS="ses")
    status_becomes(live, mail_id, "delivered")
    [record] = sandbox.messages("ses")
    event = {
        "eventType": "Delivery",
        "mail": {
            "timestamp": record["received_at"],
            "messageId": record["id"],
            "destination": ["rcpt@example.com"],
            "tags": {"mail_id": [mail_id]},
        },
        "delivery": {"timestamp": record["received_at"], "recipients": ["rcpt@example.com"]},
    }
    message = sandbox.sns_signer.notification(sandbox.url, TOPIC, event)
    first, again = post_sns(live.url, message).json(), post_sns(live.url, message).json()
    assert (first["new"], again["new"], again["repeats"]) == (1, 0, 1)


def sent_mail(live, mail, run_worker):
    """A mail SES took (its events not posted), and the SES Delivery event about it."""
    mail_id = live.post("/mail", json=mail).get_json()["id"]
    run_worker(PROVIDERS="ses")
    return mail_id, {
        "eventType": "Bounce",
        "mail": {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "messageId": "0100-x-000000",
            "destination": ["rcpt@example.com"],
            "tags": {"mail_id": [mail_id]},
        },
        "bounce": {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "bounceType": "Permanent",
            "bouncedRecipients": [{"emailAddress": "rcpt@example.com"}],
        },
    }


@pytest.mark.parametrize(
    "change, status, field",
    [
        ("forged", 401, "Signature"),
        ("cert_outside", 401, "SigningCertURL"),
        ("stranger_topic", 403, "TopicArn"),
        ("version_3", 401, "SignatureVersion"),
    ],
)
def test_messages_whose_origin_does_not_hold_are_refused_and_change_nothing(
    live, mail, run_worker, sandbox, sql, change, status, field
):
    sandbox.configure_events(url=None)  # only the test's own messages
    mail_id, event = sent_mail(live, mail, run_worker)
    signer = sandbox.sns_signer
    message = signer.notification(sandbox.url, TOPIC, event)
    if change == "forged":
        message = {**message, "Message": message["Message"].replace("rcpt@", "else@")}
    elif change == "cert_outside":
        # Signed with the right key, but its certificate is somewhere the pattern does not allow.
        message = signer.notification(
            sandbox.url, TOPIC, event, cert_url=f"{sandbox.url}/elsewhere/cert.pem"
        )
    elif change == "stranger_topic":
        message = signer.notification(sandbox.url, STRANGER, event)
    else:
        message = {**message, "SignatureVersion": "3"}
    answer = post_sns(live.url, message)
    assert answer.status_code == status
    assert answer.json()["errors"][0]["field"] == field
    assert sql("SELECT count(*) AS n FROM delivery_event") == [{"n": 0}]
    assert sql("SELECT count(*) AS n FROM suppression") == [{"n": 0}]
    assert live.get(f"/mail/{mail_id}").get_json()["status"] == "sent"


def test_the_endpoint_is_off_without_topics(settings, app):
    client = create_app({**settings, "SES_SNS_TOPIC_ARNS": ""}).test_client()
    answer = client.post("/webhooks/ses", data="{}", content_type="text/plain")
    assert answer.status_code == 404
    assert "SES_SNS_TOPIC_ARNS" in answer.get_json()["errors"][0]["message"]


def test_a_subscription_is_confirmed_only_for_an_accepted_topic(live, sandbox):
    assert sandbox.confirm_sns_subscription(STRANGER) == 403
    assert sandbox.sns_confirmations() == []
    assert sandbox.confirm_sns_subscription(TOPIC) == 200
    [confirmed] = sandbox.sns_confirmations()
    assert confirmed["topic"] == TOPIC and confirmed["token"]


def test_a_subscribe_url_outside_the_pattern_is_not_fetched(live, sandbox):
    outside = f"{sandbox.url}/_elsewhere/confirm?Token=x"
    assert sandbox.confirm_sns_subscription(TOPIC, subscribe_url=outside) == 401
    assert sandbox.sns_confirmations() == []


def test_a_certificate_url_that_redirects_is_not_followed(sandbox):
    """A URL the pattern allows may answer with a redirect to one it would not: the certificate
    is taken from the very address that was checked, or not at all."""
    target = f"{sandbox.url}/_sandbox/sns/cert.pem"
    assert ses.Certificates().key(target)  # the sandbox's certificate, fetched directly

    def redirect(environ, start_response):
        start_response("302 Found", [("Location", target), ("Content-Length", "0")])
        return [b""]

    with serving(redirect) as url:
        with pytest.raises(ses.Refused) as refused:
            ses.Certificates().key(f"{url}/cert.pem")
    assert refused.value.field == "SigningCertURL" and "redirected (302)" in refused.value.message
