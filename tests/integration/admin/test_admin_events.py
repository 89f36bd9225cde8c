"""Delivery events in the admin: a mail's recipients and timeline, the new statuses in the list, the
suppression list (add, remove) and the client webhooks with their attempts."""

import re

from signed import mailgun_body

from integration.admin.pages import csrf_token, post_mail, summary, timeline

ANN, BOB = "ann@example.com", "bob@example.com"


def delivered_to_ann(client, sql):
    """A mail to Ann and Bob that Mailgun delivered to Ann; its id."""
    mail_id = post_mail(client, to=ANN, cc=BOB)
    sql("UPDATE email SET status = 'sent', provider = 'mailgun' WHERE id = :id", id=mail_id)
    sql(
        "INSERT INTO recipient (email_id, address, status) "
        "SELECT id, unnest(recipients), 'sent' FROM email WHERE id = :id",
        id=mail_id,
    )
    client.post("/webhooks/mailgun", json=mailgun_body("delivered", ANN, mail_id=mail_id))
    client.post(
        "/webhooks/mailgun", json=mailgun_body("failed", BOB, mail_id=mail_id, severity="permanent")
    )
    return mail_id


def test_details_show_recipients_and_the_timeline(client, sql):
    mail_id = delivered_to_ann(client, sql)
    page = client.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    card = summary(page)
    assert card["Recipients"].startswith(f"{ANN} delivered")
    assert f"{BOB} bounced 550 5.1.1 mailbox unknown" in card["Recipients"]
    # The bounce is what went wrong, with its time; it links to the suppression it caused.
    assert card["What went wrong"].startswith(f"550 5.1.1 mailbox unknown {BOB},")
    assert f'data-suppressed="{BOB}"' in page
    events = [
        (e["actor"], e["what"], e["recipient"]) for e in timeline(page) if e["kind"] == "event"
    ]
    assert events == [("mailgun", "delivered", ANN), ("mailgun", "bounced", BOB)]


def test_the_list_filters_by_the_new_statuses(client, sql):
    mail_id = delivered_to_ann(client, sql)
    post_mail(client)
    page = client.get("/admin/email/?flt0_status_equals=bounced").get_data(as_text=True)
    assert mail_id in page and page.count("/admin/email/details/?id=") == 1


def test_suppressions_are_added_and_removed_in_the_admin(client, sql):
    token = csrf_token(client, "/admin/suppression/new/")
    answer = client.post(
        "/admin/suppression/new/",
        data={
            "address": "Carol <carol@Example.org>",
            "reason": "complaint",
            "detail": "phoned us",
            "csrf_token": token,
        },
    )
    assert answer.status_code == 302
    assert sql("SELECT address, reason, detail FROM suppression") == [
        {"address": "carol@example.org", "reason": "complaint", "detail": "phoned us"}
    ]
    page = client.get("/admin/suppression/").get_data(as_text=True)
    assert "carol@example.org" in page
    bad = client.post(
        "/admin/suppression/new/",
        data={"address": "nobody", "reason": "manual", "csrf_token": token},
    )
    assert "nobody" in bad.get_data(as_text=True) and len(sql("SELECT * FROM suppression")) == 1
    # Flask-Admin writes a "." of a key as ".." in its forms.
    client.post(
        "/admin/suppression/delete/", data={"id": "carol@example..org", "csrf_token": token}
    )
    assert sql("SELECT * FROM suppression") == []


def test_expired_bounces_are_not_listed(client, sql):
    client.post("/suppressions", json={"address": "old@example.com", "reason": "bounce"})
    sql("UPDATE suppression SET expires_at = now() - interval '1 day'")
    assert "old@example.com" not in client.get("/admin/suppression/").get_data(as_text=True)


def test_webhook_deliveries_and_their_attempts(client, sql):
    mail_id = post_mail(client)
    sql(
        "INSERT INTO webhook_outbox (message_id, event_type, email_id, payload, attempts, "
        "last_error) VALUES ('msg_1', 'mail.sent', :id, '{}', 1, "
        "'HTTP 503: busy')",
        id=mail_id,
    )
    webhook = sql("SELECT id FROM webhook_outbox")[0]["id"]
    sql(
        "INSERT INTO webhook_attempt (webhook_id, status_code, error, duration_ms) "
        "VALUES (:id, 503, 'HTTP 503: busy', 12)",
        id=webhook,
    )
    listing = client.get("/admin/webhook/").get_data(as_text=True)
    assert "mail.sent" in listing and "HTTP 503: busy" in listing
    details = client.get(f"/admin/webhook/details/?id={webhook}").get_data(as_text=True)
    assert re.search(r"<td>503</td><td>12</td><td>HTTP 503: busy</td>", details)
