"""The dashboard (with each provider's weight, cap and rate): the JSON it polls has every panel
with the right numbers, the page and the chart are served under the admin's policy, and a
breaker opened by hand is recorded, shown, and obeyed by a real worker until it is closed by
hand."""

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from integration.admin.pages import (
    OPERATOR,
    csrf_token,
    listed_subjects,
    log_in,
    post_mail,
    provider_row,
)
from mailer.queue import counts, heartbeats
from mailer.queue import dashboard as panels
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
    assert set(data) == {
        "now",
        "counts",
        "series",
        "rates",
        "queue",
        "providers",
        "workers",
        "gone_workers",
        "alerts",
    }
    assert set(data["counts"]) == set(STATUSES)
    assert set(data["series"]) == {"minutes", "sent", "failed", "bounced"}
    assert len(data["series"]["minutes"]) == 60
    assert set(data["queue"]) >= {"oldest_due_age", "backoff", "backoff_count", "scheduled"}
    assert [p["name"] for p in data["providers"]["providers"]] == ["mailgun", "sendgrid"]
    assert data["workers"] == data["gone_workers"] == data["alerts"] == []


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
    scheduled = post_mail(ops, subject="tomorrow")
    sql(
        "UPDATE email SET status = 'scheduled', next_attempt_at = now() + interval '1 day' "
        "WHERE id = :id",
        id=uuid.UUID(scheduled),
    )
    data = snapshot(ops)
    assert {k: v for k, v in data["counts"].items() if v} == {
        "sent": 2,
        "failed": 1,
        "bounced": 1,
        "queued": 2,
        "sending": 1,
        "scheduled": 1,
    }
    series = data["series"]
    assert sum(series["sent"]) == 3 and sum(series["failed"]) == 1
    assert sum(series["bounced"]) == 1
    assert series["sent"][-3] == 2 and series["sent"][-1] == 1  # two minutes ago, and now
    queue = data["queue"]
    assert 42 <= queue["oldest_due_age"] < 60
    # Backoff (trouble) apart from mail scheduled by its client (normal).
    [backoff] = queue["backoff"]
    assert (backoff["id"], backoff["attempts"], backoff["last_error"]) == (ids[4], 2, "HTTP 503")
    assert 80 < backoff["due_in"] <= 90 and queue["backoff_count"] == 1
    assert [m["id"] for m in queue["scheduled"]] == [scheduled]
    # Sent per minute: the mean of the last five whole minutes (two, two minutes ago).
    assert data["rates"] == {"sent": 0.4, "failed": 0.0, "bounced": 0.0}
    [stuck] = queue["expired_leases"]
    assert (stuck["id"], stuck["locked_by"]) == (ids[5], "w-dead")
    assert stuck["expired_for"] >= 60
    page = ops.get("/admin/").get_data(as_text=True)
    assert re.search(rf'<tr data-mail="{ids[4]}">', page)  # the lists on the page as well
    assert re.search(rf'<tr data-mail="{ids[5]}">', page)
    assert re.search(rf'<tr data-mail="{scheduled}">', page)
    assert '<td class="num" data-rate="sent" data-bind="rates.sent">0.4</td>' in page
    # Each list's "see all" is the mail list filtered alike.
    see_all = re.search(r'id="dash-backoff-all" href="([^"]+)"', page).group(1)
    assert listed_subjects(ops, see_all.replace("/admin/email/", "").replace("&amp;", "&")) == [
        "mail 4"
    ]
    see_all = re.search(r'id="dash-scheduled-all" href="([^"]+)"', page).group(1)
    assert listed_subjects(ops, see_all.replace("/admin/email/", "")) == ["tomorrow"]


def test_the_chart_counts_a_minute_once_it_is_over(ops, sql):
    ids = [uuid.UUID(post_mail(ops, subject=f"mail {n}")) for n in range(3)]
    sent = "UPDATE email SET status = 'sent', sent_at = now() - :ago * interval '1 minute' "
    sql(sent + "WHERE id = :id", ago=5, id=ids[0])
    assert snapshot(ops)["series"]["sent"][-6:] == [1, 0, 0, 0, 0, 0]
    # Mail counted in minutes already read: five minutes ago (over, and kept as it was counted)
    # and a minute ago (live: the last two minutes are counted at every refresh).
    sql(sent + "WHERE id = :id", ago=5, id=ids[1])
    sql(sent + "WHERE id = :id", ago=1, id=ids[2])
    assert snapshot(ops)["series"]["sent"][-6:] == [1, 0, 0, 0, 1, 0]
    svg = ops.get("/admin/dashboard/chart.svg").get_data(as_text=True)
    assert "sent: 2 in the hour" in svg  # the chart reads the same minutes
    page = ops.get("/admin/").get_data(as_text=True)
    assert 'id="dash-series-note"' in page and "The last 2 minutes are counted at each" in page


def plan(app, statement, **params):
    """PostgreSQL's plan of ``statement`` in the test's transaction, with sequential and bitmap
    scans discouraged, so that it shows what the indexes can do rather than what a few rows
    make cheapest."""
    conn = app.extensions["test_connection"]
    trial = conn.begin_nested()
    try:
        for setting in ("enable_seqscan", "enable_bitmapscan"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
        return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params))
    finally:
        trial.rollback()


def test_each_panel_reads_an_index_that_matches_its_question(app, ops, sql):
    # 4,000 live mails, due or scheduled, and one in backoff, analyzed in the test's transaction:
    # only the partial indexes narrow the mail in backoff, and the test mail, down to a few rows.
    sql(
        "INSERT INTO email (id, status, from_address, to_address, recipients, subject, "
        "attempts, next_attempt_at) SELECT gen_random_uuid(), "
        "CASE WHEN n % 2 = 0 THEN 'queued' ELSE 'scheduled' END, 'a@example.com', "
        "ARRAY['b@example.com'], ARRAY['b@example.com'], 'bulk', 0, "
        "now() + CASE WHEN n % 2 = 0 THEN -1 ELSE 1 END * interval '1 hour' "
        "FROM generate_series(1, 4000) AS n"
    )
    post_mail(ops, subject="in backoff")
    sql(
        "UPDATE email SET attempts = 1, next_attempt_at = now() + interval '1 minute' "
        "WHERE subject = 'in backoff'"
    )
    sql("ANALYZE email")
    until = datetime.now(UTC).replace(second=0, microsecond=0)
    series = plan(app, panels.SQL.minute_series, since=until - timedelta(minutes=1), until=until)
    assert "Index Only Scan using ix_email_sent_at" in series, series
    backoff = plan(app, panels.SQL.backoff_count, cap=10_000)
    assert "Index Only Scan using ix_email_backoff" in backoff, backoff
    assert "ix_email_backoff" in plan(app, panels.SQL.backoff, limit=10)
    # The last attempt rows by the primary key, walked back: a LIMIT, no parallel workers.
    for statement, params in (
        (panels.SQL.provider_stats, {"window": 5000, "failures": 5}),
        (panels.SQL.failure_groups, {"window": 5000, "limit": 10}),
    ):
        shown = plan(app, statement, **params)
        assert "Index Scan Backward using delivery_attempt_pkey" in shown, shown
        assert "Gather" not in shown, shown
    # The list's count: the ledger, and test mail through its own index.
    count = plan(app, counts.SQL.mail_count, statuses=["queued", "failed"])
    assert "Index Only Scan using ix_email_test" in count, count


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
    assert sendgrid["last_error"] == "HTTP 503 from sendgrid" and sendgrid["last_error_at"]
    page = ops.get("/admin/").get_data(as_text=True)
    shown = provider_row(page, "mailgun")
    assert (shown["weight"], shown["rate_limit"], shown["current_rate"]) == ("3.0", "50", "7")
    assert provider_row(page, "sendgrid")["last_error_at"].endswith(" UTC")


def test_failures_are_grouped_by_provider_outcome_and_reason(ops, sql):
    mail_id = uuid.UUID(post_mail(ops))
    sql(
        "INSERT INTO delivery_attempt (email_id, number, provider, outcome, status_code, "
        "duration_ms, error, created_at) VALUES "
        "(:id, 1, 'sendgrid', 'unavailable', 503, 50, 'HTTP 503', now() - interval '1 minute'),"
        "(:id, 2, 'sendgrid', 'unavailable', 503, 50, 'HTTP 503', now()),"
        "(:id, 3, 'sendgrid', 'unavailable', 503, 50, 'HTTP 503', now() - interval '2 minutes'),"
        "(:id, 4, 'mailgun', 'rejected', 400, 50, 'to parameter is not a valid address', "
        " now() - interval '5 minutes'),"
        "(:id, 5, 'mailgun', 'sent', 200, 50, NULL, now())",
        id=mail_id,
    )
    groups = snapshot(ops)["providers"]["failure_groups"]
    assert [(g["provider"], g["outcome"], g["error"], g["count"]) for g in groups] == [
        ("sendgrid", "unavailable", "HTTP 503", 3),
        ("mailgun", "rejected", "to parameter is not a valid address", 1),
    ]
    page = ops.get("/admin/").get_data(as_text=True)
    table = re.search(r'id="dash-provider-failures">.*?</table>', page, re.S).group(0)
    assert table.count('<tr data-provider="sendgrid">') == 1  # one row, not three


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
    # Only the button that applies: Close on the open breaker, Open (with its reason) on the
    # closed one.
    assert re.search(r'data-breaker-form="open" data-provider="mailgun"\s+hidden', page)
    assert re.search(r'data-breaker-form="close" data-provider="mailgun"\s+data-confirm', page)
    assert re.search(r'data-breaker-form="close" data-provider="sendgrid"\s+hidden', page)
    assert "mailgun is held open by admin:ops" in page  # the banner
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


def test_a_recovered_breaker_shows_no_last_error(ops, sql):
    sql(
        "INSERT INTO provider_state (name, state, consecutive_failures, cooldown, last_error, "
        "updated_at) VALUES ('mailgun', 'closed', 0, 0, 'HTTP 503 from mailgun', now())"
    )
    [mailgun] = [p for p in snapshot(ops)["providers"]["providers"] if p["name"] == "mailgun"]
    assert (mailgun["last_error"], mailgun["last_error_at"]) == (None, None)
    assert provider_row(ops.get("/admin/").get_data(as_text=True), "mailgun")["last_error"] == ""
    # Opened by hand afterwards, for maintenance: the old error, long recovered, stays gone.
    assert breaker(ops, "mailgun", "open", "planned maintenance").status_code == 302
    [mailgun] = [p for p in snapshot(ops)["providers"]["providers"] if p["name"] == "mailgun"]
    assert mailgun["state"] == "open" and mailgun["opened_by_hand"]
    assert (mailgun["last_error"], mailgun["last_error_at"]) == (None, None)


# --- Workers gone while holding mail --------------------------------------------------------


@pytest.fixture
def gone_worker(app, ops, sql):
    """Worker ``w-gone`` stopped beating a minute ago holding two mails whose leases run for
    ten more minutes; ``w-live`` beats and holds one. Returns the mails' ids by holder."""
    conn = app.extensions["test_connection"]
    heartbeats.beat(conn, "w-gone", host="h", pid=1)
    heartbeats.beat(conn, "w-live", host="h", pid=2)
    sql("UPDATE worker_heartbeat SET last_seen = now() - interval '1 minute' WHERE name = 'w-gone'")
    held = {"w-gone": [post_mail(ops, subject=f"held {n}") for n in range(2)]}
    held["w-live"] = [post_mail(ops, subject="in flight")]
    for worker, ids in held.items():
        sql(
            "UPDATE email SET status = 'sending', locked_by = :worker, "
            "locked_until = now() + interval '10 minutes' WHERE id = ANY(:ids)",
            worker=worker,
            ids=[uuid.UUID(i) for i in ids],
        )
    return held


def test_a_worker_gone_shows_with_its_mail_before_its_leases_expire(ops, gone_worker):
    data = snapshot(ops)
    [gone] = data["gone_workers"]
    assert (gone["name"], gone["held"]) == ("w-gone", 2) and gone["silent_for"] >= 60
    assert sorted(m["id"] for m in gone["mail"]) == sorted(gone_worker["w-gone"])
    assert data["queue"]["expired_leases"] == []  # the leases run on
    assert "worker w-gone is gone holding 2 mail" in data["alerts"]
    page = ops.get("/admin/").get_data(as_text=True)
    gone_table = re.search(r'id="dash-gone-workers">.*?</table>', page, re.S).group(0)
    assert '<tr data-gone-worker="w-gone">' in gone_table and "w-live" not in gone_table
    # The list marks its mail, and only its.
    listing = ops.get("/admin/email/").get_data(as_text=True)
    assert listing.count('data-worker-gone="w-gone"') == 2
    assert 'data-worker-gone="w-live"' not in listing


def test_one_click_releases_the_mail_of_a_worker_gone_recorded_with_the_operator(
    ops, sql, gone_worker
):
    token = csrf_token(ops, "/admin/")
    assert ops.post("/admin/workers/w-gone/release", data={}).status_code == 302  # no token
    assert sql("SELECT count(*) AS n FROM email WHERE status = 'sending'")[0]["n"] == 3
    answer = ops.post("/admin/workers/w-gone/release", data={"csrf_token": token})
    assert answer.status_code == 302
    rows = sql("SELECT id::text AS id, status FROM email ORDER BY subject")
    assert {r["id"]: r["status"] for r in rows} == {
        **{i: "queued" for i in gone_worker["w-gone"]},
        gone_worker["w-live"][0]: "sending",
    }
    logged = sql("SELECT outcome, actor FROM delivery_attempt ORDER BY id")
    assert [(r["outcome"], r["actor"]) for r in logged] == [("released", OPERATOR)] * 2
    page = ops.get("/admin/").get_data(as_text=True)
    assert "2 mails held by w-gone released to the queue." in page
    # A live worker's mail is never released this way.
    ops.post("/admin/workers/w-live/release", data={"csrf_token": token})
    assert sql("SELECT count(*) AS n FROM email WHERE status = 'sending'")[0]["n"] == 1
