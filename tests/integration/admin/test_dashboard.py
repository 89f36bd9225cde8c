"""The dashboard (with each provider's weight, cap and rate): the JSON it polls has every panel
with the right numbers, the page and the chart are served under the admin's policy, and a
breaker opened by hand is recorded, shown, and obeyed by a real worker until it is closed by
hand."""

import re
import uuid

import pytest

from integration.admin.pages import OPERATOR, csrf_token, log_in, post_mail, provider_row
from mailer.queue import heartbeats
from models import STATUSES


@pytest.fixture
def ops(app, client):
    """The test client, logged in to the admin as user ``ops``."""
    return log_in(app, client)


def snapshot(client):
    """The dashboard's JSON."""
    response = client.get("/admin/dashboard.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def test_the_json_has_every_panel(ops):
    data = snapshot(ops)
    assert set(data) == {"now", "counts", "series", "queue", "providers", "workers"}
    assert set(data["counts"]) == set(STATUSES)
    assert set(data["series"]) == {"minutes", "sent", "failed", "bounced"}
    assert len(data["series"]["minutes"]) == 60
    assert set(data["queue"]) >= {"oldest_due_age", "waiting", "waiting_count", "expired_leases"}
    assert [p["name"] for p in data["providers"]["providers"]] == ["mailgun", "sendgrid"]
    assert data["workers"] == []


def test_counts_series_backoff_and_expired_leases(ops, sql):
    ids = [post_mail(ops, subject=f"mail {n}") for n in range(7)]
    uid = [uuid.UUID(i) for i in ids]
    sql(
        "UPDATE email SET status = 'sent', sent_at = now() - interval '2 minutes', "
        "updated_at = now() WHERE id = ANY(:ids)",
        ids=uid[:2],
    )
    sql("UPDATE email SET status = 'failed', updated_at = now() WHERE id = :id", id=uid[2])
    sql(
        "UPDATE email SET status = 'bounced', sent_at = now(), updated_at = now() WHERE id = :id",
        id=uid[3],
    )
    sql(
        "UPDATE email SET attempts = 2, last_error = 'HTTP 503', "
        "next_attempt_at = now() + interval '90 seconds' WHERE id = :id",
        id=uid[4],
    )
    sql(
        "UPDATE email SET status = 'sending', locked_by = 'w-dead', "
        "locked_until = now() - interval '1 minute' WHERE id = :id",
        id=uid[5],
    )
    sql(
        "UPDATE email SET next_attempt_at = now() - interval '42 seconds' WHERE id = :id", id=uid[6]
    )
    data = snapshot(ops)
    assert {k: v for k, v in data["counts"].items() if v} == {
        "sent": 2,
        "failed": 1,
        "bounced": 1,
        "queued": 2,
        "sending": 1,
    }
    series = data["series"]
    assert sum(series["sent"]) == 3 and sum(series["failed"]) == 1
    assert sum(series["bounced"]) == 1
    assert series["sent"][-3] == 2 and series["sent"][-1] == 1  # two minutes ago, and now
    queue = data["queue"]
    assert 42 <= queue["oldest_due_age"] < 60
    [waiting] = queue["waiting"]
    assert (waiting["id"], waiting["attempts"], waiting["last_error"]) == (ids[4], 2, "HTTP 503")
    assert 80 < waiting["due_in"] <= 90 and queue["waiting_count"] == 1
    [stuck] = queue["expired_leases"]
    assert (stuck["id"], stuck["locked_by"]) == (ids[5], "w-dead")
    assert stuck["expired_for"] >= 60
    page = ops.get("/admin/").get_data(as_text=True)
    assert re.search(rf'<tr data-mail="{ids[4]}">', page)  # the lists on the page as well
    assert re.search(rf'<tr data-mail="{ids[5]}">', page)


def test_providers_show_breaker_weight_cap_rate_latency_and_failures(app, ops, sql):
    app.config.update(PROVIDER_WEIGHTS={"mailgun": 3.0}, PROVIDER_RATE_LIMITS={"mailgun": 50})
    mail_id = uuid.UUID(post_mail(ops))
    sql(
        "INSERT INTO provider_state (name, state, consecutive_failures, cooldown, open_until, "
        "last_error, updated_at) VALUES ('sendgrid', 'open', 5, 30, "
        "now() + interval '20 seconds', 'HTTP 503 from sendgrid', now())"
    )
    sql(
        'INSERT INTO provider_rate (name, tokens, "window", granted, last_granted) '
        "VALUES ('mailgun', 1, date_trunc('second', now()), 3, 7)"
    )
    sql(
        "INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, "
        "duration_ms, error) VALUES "
        "(:id, 1, 'mailgun', 'sent', 200, 100, NULL), (:id, 1, 'mailgun', 'sent', 200, 300, NULL),"
        "(:id, 1, 'sendgrid', 'unavailable', 503, 50, 'HTTP 503 from sendgrid')",
        id=mail_id,
    )
    providers = {p["name"]: p for p in snapshot(ops)["providers"]["providers"]}
    mailgun, sendgrid = providers["mailgun"], providers["sendgrid"]
    assert (mailgun["weight"], mailgun["rate_limit"], mailgun["current_rate"]) == (3.0, 50, 7)
    assert (sendgrid["weight"], sendgrid["rate_limit"], sendgrid["current_rate"]) == (
        1.0,
        None,
        None,
    )
    assert (mailgun["calls"], mailgun["failures"], mailgun["latency_avg_ms"]) == (2, 0, 200)
    assert mailgun["latency_p95_ms"] == 300
    assert (sendgrid["state"], sendgrid["usable"], sendgrid["consecutive_failures"]) == (
        "open",
        False,
        5,
    )
    [failure] = sendgrid["recent_failures"]
    assert (failure["outcome"], failure["status_code"], failure["error"]) == (
        "unavailable",
        503,
        "HTTP 503 from sendgrid",
    )
    page = ops.get("/admin/").get_data(as_text=True)
    shown = provider_row(page, "mailgun")
    assert (shown["weight"], shown["rate_limit"], shown["current_rate"]) == ("3.0", "50", "7")
    assert re.search(
        r'<tr data-provider="sendgrid"><td>sendgrid</td><td>[^<]+</td>'
        r"<td>unavailable</td><td>503</td>",
        page,
    )


def test_a_429_pause_shows_until_when(ops, sql):
    sql(
        "INSERT INTO provider_state (name, state, consecutive_failures, cooldown, paused_until, "
        "updated_at) VALUES ('mailgun', 'closed', 0, 0, '2030-01-02 03:04:05+00', now())"
    )
    [mailgun] = [p for p in snapshot(ops)["providers"]["providers"] if p["name"] == "mailgun"]
    assert mailgun["state"] == "paused" and mailgun["paused_until"].startswith("2030-01-02T03:04")
    page = ops.get("/admin/").get_data(as_text=True)
    assert provider_row(page, "mailgun")["paused_until"] == "2030-01-02 03:04:05 UTC"


def test_workers_alive_by_their_heartbeats(app, ops, sql):
    conn = app.extensions["test_connection"]
    heartbeats.beat(conn, "host-a:12:abc", in_flight=3, sent=40, failed=2, host="host-a", pid=12)
    heartbeats.beat(conn, "host-b:13:def", host="host-b", pid=13)
    sql(
        "UPDATE worker_heartbeat SET last_seen = now() - interval '10 minutes' "
        "WHERE name = 'host-b:13:def'"
    )  # stopped beating: gone
    [worker] = snapshot(ops)["workers"]
    assert {k: worker[k] for k in ("name", "host", "pid", "in_flight", "sent", "failed")} == {
        "name": "host-a:12:abc",
        "host": "host-a",
        "pid": 12,
        "in_flight": 3,
        "sent": 40,
        "failed": 2,
    }
    assert worker["started_at"] and worker["last_seen"]
    page = ops.get("/admin/").get_data(as_text=True)
    assert '<tr data-worker="host-a:12:abc">' in page and "host-b:13:def" not in page


def test_the_page_polls_and_the_chart_is_an_svg_of_our_own(ops, sql):
    page = ops.get("/admin/").get_data(as_text=True)
    root = re.search(r'<div id="dashboard"[^>]*>', page).group(0)
    assert 'data-json="/admin/dashboard.json"' in root and 'data-poll-ms="5000"' in root
    assert '<script src="/admin/assets/dashboard.js">' in page
    assert '<img id="dash-chart" class="chart" src="/admin/dashboard/chart.svg"' in page
    with ops.get("/admin/assets/dashboard.js") as script:
        assert "setInterval(poll" in script.get_data(as_text=True)
    mail_id = uuid.UUID(post_mail(ops))
    sql("UPDATE email SET status = 'sent', sent_at = now() WHERE id = :id", id=mail_id)
    chart = ops.get("/admin/dashboard/chart.svg")
    assert chart.mimetype == "image/svg+xml"
    svg = chart.get_data(as_text=True)
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert re.findall(r'data-series="(\w+)"', svg) == ["sent", "failed", "bounced"]
    assert "sent: 1 in the hour" in svg
    assert (
        "<script" not in svg
        and "style=" not in svg
        and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )


# --- A breaker opened and closed by hand ----------------------------------------------------


def breaker(client, provider, action, reason=""):
    """Post the dashboard's form that opens or closes ``provider``'s breaker by hand."""
    token = csrf_token(client, "/admin/")
    return client.post(
        f"/admin/providers/{provider}/{action}", data={"csrf_token": token, "reason": reason}
    )


def test_the_dashboard_offers_the_breaker_forms_with_a_confirmation(ops):
    page = ops.get("/admin/").get_data(as_text=True)
    for provider in ("mailgun", "sendgrid"):
        for action in ("open", "close"):
            form = re.search(
                rf'<form method="POST" action="/admin/providers/{provider}/{action}"'
                r"[^>]*>",
                page,
                re.S,
            ).group(0)
            assert re.search(r'data-confirm="[^"]{20,}"', form), form
            assert f'id="breaker-{action}-{provider}"' in page
    assert '<script src="/admin/assets/confirm.js">' in page


def test_a_breaker_opened_by_hand_is_recorded_and_shown(ops, sql):
    response = breaker(ops, "mailgun", "open", "planned maintenance")
    assert response.status_code == 302
    [state] = sql("SELECT state, held_by, held_at FROM provider_state WHERE name = 'mailgun'")
    assert (state["state"], state["held_by"]) == ("open", OPERATOR) and state["held_at"]
    [logged] = sql("SELECT provider, action, actor, reason, created_at FROM provider_action")
    assert (logged["provider"], logged["action"], logged["actor"], logged["reason"]) == (
        "mailgun",
        "open",
        OPERATOR,
        "planned maintenance",
    )
    providers = snapshot(ops)["providers"]
    [mailgun] = [p for p in providers["providers"] if p["name"] == "mailgun"]
    assert (mailgun["state"], mailgun["usable"]) == ("open", False)
    assert mailgun["opened_by_hand"]["by"] == OPERATOR
    assert mailgun["opened_by_hand"]["reason"] == "planned maintenance"
    assert providers["hand_actions"][0]["actor"] == OPERATOR
    page = ops.get("/admin/").get_data(as_text=True)
    assert "mailgun opened by hand" in page  # the flash
    assert provider_row(page, "mailgun")["opened_by_hand"].startswith(f"by {OPERATOR} at ")
    assert re.search(r'data-breaker-form="open" data-provider="mailgun"[^>]*hidden', page)
    health = ops.get("/health").get_json()
    assert [p["opened_by_hand"]["by"] for p in health["providers"] if p["name"] == "mailgun"] == [
        OPERATOR
    ]
    breaker(ops, "mailgun", "close")
    [state] = sql("SELECT state, held_by FROM provider_state WHERE name = 'mailgun'")
    assert (state["state"], state["held_by"]) == ("closed", None)
    assert [row["action"] for row in sql("SELECT action FROM provider_action ORDER BY id")] == [
        "open",
        "close",
    ]


def test_a_worker_skips_a_provider_opened_by_hand_until_closed_by_hand(
    ops, sql, sandbox, run_worker
):
    breaker(ops, "mailgun", "open", "maintenance")
    post_mail(ops, subject="during")
    run_worker(CIRCUIT_COOLDOWN=0.0)  # no cool-down ends a hand-opened breaker
    assert sandbox.messages("mailgun") == []
    assert len(sandbox.messages("sendgrid")) == 1
    [during] = sql("SELECT status, provider FROM email")
    assert dict(during) == {"status": "sent", "provider": "sendgrid"}
    [held] = sql("SELECT state, held_by FROM provider_state WHERE name = 'mailgun'")
    assert (held["state"], held["held_by"]) == ("open", OPERATOR)  # the worker left it open
    breaker(ops, "mailgun", "close")
    post_mail(ops, subject="after")
    run_worker()
    assert len(sandbox.messages("mailgun")) == 1
    assert sql("SELECT provider FROM email WHERE subject = 'after'")[0]["provider"] == "mailgun"


def test_every_provider_opened_by_hand_is_a_meltdown_and_mail_waits(ops, sql, sandbox, run_worker):
    breaker(ops, "mailgun", "open")
    breaker(ops, "sendgrid", "open")
    post_mail(ops)
    run_worker()
    assert sandbox.messages() == []
    [row] = sql("SELECT status, attempts FROM email")
    assert dict(row) == {"status": "queued", "attempts": 0}  # no attempt spent
    assert snapshot(ops)["providers"]["status"] == "meltdown"


@pytest.mark.parametrize("action", ["open", "close"])
def test_the_breaker_forms_need_the_login(app, client, action):
    app.config.update(ADMIN_USERNAME="ops", ADMIN_PASSWORD="s3cret")
    assert client.post(f"/admin/providers/mailgun/{action}").status_code == 401
