"""A reply to a mail sent through each provider is linked to it (issue 25), end to end: the mail
is submitted with ``POST /mail``, the worker sends it through the provider to the sandbox, the
recipient's reply names the Message-ID the sandbox delivered (ours, or SES's own) and comes back
by a way in (the provider's inbound post, or the SMTP door as the MX of the inbound domain),
and the client sees the link: ``GET /mail/<id>`` lists the reply, ``GET /inbound/<id>`` names
the mail, and the admin's mail page links to the reply."""

import re
import uuid
from email.message import EmailMessage

import pytest
from helpers import serving

from app import create_app
from integration.admin.pages import log_in
from integration.inbound.posts import CREDENTIALS, INBOUND_DOMAIN, SUPPORT
from integration.smtp.door import API_KEY, certificates, client_tls, connect, running_door

pytestmark = pytest.mark.committed
RECEIVED = re.compile(rb"2\.0\.0 Ok: received as ([0-9a-f-]{36})")
# Each provider, the way its reply comes back, and the threading header that names the mail.
WAYS = [
    pytest.param("mailgun", "mailgun", "In-Reply-To", id="mailgun"),
    pytest.param("sendgrid", "sendgrid", "References", id="sendgrid-references-only"),
    pytest.param("postmark", "postmark", "In-Reply-To", id="postmark"),
    pytest.param("ses", "smtp", "In-Reply-To", id="ses-smtp-door"),
    pytest.param("smtp", "smtp", "In-Reply-To", id="smtp-smtp-door"),
]


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, the sandbox posting to it as the providers."""
    with serving(create_app(settings)) as url:
        sandbox.configure_events(url=url, **CREDENTIALS)
        yield sandbox


@pytest.fixture
def mx(settings):
    """The SMTP door as the MX of the inbound domain: keys, a certificate, INBOUND_DOMAINS."""
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


def send_through(client, run_worker, sandbox, provider):
    """Submit a mail to Ann, let the worker send it through ``provider``; its id and the
    Message-ID Ann's copy carries, as the sandbox delivered it."""
    answer = client.post(
        "/mail",
        json={
            "from": f"Shop <orders@{INBOUND_DOMAIN}>",
            "to": "Ann <ann@example.com>",
            "subject": "Your order",
            "text": "Thanks!",
        },
    )
    assert answer.status_code == 202, answer.get_json()
    mail_id = answer.get_json()["id"]
    run_worker(PROVIDERS=provider)
    shown = client.get(f"/mail/{mail_id}").get_json()
    assert (shown["status"], shown["provider"]) == ("sent", provider)
    [delivered] = sandbox.messages(provider)
    return mail_id, delivered


def reply_headers(header, delivered_id):
    """The threading header of Ann's reply: In-Reply-To, or References alone (a thread's first
    mail before ours, as a client that writes only References sends it)."""
    if header == "References":
        return {"References": f"<thread-start@example.org> {delivered_id}"}
    return {"In-Reply-To": delivered_id}


def reply_by_post(sandbox, provider, headers):
    """Ann's reply, posted by ``provider``'s inbound feature; the id the service answers."""
    [answer] = sandbox.post_inbound(
        provider,
        **{"from": "Ann <ann@example.com>"},
        to=[SUPPORT],
        subject="Re: Your order",
        text="Thanks, that works.\n",
        headers=headers,
    )
    assert answer["status"] == 200, answer
    assert answer["answer"]["kind"] == "stored", answer
    return answer["answer"]["id"]


def reply_by_smtp(door, ca, headers):
    """Ann's mail server delivering her reply to the door, as the inbound domain's MX:
    STARTTLS, no AUTH; the id of the ``250 2.0.0 Ok: received as <id>``."""
    message = EmailMessage()
    message["From"] = "Ann <ann@example.com>"
    message["To"] = f"Shop <{SUPPORT}>"
    message["Subject"] = "Re: Your order"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example.com>"
    for name, value in headers.items():
        message[name] = value
    message.set_content("Thanks, that works.")
    with connect(door) as smtp:
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("mail.example.com")
        assert smtp.mail("ann@example.com")[0] == 250
        assert smtp.rcpt(SUPPORT)[0] == 250
        code, text = smtp.data(message.as_bytes())
    assert code == 250, text
    return RECEIVED.fullmatch(text).group(1).decode()


@pytest.mark.parametrize("provider, way, header", WAYS)
def test_a_reply_to_a_mail_sent_through_each_provider_is_linked_to_it(
    app, client, live, mx, run_worker, provider, way, header
):
    mail_id, delivered = send_through(client, run_worker, live, provider)
    if provider == "ses":  # SES writes its own Message-ID over ours
        assert delivered["message_id"] == f"<{delivered['id']}@eu-west-1.amazonses.com>"
    else:
        assert delivered["message_id"] == f"<{mail_id}@{INBOUND_DOMAIN}>"
    headers = reply_headers(header, delivered["message_id"])

    if way == "smtp":
        inbound_id = reply_by_smtp(*mx, headers)
    else:
        inbound_id = reply_by_post(live, way, headers)

    mail = client.get(f"/mail/{mail_id}").get_json()
    assert mail["reply_count"] == 1
    [reply] = mail["replies"]
    assert (reply["id"], reply["subject"], reply["from"]) == (
        inbound_id,
        "Re: Your order",
        "Ann <ann@example.com>",
    )
    received = client.get(f"/inbound/{inbound_id}").get_json()
    assert received["in_reply_to_mail_id"] == mail_id
    assert received["source"] == way
    named = received["references"] if header == "References" else [received["in_reply_to"]]
    assert delivered["message_id"] in named
    assert admin_reply_links(app, mail_id) == [
        (inbound_id, f"/admin/inbound/details/?id={inbound_id}", "Re: Your order")
    ]


def admin_reply_links(app, mail_id):
    """The replies the admin's page of the mail lists: (inbound id, link, subject)."""
    admin = log_in(app, app.test_client())
    page = admin.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    section = re.search(r'<section id="mail-replies">(.*?)</section>', page, re.S).group(1)
    return re.findall(r'<li data-inbound="([^"]+)"><a href="([^"]+)">(.*?)</a>', section)
