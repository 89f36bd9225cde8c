"""One mail along the whole chain of the five providers: each of the first four fails in its
own way, in its own wire format, and the mail goes on to the next, until the SMTP relay takes
it (issue 20: "Mailgun 503 -> SendGrid 503 -> SES -> Postmark -> SMTP")."""

import pytest
from helpers import attempts_of

pytestmark = pytest.mark.committed

CHAIN = "mailgun,sendgrid,ses,postmark,smtp"
# Each provider down, in its own words: an HTTP 503, or the relay's "421 Service not available".
DOWN = {"mailgun": 503, "sendgrid": 503, "ses": 503, "postmark": 503, "smtp": 421}


def post_mail(client):
    """Submit one mail through the API; its id."""
    response = client.post(
        "/mail",
        json={
            "from": "shop@example.com",
            "to": "ann@example.com",
            "subject": "Your order",
            "text": "Thanks!",
            "html": "<p>Thanks!</p>",
        },
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_a_mail_fails_over_along_all_five_providers(client, sandbox, run_worker, database_url):
    sandbox.configure("mailgun", status=503)
    sandbox.configure("sendgrid", status=503)
    sandbox.configure("ses", status=400, error="AccountSuspendedException")
    sandbox.configure("postmark", status=429)
    mail_id = post_mail(client)

    run_worker(PROVIDERS=CHAIN)

    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "smtp"
    answers = [(answer["provider"], answer["outcome"]) for answer in body["result"]]
    assert answers == [
        ("mailgun", "transient"),
        ("sendgrid", "transient"),
        ("ses", "misconfigured"),
        ("postmark", "rate_limited"),
        ("smtp", "sent"),
    ]
    [received] = sandbox.messages("smtp")
    assert received["subject"] == "Your order" and received["to"] == ["ann@example.com"]
    assert [attempt["provider"] for attempt in attempts_of(database_url)] == CHAIN.split(",")


@pytest.mark.parametrize("last", CHAIN.split(","))
def test_each_provider_takes_the_mail_when_the_others_are_down(client, sandbox, run_worker, last):
    """Whichever provider is the one left up, in any order, the mail goes through it."""
    for name in CHAIN.split(","):
        if name != last:
            sandbox.configure(name, status=DOWN[name])
    order = [name for name in CHAIN.split(",") if name != last] + [last]
    mail_id = post_mail(client)

    run_worker(PROVIDERS=",".join(order))

    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == last
    assert [answer["provider"] for answer in body["result"]] == order
    assert len(sandbox.messages(last)) == 1
