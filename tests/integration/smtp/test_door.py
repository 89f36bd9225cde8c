"""The SMTP door with Python's smtplib: a message stored as POST /mail stores one, sent by the
worker with the same from, recipients, subject, parts, attachments and headers; AUTH with an
API key after STARTTLS; retries that store one mail."""

import smtplib
from email.message import EmailMessage

import pytest
from helpers import wait_for

from integration.admin.pages import listed_subjects
from integration.smtp.door import (
    API_KEY,
    RECIPIENTS,
    certificates,
    client_tls,
    connect,
    queued_id,
    running_door,
    sample_message,
    send_data,
)

pytestmark = pytest.mark.committed
API_MAIL = {"from": "a@example.com", "to": "b@example.com", "subject": "Over HTTP", "text": "Hi"}


def test_a_message_arrives_as_it_was_sent(app, client, settings, sandbox, run_worker):
    with running_door(settings) as door, connect(door) as smtp:
        mail_id = queued_id(send_data(smtp, sample_message()))

    mail = client.get(f"/mail/{mail_id}").get_json()
    assert mail["source"] == "smtp" and mail["status"] == "queued"
    assert mail["from_address"] == "Shop <shop@example.com>"
    assert (mail["to"], mail["cc"], mail["bcc"]) == (
        ["Ann <ann@example.com>"],
        ["carl@example.com"],
        ["bob@example.com"],
    )
    assert mail["headers"] == {"X-Order": "1234"}
    assert [(f["filename"], f["content_type"]) for f in mail["attachments"]] == [
        ("invoice.pdf", "application/pdf")
    ]
    listed = client.get("/mail?source=smtp").get_json()["mails"]
    assert [item["id"] for item in listed] == [mail_id]
    assert client.get("/mail?source=api").get_json()["mails"] == []

    run_worker(PROVIDERS="smtp")

    assert client.get(f"/mail/{mail_id}").get_json()["status"] == "sent"
    [received] = sandbox.messages("smtp")
    assert received["from"] == "Shop <shop@example.com>"
    assert received["to"] == ["Ann <ann@example.com>"] and received["cc"] == ["carl@example.com"]
    assert received["bcc"] == ["bob@example.com"]
    assert sorted(received["envelope"]["rcpt_to"]) == sorted(RECIPIENTS)
    assert received["subject"] == "Your order"
    assert received["text"].strip() == "Thanks for your order."
    assert received["html"].strip() == "<p>Thanks for your order.</p>"
    assert received["headers_in"]["X-Order"] == "1234"
    [attachment] = received["attachments"]
    assert (attachment["filename"], attachment["content_type"], attachment["size"]) == (
        "invoice.pdf",
        "application/pdf",
        len(b"%PDF-1.4 invoice"),
    )


def related_message(logo_id="<logo@shop.example>"):
    """A message as a mail client writes one with an inline image: the HTML and the image in
    multipart/related, beside the text in multipart/alternative, and an attached file that
    has a Content-ID too (some clients give every part one)."""
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = "Ann <ann@example.com>"
    message["Subject"] = "Your order"
    message.set_content("Thanks for your order.")
    message.add_alternative('<p><img src="cid:logo@shop.example"> Thanks!</p>', subtype="html")
    html = message.get_body(("html",))
    html.add_related(b"PNG logo", maintype="image", subtype="png", cid=logo_id)
    message.add_attachment(b"%PDF-1.4 bill", maintype="application", subtype="pdf")
    bill = next(message.iter_attachments())
    bill.replace_header("Content-Disposition", 'attachment; filename="bill.pdf"')
    bill["Content-ID"] = "<bill@shop.example>"
    return message


def test_an_inline_part_keeps_its_content_id(app, client, settings, sandbox, run_worker):
    message = related_message()
    assert message.get_content_type() == "multipart/mixed"
    with running_door(settings) as door, connect(door) as smtp:
        mail_id = queued_id(send_data(smtp, message, recipients=["ann@example.com"]))

    mail = client.get(f"/mail/{mail_id}").get_json()
    assert mail["html"].strip() == '<p><img src="cid:logo@shop.example"> Thanks!</p>'
    assert [(f["filename"], f["content_type"], f["content_id"]) for f in mail["attachments"]] == [
        ("part-1.png", "image/png", "logo@shop.example"),
        ("bill.pdf", "application/pdf", None),
    ]

    run_worker(PROVIDERS="smtp")

    [received] = sandbox.messages("smtp")
    files = {f["content_type"]: f for f in received["attachments"]}
    assert (files["image/png"]["disposition"], files["image/png"]["content_id"]) == (
        "inline",
        "logo@shop.example",
    )
    assert (files["application/pdf"]["disposition"], files["application/pdf"]["content_id"]) == (
        "attachment",
        None,
    )
    assert received["message_id"] == f"<{mail_id}@example.com>"


def test_a_content_id_the_api_would_refuse_is_refused_naming_the_part(app, settings):
    with running_door(settings) as door, connect(door) as smtp:
        code, text = send_data(smtp, related_message("<my logo>"), recipients=["ann@example.com"])
    assert (code, text[:6]) == (554, b"5.6.0 ")
    assert b"attachments[0].content_id" in text


def test_control_headers_give_tags_metadata_and_send_at_and_are_not_sent(
    app, client, settings, sandbox, run_worker
):
    message = sample_message(
        X_Mail_Tags="orders, spring",
        X_Mail_Metadata='{"order": "1234"}',
        X_Mail_Send_At="2000-01-01T00:00:00Z",
    )
    with running_door(settings) as door, connect(door) as smtp:
        mail_id = queued_id(send_data(smtp, message))

    mail = client.get(f"/mail/{mail_id}").get_json()
    assert mail["tags"] == ["orders", "spring"] and mail["metadata"] == {"order": "1234"}
    run_worker(PROVIDERS="smtp")
    sent = client.get(f"/mail/{mail_id}").get_json()
    assert sent["status"] == "sent", (sent["status"], sent["last_error"])
    wait_for(lambda: sandbox.messages("smtp"), 10, message="the relay's record of the mail")
    [received] = sandbox.messages("smtp")
    assert not any(name.lower().startswith("x-mail-") for name in received["headers_in"])


def test_a_template_renders_the_message(app, client, settings, sandbox, run_worker):
    created = client.post(
        "/templates",
        json={"name": "welcome", "subject": "Hi {{ name }}", "text": "Welcome, {{ name }}!"},
    )
    assert created.status_code == 201, created.get_json()
    message = sample_message(X_Mail_Template="welcome", X_Mail_Variables='{"name": "Ann"}')
    with running_door(settings) as door, connect(door) as smtp:
        mail_id = queued_id(send_data(smtp, message))

    mail = client.get(f"/mail/{mail_id}").get_json()
    rendered = (mail["subject"], mail["mail"], mail["template"])
    assert rendered == ("Hi Ann", "Welcome, Ann!", "welcome")


def test_a_retried_message_id_stores_one_mail(app, client, settings):
    message = sample_message(Message_ID="<order-1234@shop.example.com>")
    with running_door(settings) as door, connect(door) as smtp:
        first = queued_id(send_data(smtp, message))
        second = queued_id(send_data(smtp, message))
    assert first == second
    assert len(client.get("/mail").get_json()["mails"]) == 1


def test_an_idempotency_key_works_as_over_http(app, client, settings):
    with running_door(settings) as door, connect(door) as smtp:
        first = queued_id(send_data(smtp, sample_message(Idempotency_Key="k-1")))
        second = queued_id(send_data(smtp, sample_message(Idempotency_Key="k-1")))
        other = sample_message(Idempotency_Key="k-1")
        other.replace_header("Subject", "Another order")
        code, text = send_data(smtp, other)
    assert first == second
    assert (code, text[:6]) == (554, b"5.6.0 ")
    assert b"Idempotency-Key was used with a different message" in text


def test_a_suppressed_recipient_is_accepted_and_ends_suppressed(app, client, settings, run_worker):
    assert client.post("/suppressions", json={"address": "ann@example.com"}).status_code == 201
    with running_door(settings) as door, connect(door) as smtp:
        mail_id = queued_id(send_data(smtp, sample_message(), recipients=["ann@example.com"]))
    run_worker(PROVIDERS="smtp")
    assert client.get(f"/mail/{mail_id}").get_json()["status"] == "suppressed"


def test_auth_after_starttls_with_an_api_key(app, client, settings):
    with (
        certificates() as (ca, cert, key),
        running_door(settings, API_KEYS=API_KEY, SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key) as door,
        connect(door) as smtp,
    ):
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        assert smtp.mail("shop@example.com")[0] == 530
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("client.example.com")
        assert smtp.has_extn("auth")
        assert "PLAIN" in smtp.esmtp_features["auth"] and "LOGIN" in smtp.esmtp_features["auth"]
        smtp.login("any-user", API_KEY)
        mail_id = queued_id(send_data(smtp, sample_message()))
    assert client.get(f"/mail/{mail_id}").get_json()["source"] == "smtp"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_wrong_key_is_535(app, settings, mechanism):
    with (
        certificates() as (ca, cert, key),
        running_door(settings, API_KEYS=API_KEY, SMTP_TLS_CERT=cert, SMTP_TLS_KEY=key) as door,
        connect(door) as smtp,
    ):
        smtp.starttls(context=client_tls(ca))
        smtp.ehlo("client.example.com")
        smtp.user, smtp.password = "any-user", "not-the-key"
        authobject = getattr(smtp, f"auth_{mechanism.lower()}")
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth(mechanism, authobject)
    assert refused.value.smtp_code == 535
    assert refused.value.smtp_error.startswith(b"5.7.8 The API key is not valid")


def test_too_many_wrong_keys_are_421_and_the_connection_closes(app, settings):
    with (
        certificates() as (ca, cert, key),
        running_door(
            settings,
            API_KEYS=API_KEY,
            SMTP_TLS_CERT=cert,
            SMTP_TLS_KEY=key,
            AUTH_FAILURE_LIMIT=2,
        ) as door,
    ):
        codes = []
        for _ in range(3):
            with connect(door) as smtp:
                smtp.starttls(context=client_tls(ca))
                smtp.ehlo("client.example.com")
                smtp.user, smtp.password = "any-user", "not-the-key"
                try:
                    smtp.auth("PLAIN", smtp.auth_plain)
                except smtplib.SMTPAuthenticationError as err:
                    codes.append((err.smtp_code, err.smtp_error[:6]))
        assert codes == [(535, b"5.7.8 "), (535, b"5.7.8 "), (421, b"4.7.0 ")]
        with connect(door) as smtp:  # the right key is still taken
            smtp.starttls(context=client_tls(ca))
            smtp.ehlo("client.example.com")
            assert smtp.login("any-user", API_KEY)[0] == 235


def test_the_admin_shows_and_filters_the_source(app, client, settings):
    with running_door(settings) as door, connect(door) as smtp:
        mail_id = queued_id(send_data(smtp, sample_message()))
    page = client.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    assert "Source" in page and ">smtp<" in page.replace(" ", "").replace("\n", "")
    assert client.post("/mail", json=API_MAIL).status_code == 202
    assert listed_subjects(client, "?flt0_source_equals=smtp") == ["Your order"]
    assert listed_subjects(client, "?flt0_source_equals=api") == ["Over HTTP"]
