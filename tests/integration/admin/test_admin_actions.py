"""The admin that acts: every action, single on the mail's page and bulk
on the list, asks for confirmation, changes the rows it should and no others, and is recorded
with the operator's name; the CSV export streams the filtered list; the HTML body is shown in
a sandbox; the date filter reads UTC. All through the admin's real routes, logged in."""

import base64
import csv
import html
import io
import json
import re
import uuid

import pytest

from integration.admin.pages import (
    OPERATOR,
    csrf_token,
    details,
    listed_subjects,
    log_in,
    post_mail,
    timeline,
)
from mailer.admin import views as admin
from mailer.queue import heartbeats

ATTACHMENT = {
    "filename": "terms.pdf",
    "content_type": "application/pdf",
    "content": base64.b64encode(b"%PDF-1.4 terms").decode(),
}


@pytest.fixture
def ops(app, client):
    """The test client, logged in to the admin as user ``ops``."""
    return log_in(app, client)


def act(client, name, *ids, single=False):
    """Post the mail view's action ``name`` for ``ids`` with a valid CSRF token."""
    data = {
        "action": name,
        "rowid": list(ids),
        "url": "/admin/email/",
        "csrf_token": csrf_token(client, "/admin/email/"),
    }
    if single:
        data["single"] = "1"
    return client.post("/admin/email/action/", data=data)


def log_of(sql, mail_id):
    """The mail's log rows (attempts and actions), oldest first."""
    return sql(
        "SELECT number, outcome, actor, error, response FROM delivery_attempt "
        "WHERE email_id = :id ORDER BY id",
        id=uuid.UUID(str(mail_id)),
    )


def row_of(sql, mail_id):
    """The mail's row."""
    [row] = sql(
        "SELECT *, next_attempt_at <= now() AS due FROM email WHERE id = :id",
        id=uuid.UUID(str(mail_id)),
    )
    return row


def flashed(client):
    """The messages the admin flashed on the list page."""
    return client.get("/admin/email/").get_data(as_text=True)


def test_the_admin_needs_the_login(app, client):
    app.config.update(ADMIN_USERNAME="ops", ADMIN_PASSWORD="s3cret")
    for path in (
        "/admin/",
        "/admin/dashboard.json",
        "/admin/email/export.csv",
        "/admin/dashboard/chart.svg",
    ):
        assert client.get(path).status_code == 401, path


# --- Confirmation ---------------------------------------------------------------------------


def test_every_bulk_action_asks_for_confirmation(ops):
    page = ops.get("/admin/email/").get_data(as_text=True)
    confirmations = json.loads(
        html.unescape(
            re.search(
                r'<div id="actions-confirmation-data" class="d-none">(.*?)</div>', page
            ).group(1)
        )
    )
    names = ["retry", "cancel", "send_now", "resend", "release"]
    for name in names:
        assert re.search(rf'<a class="dropdown-item" href="#" data-action="{name}">', page), name
        assert len(confirmations[name]) > 20, name  # Flask-Admin's actions.js confirm()s it
    assert "modelActions.execute" in page


@pytest.mark.parametrize(
    "status, offered",
    [
        ("failed", ["retry"]),
        ("cancelled", ["retry"]),
        ("sent", ["resend"]),
        ("delivered", ["resend"]),
        ("queued", ["cancel"]),
    ],
)
def test_the_mail_page_offers_what_applies_with_a_confirmation(ops, sql, status, offered):
    mail_id = post_mail(ops)
    sql("UPDATE email SET status = :status WHERE id = :id", status=status, id=uuid.UUID(mail_id))
    page = ops.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    forms = re.findall(
        r'<form method="POST" action="/admin/email/action/" data-confirm="([^"]+)"'
        r'\s+data-action-form="(\w+)">',
        page,
    )
    assert [name for _, name in forms] == offered
    assert all(len(question) > 20 for question, _ in forms)
    assert '<script src="/admin/assets/confirm.js">' in page  # binds data-confirm (no inline JS)


def test_confirm_script_is_served_and_asks(ops):
    with ops.get("/admin/assets/confirm.js") as response:
        script = response.get_data(as_text=True)
    assert "window.confirm" in script and "data-confirm" in script and "preventDefault" in script


# --- Retry and cancel, recorded with who ----------------------------------------------------


def test_retry_and_cancel_are_recorded_with_the_operator(ops, sql):
    failed = post_mail(ops)
    waiting = post_mail(ops)
    sql("UPDATE email SET status = 'failed', attempts = 3 WHERE id = :id", id=uuid.UUID(failed))
    assert act(ops, "retry", failed, single=True).status_code == 302
    assert act(ops, "cancel", waiting).status_code == 302
    assert row_of(sql, failed)["status"] == "queued"
    assert row_of(sql, waiting)["status"] == "cancelled"
    assert [(r["outcome"], r["actor"]) for r in log_of(sql, failed)] == [("retried", OPERATOR)]
    assert [(r["outcome"], r["actor"]) for r in log_of(sql, waiting)] == [("cancelled", OPERATOR)]
    log = timeline(ops.get(f"/admin/email/details/?id={failed}").get_data(as_text=True))
    assert [(e["kind"], e["what"], e["actor"], e["provider"]) for e in log] == [
        ("action", "retried", OPERATOR, "")  # the operator in the actor column, no provider
    ]


# --- Send now -------------------------------------------------------------------------------


def test_send_now_makes_mail_in_backoff_and_scheduled_mail_due(ops, sql):
    backoff = post_mail(ops, subject="backoff")
    scheduled = post_mail(ops, subject="scheduled")
    due = post_mail(ops, subject="due")
    sql(
        "UPDATE email SET attempts = 2, last_error = 'HTTP 503', "
        "next_attempt_at = now() + interval '10 minutes' WHERE id = :id",
        id=uuid.UUID(backoff),
    )
    sql(
        "UPDATE email SET status = 'scheduled', next_attempt_at = now() + interval '1 day' "
        "WHERE id = :id",
        id=uuid.UUID(scheduled),
    )
    page = ops.get(f"/admin/email/details/?id={backoff}").get_data(as_text=True)
    assert 'data-action-form="send_now"' in page and 'data-action-form="cancel"' in page
    act(ops, "send_now", backoff, scheduled, due)
    assert "2 mails made due now; 1 not waiting for a later time was left alone." in (flashed(ops))
    for mail_id in (backoff, scheduled):
        row = row_of(sql, mail_id)
        assert row["status"] == "queued" and row["due"], mail_id
        assert [(r["outcome"], r["actor"]) for r in log_of(sql, mail_id)] == [
            ("send_now", OPERATOR)
        ]
    assert log_of(sql, due) == []
    assert row_of(sql, backoff)["attempts"] == 2  # no attempt spent


def test_send_now_lets_a_worker_send_it_at_once(ops, sql, sandbox, run_worker):
    mail_id = post_mail(ops)
    sql(
        "UPDATE email SET next_attempt_at = now() + interval '1 hour' WHERE id = :id",
        id=uuid.UUID(mail_id),
    )
    run_worker()  # nothing is due: the burst ends without sending
    assert sandbox.messages() == []
    act(ops, "send_now", mail_id)
    run_worker()
    assert row_of(sql, mail_id)["status"] == "sent"
    assert len(sandbox.messages("mailgun")) == 1


# --- Resend ---------------------------------------------------------------------------------


def test_resend_copies_a_sent_mail_into_a_new_one_linked_both_ways(ops, sql, mail):
    body = {
        **mail,
        "cc": "boss@example.com",
        "html": "<p>Hi</p>",
        "tags": ["spring"],
        "metadata": {"user": "42"},
        "headers": {"X-Campaign": "spring"},
        "attachments": [ATTACHMENT],
    }
    original = ops.post("/mail", json=body).get_json()["id"]
    sql(
        "UPDATE email SET status = 'delivered', attempts = 1, provider = 'mailgun', "
        "sent_at = now() WHERE id = :id",
        id=uuid.UUID(original),
    )
    response = act(ops, "resend", original, single=True)
    [new] = [r for r in sql("SELECT * FROM email WHERE id <> :id", id=uuid.UUID(original))]
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/email/details/?id={new['id']}")
    old = row_of(sql, original)
    assert old["status"] == "delivered"  # the original keeps its history
    assert new["status"] == "queued" and new["attempts"] == 0 and new["provider"] is None
    for column in (
        "from_address",
        "to_address",
        "cc",
        "subject",
        "text",
        "html",
        "headers",
        "metadata",
        "tags",
        "recipients",
    ):
        assert new[column] == old[column], column
    files = sql(
        "SELECT email_id, filename, content_type, size, content FROM attachment "
        "ORDER BY email_id = :id",
        id=uuid.UUID(original),
    )
    assert [bytes(f["content"]) for f in files] == [b"%PDF-1.4 terms"] * 2
    assert {f["email_id"] for f in files} == {new["id"], old["id"]}
    [resent] = log_of(sql, original)
    assert (resent["outcome"], resent["actor"]) == ("resent", OPERATOR)
    assert resent["response"] == {"resent_as": str(new["id"])}
    [resent_from] = log_of(sql, new["id"])
    assert (resent_from["outcome"], resent_from["actor"]) == ("resent_from", OPERATOR)
    assert resent_from["response"] == {"resent_from": original}
    # Each page links to the other; the API's log says the same.
    page = ops.get(f"/admin/email/details/?id={original}").get_data(as_text=True)
    assert f'href="/admin/email/details/?id={new["id"]}" data-link="resent_as"' in page
    page = ops.get(f"/admin/email/details/?id={new['id']}").get_data(as_text=True)
    assert f'href="/admin/email/details/?id={original}" data-link="resent_from"' in page
    assert ops.get(f"/mail/{new['id']}").get_json()["attempt_log"][0]["outcome"] == ("resent_from")


def test_resend_is_disabled_with_the_reason_when_every_recipient_is_suppressed(ops, sql):
    mail_id = post_mail(ops, to="gone@example.com")
    sql("UPDATE email SET status = 'bounced' WHERE id = :id", id=uuid.UUID(mail_id))

    def page():
        return ops.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)

    assert re.search(r'id="action-resend"\s+data-action="resend">', page())  # offered, enabled
    added = ops.post("/suppressions", json={"address": "gone@example.com", "reason": "bounce"})
    assert added.status_code == 201
    shown = page()
    button = re.search(r'id="action-resend"\s+data-action="resend" disabled title="([^"]+)"', shown)
    assert button, shown
    assert "gone@example.com" in button.group(1) and "suppression list" in button.group(1)
    assert 'id="why-not-resend"' in shown  # the reason is written out, not only in a tooltip


def test_resend_is_only_for_mail_a_provider_took(ops, sql):
    queued = post_mail(ops)
    failed = post_mail(ops)
    sql("UPDATE email SET status = 'failed' WHERE id = :id", id=uuid.UUID(failed))
    act(ops, "resend", queued, failed)
    assert len(sql("SELECT id FROM email")) == 2
    assert "0 mails resent as new mail; 2 not sent yet were left alone." in flashed(ops)


def test_a_resent_mail_is_sent_with_its_attachment(ops, sql, sandbox, run_worker, mail):
    original = ops.post("/mail", json={**mail, "attachments": [ATTACHMENT]}).get_json()["id"]
    run_worker()
    act(ops, "resend", original)
    run_worker()
    assert {row["status"] for row in sql("SELECT status FROM email")} == {"sent"}
    received = sandbox.messages("mailgun")
    assert len(received) == 2
    assert [m["attachments"][0]["filename"] for m in received] == ["terms.pdf"] * 2


def test_a_resent_mail_keeps_its_inline_part_and_has_a_message_id_of_its_own(
    ops, sql, sandbox, run_worker, mail
):
    logo = {**ATTACHMENT, "filename": "logo.png", "content_id": "logo@example.com"}
    original = ops.post("/mail", json={**mail, "attachments": [logo]}).get_json()["id"]
    run_worker(PROVIDERS="smtp")
    act(ops, "resend", original)
    run_worker(PROVIDERS="smtp")
    [copy_id] = [row["id"] for row in sql("SELECT id::text FROM email") if row["id"] != original]
    assert ops.get(f"/mail/{copy_id}").get_json()["attachments"][0]["content_id"] == (
        "logo@example.com"
    )
    first, copy = sandbox.messages("smtp")
    assert [(f["disposition"], f["content_id"]) for f in copy["attachments"]] == [
        ("inline", "logo@example.com")
    ]
    assert (first["message_id"], copy["message_id"]) == (
        f"<{original}@example.com>",
        f"<{copy_id}@example.com>",
    )


# --- Release --------------------------------------------------------------------------------


@pytest.fixture
def sending(ops, sql):
    """Mail in ``sending``: lease expired; lease running but its worker gone (no heartbeat);
    lease running and its worker alive. Their ids."""
    ids = {name: post_mail(ops, subject=name) for name in ("expired", "orphan", "live")}
    sql(
        "UPDATE email SET status = 'sending', attempts = 1, locked_by = 'w-dead', "
        "locked_until = now() - interval '1 minute' WHERE id = :id",
        id=uuid.UUID(ids["expired"]),
    )
    sql(
        "UPDATE email SET status = 'sending', attempts = 1, locked_by = 'w-gone', "
        "locked_until = now() + interval '5 minutes' WHERE id = :id",
        id=uuid.UUID(ids["orphan"]),
    )
    sql(
        "UPDATE email SET status = 'sending', attempts = 1, locked_by = 'w-live', "
        "locked_until = now() + interval '5 minutes' WHERE id = :id",
        id=uuid.UUID(ids["live"]),
    )
    with ops.application.app_context():
        heartbeats.beat(ops.application.extensions["test_connection"], "w-live", in_flight=1)
    return ids


def test_release_hands_back_mail_whose_lease_expired_or_worker_is_gone(ops, sql, sending):
    page = ops.get(f"/admin/email/details/?id={sending['live']}").get_data(as_text=True)
    assert 'data-action-form="release"' not in page
    page = ops.get(f"/admin/email/details/?id={sending['orphan']}").get_data(as_text=True)
    assert 'data-action-form="release"' in page
    act(ops, "release", *sending.values())
    assert "2 mails released to the queue; 1 not stuck" in flashed(ops)
    for name in ("expired", "orphan"):
        row = row_of(sql, sending[name])
        assert (row["status"], row["locked_by"], row["attempts"], row["due"]) == (
            "queued",
            None,
            2,
            True,
        ), name
        [entry] = log_of(sql, sending[name])
        assert (entry["outcome"], entry["actor"], entry["number"]) == ("released", OPERATOR, 2)
    assert row_of(sql, sending["live"])["status"] == "sending"
    assert log_of(sql, sending["live"]) == []


# --- Detail page: the HTML body in a sandbox ------------------------------------------------


def test_the_html_body_is_shown_in_a_sandbox_beside_the_text(ops, mail):
    hostile = (
        '<p style="color: red">Hi</p><script>alert(1)</script>'
        '<img src="http://tracker.example/p.gif">"quoted" & <b>bold</b>'
    )
    mail_id = ops.post("/mail", json={**mail, "html": hostile}).get_json()["id"]
    page = ops.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    frame = re.search(r"<iframe[^>]*>", page).group(0)
    assert ' sandbox="" ' in frame  # no allow-scripts, no allow-same-origin: nothing runs
    source = html.unescape(re.search(r' src="([^"]*)"', frame).group(1))
    assert source == f"/admin/email/{mail_id}/body.html"
    body = ops.get(source)
    assert body.get_data(as_text=True) == hostile  # as sent, its inline styles too
    policy = body.headers["Content-Security-Policy"]
    # Inline styles and data: images only; sandboxed (no script, form, popup) even when opened
    # on its own; framed by the admin's own pages only.
    assert policy.startswith("default-src 'none'; img-src data:; style-src 'unsafe-inline';")
    assert "; sandbox;" in policy and "frame-ancestors 'self'" in policy
    assert "script-src" not in policy and body.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "<script>alert(1)</script>" not in page  # the page shows it only as escaped source
    text = re.search(r'<pre class="mail-body" id="mail-text">(.*?)</pre>', page, re.S).group(1)
    assert text == "Plain body"


def test_a_mail_without_html_says_so(ops):
    mail_id = post_mail(ops)
    page = ops.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    assert 'id="mail-html-none"' in page and "<iframe" not in page


def test_details_show_headers_tags_metadata_and_attachments(ops, mail):
    body = {
        **mail,
        "tags": ["spring"],
        "metadata": {"user": "42"},
        "headers": {"X-Campaign": "spring-sale"},
        "attachments": [ATTACHMENT],
    }
    mail_id = ops.post("/mail", json=body).get_json()["id"]
    shown = details(ops, mail_id)
    assert "X-Campaign" in shown["Headers"] and "spring-sale" in shown["Headers"]
    assert shown["Tags"] == "spring"
    assert '"user": "42"' in shown["Metadata"]
    assert shown["Attachments"] == "terms.pdf (application/pdf, 14 bytes)"


# --- Times and the date filter in UTC -------------------------------------------------------


def test_the_date_filter_reads_utc_whatever_the_session_zone(ops, sql):
    mail_id = post_mail(ops, subject="dated")
    sql(
        "UPDATE email SET created_at = '2026-01-02 03:04:05+00' WHERE id = :id",
        id=uuid.UUID(mail_id),
    )
    sql("SET TIME ZONE 'Asia/Tokyo'")  # the database session's zone must not matter
    assert listed_subjects(ops, "?flt0_created_at_greater_than=2026-01-02+03:00:00") == ["dated"]
    assert listed_subjects(ops, "?flt0_created_at_greater_than=2026-01-02+03:10:00") == []
    assert listed_subjects(
        ops, "?flt0_created_at_between=2026-01-02+03:04:00+to+2026-01-02+03:05:00"
    ) == ["dated"]
    assert details(ops, mail_id)["Created At"] == "2026-01-02 03:04:05 UTC"


# --- CSV export -----------------------------------------------------------------------------


def export(client, query=""):
    """The CSV export of the list with ``query``: (response, rows as dicts)."""
    response = client.get(f"/admin/email/export.csv{query}")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    return response, rows


def test_csv_export_streams_the_filtered_list(ops, sql, monkeypatch):
    monkeypatch.setattr(admin, "EXPORT_PAGE", 2)  # several keyset pages from five mails
    ids = [post_mail(ops, subject=f'failed, "number" {n}') for n in range(5)]
    post_mail(ops, subject="still queued")
    sql(
        "UPDATE email SET status = 'failed', last_error = 'HTTP 550', "
        "created_at = now() - make_interval(secs => n) "
        "FROM unnest(CAST(:ids AS uuid[])) WITH ORDINALITY AS t(id, n) WHERE email.id = t.id",
        ids=ids,
    )
    page = ops.get("/admin/email/?flt0_status_equals=failed").get_data(as_text=True)
    assert 'id="export-csv"' in page and "export.csv?flt0_status_equals=failed" in page
    response, rows = export(ops, "?flt0_status_equals=failed")
    assert response.status_code == 200
    assert "Content-Length" not in response.headers  # streamed, not built in memory
    assert response.mimetype == "text/csv"
    assert "attachment; filename=" in response.headers["Content-Disposition"]
    assert [row["id"] for row in rows] == ids  # newest first, each once, across the pages
    assert rows[0]["subject"] == 'failed, "number" 0' and rows[0]["last_error"] == "HTTP 550"
    assert rows[0]["to_address"] == "rcpt@example.com"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows[0]["created_at"])
    _, searched = export(ops, "?search=still")
    assert [row["subject"] for row in searched] == ["still queued"]
    _, everything = export(ops)
    assert len(everything) == 6


def test_csv_export_carries_each_recipients_bounce_reason(ops, sql):
    bounced = post_mail(ops, subject="bounced", to=["ann@example.com", "bob@example.com"])
    sql(
        "UPDATE email SET status = 'bounced' WHERE id = :id; "
        "INSERT INTO recipient (email_id, address, status, reason) VALUES "
        "(:id, 'ann@example.com', 'delivered', NULL), "
        "(:id, 'bob@example.com', 'bounced', '550 5.1.1 mailbox unknown')",
        id=uuid.UUID(bounced),
    )
    post_mail(ops, subject="plain")
    _, rows = export(ops, "?flt0_status_in_list=bounced,complained")
    assert [(row["id"], row["recipient_reasons"]) for row in rows] == [
        (bounced, "bob@example.com (bounced): 550 5.1.1 mailbox unknown")
    ]


# --- Breakers by hand need the CSRF token too -----------------------------------------------


def test_a_breaker_action_without_the_csrf_token_changes_nothing(ops, sql):
    ops.get("/admin/")
    response = ops.post("/admin/providers/mailgun/open", data={"reason": "x"})
    assert response.status_code == 302
    assert sql("SELECT * FROM provider_action") == []
    assert sql("SELECT * FROM provider_state WHERE held_by IS NOT NULL") == []


def test_a_breaker_of_an_unknown_provider_is_a_404(ops):
    token = csrf_token(ops, "/admin/")
    assert ops.post("/admin/providers/postmark/open", data={"csrf_token": token}).status_code == 404
