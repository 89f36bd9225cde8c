"""End to end through the worker: the API stores, the worker sends, the sandbox receives."""

from helpers import sample_mail

from models import Email, db


def post_mail(client, **fields):
    """Submit a mail through the API and return its id."""
    response = client.post("/mail", json=sample_mail(**fields))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def test_mailgun_happy_path(client, sandbox, run_worker):
    mail_id = post_mail(client, cc=["cc@example.com"], html="<p>Hi</p>")
    run_worker()
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent"
    assert body["provider"] == "mailgun"
    [received] = sandbox.messages("mailgun")
    assert body["provider_message_id"] == received["id"]
    assert received["to"] == ["rcpt@example.com"] and received["cc"] == ["cc@example.com"]
    assert received["subject"] == "Hello" and received["html"] == "<p>Hi</p>"
    assert received["custom"] == {"mail_id": mail_id}
    assert body["result"][0]["outcome"] == "sent"
    assert body["attempts"] == 1 and body["attempt_log"][0]["provider"] == "mailgun"


def test_failover_to_sendgrid_on_503(client, sandbox, run_worker):
    sandbox.configure("mailgun", status=503)
    mail_id = post_mail(client)
    run_worker()
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == "sendgrid"
    assert [answer["status_code"] for answer in body["result"]] == [503, 202]
    [received] = sandbox.messages("sendgrid")
    assert body["provider_message_id"] == received["id"]


def test_provider_400_fails_the_mail_with_its_reason(app, client, sandbox, run_worker):
    sandbox.configure("mailgun", reject_to="bad")
    mail_id = post_mail(client, to="bad@example.com")
    run_worker()
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "failed"
    assert body["last_error"]
    assert sandbox.messages() == []
    with app.app_context():
        assert db.session.get(Email, __import__("uuid").UUID(mail_id)).locked_by is None
