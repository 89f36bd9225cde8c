"""A templated mail is rendered when it is submitted: what arrives is the same through Mailgun,
through SendGrid, and after a failover from one to the other."""

import uuid

import pytest

from models import Email, db

TEMPLATE = {
    "name": "welcome",
    "subject": "Welcome, {{ first_name }} — № {{ number }}",
    "text": "Hello {{ first_name }},\n{% for item in items %}- {{ item }}\n{% endfor %}",
    "html": "<h1>Hello {{ first_name }}</h1><ul>{% for item in items %}<li>{{ item }}</li>"
    "{% endfor %}</ul>",
}
VARIABLES = {"first_name": "Zoë <admin>", "number": 7, "items": ["tea & cake", "ß"]}
EXPECTED = {
    "subject": "Welcome, Zoë <admin> — № 7",
    "text": "Hello Zoë <admin>,\n- tea & cake\n- ß\n",
    "html": "<h1>Hello Zoë &lt;admin&gt;</h1><ul><li>tea &amp; cake</li><li>ß</li></ul>",
}


def send(client):
    """Create the template and submit one mail from it; the mail's id."""
    assert client.post("/templates", json=TEMPLATE).status_code == 201
    mail = {
        "from": "shop@example.com",
        "to": "rcpt@example.com",
        "template": "welcome",
        "variables": VARIABLES,
    }
    response = client.post("/mail", json=mail)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def content(received):
    """What the recipient reads of a message the sandbox took."""
    return {field: received[field] for field in ("subject", "text", "html")}


@pytest.mark.parametrize(
    ("providers", "failing", "expected_provider"),
    [
        ("mailgun,sendgrid", None, "mailgun"),
        ("sendgrid,mailgun", None, "sendgrid"),
        ("mailgun,sendgrid", "mailgun", "sendgrid"),
    ],
)
def test_the_rendered_mail_arrives_the_same(
    app, client, sandbox, run_worker, providers, failing, expected_provider
):
    app.config["PROVIDERS"] = tuple(providers.split(","))
    if failing:
        sandbox.configure(failing, status=503)
    mail_id = send(client)
    # Deleting the template after the 202 changes nothing: the mail is stored rendered.
    assert client.delete("/templates/welcome").status_code == 204
    run_worker(PROVIDERS=providers)
    body = client.get(f"/mail/{mail_id}").get_json()
    assert body["status"] == "sent" and body["provider"] == expected_provider
    assert body["template"] == "welcome" and body["template_version"] == 1
    [received] = sandbox.messages(expected_provider)
    assert content(received) == EXPECTED
    with app.app_context():
        stored = db.session.get(Email, uuid.UUID(mail_id))
        assert (stored.subject, stored.text, stored.html) == tuple(EXPECTED.values())
