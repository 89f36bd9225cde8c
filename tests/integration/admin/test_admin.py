"""The operators' admin: the dashboard, the mail list, details, create (CSRF) and Retry."""

import html
import json
import re
import uuid
from datetime import UTC

import pytest
from helpers import sample_mail

from integration.admin.pages import (
    csrf_token,
    details,
    listed_subjects,
    post_mail,
    provider_row,
    text_of,
    timeline,
)
from models import STATUSES
from providers import REGISTRY

FORM = {
    "from_address": "Shop <shop@example.com>",
    "to": "one@example.com, two@example.com",
    "cc": "",
    "bcc": "",
    "reply_to": "",
    "subject": "From the admin",
    "text": "Body",
    "html": "",
}


def list_rows(client, query=""):
    """The mail list's rows as {subject: {column: text}}."""
    page = client.get(f"/admin/email/{query}").get_data(as_text=True)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = {
            name: text_of(value)
            for name, value in re.findall(r'<td class="col-(\w+)">(.*?)</td>', row, re.S)
        }
        if "subject" in cells:
            rows[cells["subject"]] = cells
    return rows


# --- Dashboard ------------------------------------------------------------------------------


def dashboard_counts(page):
    """The dashboard's count of each status, as shown."""
    return dict(re.findall(r'data-count="(\w+)"[^>]*>(\d+)</td>', page))


def test_dashboard_shows_counts_and_provider_health(client, sql):
    for _ in range(3):
        post_mail(client)
    failed = post_mail(client)
    sql("UPDATE email SET status = 'failed' WHERE id = :id", id=uuid.UUID(failed))
    sql(
        "INSERT INTO provider_state (name, state, consecutive_failures, cooldown, last_error, "
        "updated_at) VALUES ('mailgun', 'open', 5, 30, 'HTTP 503 from mailgun', now()), "
        "('sendgrid', 'closed', 0, 0, NULL, now())"
    )
    page = client.get("/admin/").get_data(as_text=True)
    counts = dashboard_counts(page)
    assert counts == {**{status: "0" for status in STATUSES}, "queued": "3", "failed": "1"}
    mailgun = provider_row(page, "mailgun")
    assert (mailgun["state"], mailgun["usable"], mailgun["consecutive_failures"]) == (
        "open",
        "no",
        "5",
    )
    assert mailgun["last_error"] == "HTTP 503 from mailgun"
    sendgrid = provider_row(page, "sendgrid")
    assert (sendgrid["state"], sendgrid["usable"], sendgrid["consecutive_failures"]) == (
        "closed",
        "yes",
        "0",
    )
    assert re.search(r'id="meltdown" hidden', page)


def test_dashboard_and_health_agree_with_the_worker_on_meltdown(client, sql):
    # Mailgun open and SendGrid paused by a 429: the worker calls that a meltdown, and so must
    # /health and the dashboard; a pause that has ended no longer counts.
    sql(
        "INSERT INTO provider_state (name, state, consecutive_failures, cooldown, open_until, "
        "paused_until, updated_at) VALUES "
        "('mailgun', 'open', 5, 30, now() + interval '1 minute', NULL, now()), "
        "('sendgrid', 'closed', 0, 0, NULL, now() + interval '1 minute', now())"
    )
    page = client.get("/admin/").get_data(as_text=True)
    assert re.search(r'id="meltdown" >', page)
    # The banner and the page's title say it first, and name each provider out.
    assert re.search(r'id="dash-banner" role="alert" >', page)
    assert "<title>⚠ Meltdown: no provider can take mail (+2) · Dashboard" in page
    assert "<li>mailgun is open</li><li>sendgrid is paused</li>" in page
    assert provider_row(page, "sendgrid")["state"] == "paused"
    assert provider_row(page, "sendgrid")["usable"] == "no"
    health = client.get("/health").get_json()
    assert health["status"] == "meltdown"
    assert {p["name"]: p["state"] for p in health["providers"]} == {
        "mailgun": "open",
        "sendgrid": "paused",
    }
    sql(
        "UPDATE provider_state SET paused_until = now() - interval '1 second' "
        "WHERE name = 'sendgrid'"
    )
    assert client.get("/health").get_json()["status"] == "ok"
    page = client.get("/admin/").get_data(as_text=True)
    assert re.search(r'id="meltdown" hidden', page)
    assert "<title>⚠ mailgun is open · Dashboard · Mail service</title>" in page
    assert provider_row(page, "sendgrid")["state"] == "closed"
    assert provider_row(page, "sendgrid")["usable"] == "yes"


def test_dashboard_before_any_worker(client):
    # Each configured provider is listed, closed, before any worker wrote its breaker.
    page = client.get("/admin/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert provider_row(text, "mailgun")["state"] == "closed"
    assert provider_row(text, "sendgrid")["state"] == "closed"


# --- List, filters, search, details ---------------------------------------------------------


@pytest.fixture
def three_mails(client, sql):
    """A queued, a failed (SendGrid) and a sent (Mailgun) mail; returns their ids."""
    queued = post_mail(client, subject="queued one", to="alice@example.com")
    failed = post_mail(client, subject="failed one", to="bob@example.com")
    sent = post_mail(client, subject="sent one", to="carol@example.com")
    sql(
        "UPDATE email SET status = 'failed', provider = 'sendgrid' WHERE id = :id",
        id=uuid.UUID(failed),
    )
    sql("UPDATE email SET status = 'sent', provider = 'mailgun' WHERE id = :id", id=uuid.UUID(sent))
    return {"queued": queued, "failed": failed, "sent": sent}


def test_list_shows_every_mail(client, three_mails):
    assert listed_subjects(client) == ["failed one", "queued one", "sent one"]


def test_filter_by_status_and_provider(client, three_mails):
    assert listed_subjects(client, "?flt0_status_equals=failed") == ["failed one"]
    assert listed_subjects(client, "?flt0_status_equals=queued") == ["queued one"]
    assert listed_subjects(client, "?flt0_provider_equals=mailgun") == ["sent one"]
    both = "?flt0_status_equals=failed&flt1_provider_equals=mailgun"
    assert listed_subjects(client, both) == []


def listed_count(client, query=""):
    """How many mails the list says it holds (its tab reads "List (3)"; "List" for none)."""
    page = client.get(f"/admin/email/{query}").get_data(as_text=True)
    found = re.search(r'class="nav-link active">List(?: \((\d+)\))?</a>', page)
    return int(found.group(1) or 0)


@pytest.mark.parametrize(
    ("query", "where"),
    [
        ("", "true"),
        ("?flt0_status_equals=queued", "status = 'queued'"),
        ("?flt0_status_in_list=failed,queued,nonsense", "status IN ('failed', 'queued')"),
        ("?flt0_status_not_equal=failed", "status <> 'failed'"),
        (
            "?flt0_status_in_list=failed,queued&flt1_status_not_equal=failed",
            "status = 'queued'",
        ),
        ("?flt0_status_equals=nonsense", "false"),
        # Not counted from the status counts: a search, another filter.
        ("?search=one", "subject LIKE '%one%'"),
        ("?flt0_provider_equals=mailgun", "provider = 'mailgun'"),
        ("?flt0_status_equals=queued&flt1_test_equals=1", "status = 'queued' AND test"),
    ],
)
def test_the_list_counts_live_and_test_mail(client, sql, three_mails, query, where):
    # Test mail is outside the status counts the database keeps for live mail; the list adds it.
    test_mail = post_mail(client, subject="a test one")
    sql("UPDATE email SET test = true WHERE id = :id", id=uuid.UUID(test_mail))
    [row] = sql(f"SELECT count(*) AS n FROM email WHERE {where}")
    assert listed_count(client, query) == row["n"]
    assert row["n"] or where == "false"


def filter_choices(client):
    """The fixed options each filter of the mail list offers, by filter name."""
    page = client.get("/admin/email/").get_data(as_text=True)
    groups = json.loads(
        html.unescape(
            re.search(r'<div id="filter-groups-data" class="d-none">(.*?)</div>', page).group(1)
        )
    )
    return {
        name: [[option[0] for option in f["options"]] if f["options"] else None for f in filters]
        for name, filters in groups.items()
    }


def test_status_and_provider_filters_offer_choices(client):
    choices = filter_choices(client)
    assert choices["Status"] == [list(STATUSES)] * 2 + [None]  # equals, not equal, in list
    assert choices["Provider"][:2] == [list(REGISTRY)] * 2


@pytest.mark.parametrize(
    "query, subjects",
    [
        ("?flt0_status_equals=Failed", ["failed one"]),
        ("?flt0_status_equals=+SENT+", ["sent one"]),
        ("?flt0_status_not_equal=QUEUED", ["failed one", "sent one"]),
        ("?flt0_provider_equals=MailGun", ["sent one"]),
        ("?flt0_provider_not_equal=mailgun", ["failed one"]),
        ("?flt0_provider_empty=1", ["queued one"]),
        ("?flt0_status_equals=bounced", []),
        ("?flt0_status_in_list=Failed,+sent", ["failed one", "sent one"]),
        ("?flt0_status_in_list=bounced,nonsense", []),
    ],
)
def test_status_and_provider_filters_ignore_case(client, three_mails, query, subjects):
    assert listed_subjects(client, query) == subjects


def test_search_covers_cc_and_bcc(client):
    post_mail(client, subject="with cc", cc=["boss@example.com", "Deputy <dep@example.org>"])
    post_mail(client, subject="with bcc", bcc="archive@example.net")
    post_mail(client, subject="plain")
    assert listed_subjects(client, "?search=boss@example.com") == ["with cc"]
    assert listed_subjects(client, "?search=dep@example.org") == ["with cc"]
    assert listed_subjects(client, "?search=archive@example") == ["with bcc"]
    assert listed_subjects(client, "?search=ARCHIVE") == ["with bcc"]


def test_search_by_address_and_subject(client, three_mails):
    assert listed_subjects(client, "?search=bob@example.com") == ["failed one"]
    assert listed_subjects(client, "?search=sent") == ["sent one"]
    assert listed_subjects(client, "?search=sender@example.com") == [
        "failed one",
        "queued one",
        "sent one",
    ]
    assert listed_subjects(client, "?search=nobody") == []


def test_list_escapes_what_clients_sent(client):
    post_mail(client, subject="<script>alert(1)</script>")
    page = client.get("/admin/email/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_details_show_the_attempts(client, sandbox, run_worker):
    mail_id = post_mail(client, html="<b>bold</b>")
    run_worker()
    response = client.get(f"/admin/email/details/?id={mail_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert mail_id in page and "rcpt@example.com" in page
    [attempt] = timeline(page)
    assert (attempt["kind"], attempt["what"], attempt["provider"]) == ("attempt", "sent", "mailgun")
    assert attempt["actor"] != "" and attempt["detail"].startswith("attempt 1, HTTP 200")
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # the html body is shown as source


@pytest.mark.parametrize(
    "mail_id", ["not-a-uuid", str(uuid.uuid4())], ids=["not-a-uuid", "unknown"]
)
def test_details_of_an_unknown_mail(client, mail_id):
    response = client.get(f"/admin/email/details/?id={mail_id}", follow_redirects=True)
    assert response.status_code == 200
    assert "Record does not exist." in response.get_data(as_text=True)


def test_list_with_a_bad_page_number(client, three_mails):
    assert listed_subjects(client, "?page=-1") == ["failed one", "queued one", "sent one"]


@pytest.mark.parametrize(
    "path",
    [
        "/admin/email/?search=%00",
        "/admin/email/?search=bob%00",
        "/admin/email/?flt0_status_equals=failed%00",
        "/admin/email/?flt0_status_not_equal=%00",
        "/admin/email/?flt0_provider_equals=%00",
        "/admin/email/?flt0_created_at_greater_than=2020-01-01+00:00:00%00",
        "/admin/email/?sort=%00",
        "/admin/email/?page=%00",
        "/admin/email/?%00=1",
        "/admin/email/details/?id=%00",
        "/admin/email/new/?url=%00",
        "/admin/?x=%00",
    ],
)
def test_a_nul_in_the_query_is_a_400(client, three_mails, path):
    # PostgreSQL text cannot hold a NUL, so psycopg2 refuses to send one: nothing can match.
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "query",
    [
        "?page=99999999999999999999",
        "?page=184467440737095517",  # times the page size of 50: just past the largest OFFSET
        "?page=99999999999999999999&flt0_status_equals=failed&search=one",
    ],
)
def test_a_page_past_the_end_is_empty(client, three_mails, query):
    assert listed_subjects(client, query) == []


@pytest.mark.parametrize(
    "query",
    [
        "?page=abc",
        "?page_size=0",
        "?page_size=-1",
        "?page_size=99999999999999999999",
        "?sort=99",
        "?sort=-1",
        "?sort=abc",
        "?sort=99999999999999999999",
        "?desc=abc",
        "?flt99_nothing_equals=1",
        "?flt0_status_equals=" + "x" * 10_000,
        "?search=%ff%fe",
        "?search=%25",
        "?search=_",
        "?search=%5C",
    ],
)
def test_other_odd_list_arguments_are_ignored(client, three_mails, query):
    # Flask-Admin ignores what it cannot read (a search for % or _ is a literal one).
    subjects = listed_subjects(client, query)
    assert subjects in (["failed one", "queued one", "sent one"], [])


@pytest.mark.parametrize(
    "query",
    [
        "?flt0_created_at_equals=abc",
        "?flt0_created_at_greater_than=2024-13-01+00:00:00",
        "?flt0_created_at_between=2020-01-01+00:00:00+to+tomorrow",
        "?flt0_created_at_empty=maybe",
    ],
)
def test_a_date_filter_value_that_is_not_a_date_is_a_400(client, three_mails, query):
    # Dropping it (Flask-Admin's default) would list every mail as if it matched.
    response = client.get(f"/admin/email/{query}")
    assert response.status_code == 400
    assert "Invalid Filter Value" in response.get_data(as_text=True)


@pytest.mark.parametrize("value", ["0001-01-01+00:00:00", "9999-12-31+23:59:59"])
def test_a_date_filter_at_the_ends_of_the_calendar(client, three_mails, value):
    assert listed_subjects(client, f"?flt0_created_at_greater_than={value}") in (
        ["failed one", "queued one", "sent one"],
        [],
    )


# --- Create ---------------------------------------------------------------------------------


def test_create_queues_like_the_api(client, sql):
    token = csrf_token(client, "/admin/email/new/")
    response = client.post("/admin/email/new/", data={**FORM, "csrf_token": token})
    assert response.status_code == 302
    [row] = sql("SELECT * FROM email")
    assert row["status"] == "queued" and row["attempts"] == 0
    assert row["from_address"] == "Shop <shop@example.com>"
    assert row["to_address"] == ["one@example.com", "two@example.com"]
    assert row["cc"] == [] and row["html"] is None and row["next_attempt_at"] is not None
    body = client.get(f"/mail/{row['id']}").get_json()
    assert body["status"] == "queued" and body["subject"] == "From the admin"


def test_created_mail_is_delivered(client, sql, sandbox, run_worker):
    token = csrf_token(client, "/admin/email/new/")
    client.post("/admin/email/new/", data={**FORM, "csrf_token": token})
    run_worker()
    [row] = sql("SELECT status, provider FROM email")
    assert dict(row) == {"status": "sent", "provider": "mailgun"}
    [received] = sandbox.messages("mailgun")
    assert received["to"] == ["one@example.com", "two@example.com"]


@pytest.mark.parametrize(
    "field, value, shown",
    [
        ("to", "not-an-address", "not-an-address"),
        ("from_address", "", "This field is required"),
        ("subject", "Hi\r\nBcc: victim@example.com", "line breaks"),
        ("reply_to", "a@example.com, b@example.com", "Give exactly one address"),
    ],
)
def test_create_with_bad_input_shows_the_error_and_stores_nothing(client, sql, field, value, shown):
    token = csrf_token(client, "/admin/email/new/")
    response = client.post("/admin/email/new/", data={**FORM, field: value, "csrf_token": token})
    assert response.status_code == 200
    assert shown in html.unescape(response.get_data(as_text=True))
    assert sql("SELECT id FROM email") == []


def test_create_respects_max_recipients(app, client, sql):
    app.config["MAX_RECIPIENTS"] = 1
    token = csrf_token(client, "/admin/email/new/")
    response = client.post("/admin/email/new/", data={**FORM, "csrf_token": token})
    assert "At most 1 addresses" in response.get_data(as_text=True)
    assert sql("SELECT id FROM email") == []


@pytest.mark.parametrize("token", [None, "", "20990101000000##forged"])
def test_create_without_a_valid_csrf_token_stores_nothing(app, client, sql, token):
    assert app.config["TESTING"] is True  # CSRF must hold in tests too
    client.get("/admin/email/new/")  # a session exists, but the token is missing or forged
    data = FORM if token is None else {**FORM, "csrf_token": token}
    response = client.post("/admin/email/new/", data=data)
    assert response.status_code == 200
    assert "CSRF" in response.get_data(as_text=True)
    assert sql("SELECT id FROM email") == []


def test_csrf_token_of_another_session_is_refused(app, client, sql):
    token = csrf_token(app.test_client(), "/admin/email/new/")
    client.post("/admin/email/new/", data={**FORM, "csrf_token": token})
    assert sql("SELECT id FROM email") == []


# --- Retry ----------------------------------------------------------------------------------


@pytest.fixture
def failed_mail(client, sandbox, run_worker, sql):
    """A mail the provider rejected for good; returns its id."""
    sandbox.configure("mailgun", reject_to="bad")
    mail_id = post_mail(client, to="bad@example.com")
    run_worker()
    [row] = sql("SELECT status, attempts FROM email")
    assert row["status"] == "failed" and row["attempts"] == 1
    sandbox.reset()
    return mail_id


def retry(client, *ids, token=True):
    """Post the list view's Retry action for ``ids``."""
    data = {"action": "retry", "rowid": list(ids), "url": "/admin/email/"}
    if token:
        data["csrf_token"] = csrf_token(client, "/admin/email/")
    return client.post("/admin/email/action/", data=data)


def test_retry_requeues_a_failed_mail(client, failed_mail, sql, sandbox, run_worker):
    response = retry(client, failed_mail)
    assert response.status_code == 302
    [row] = sql("SELECT status, attempts, last_error FROM email")
    assert dict(row) == {"status": "queued", "attempts": 1, "last_error": None}
    assert "1 failed mail queued again." in client.get("/admin/email/").get_data(as_text=True)
    run_worker()
    body = client.get(f"/mail/{failed_mail}").get_json()
    assert body["status"] == "sent" and body["attempts"] == 2
    assert len(sandbox.messages("mailgun")) == 1
    # The count keeps growing across the retry, and the log says who retried.
    log = [(entry["number"], entry["outcome"], entry["actor"]) for entry in body["attempt_log"]]
    assert log[-2:] == [(1, "retried", "admin@127.0.0.1"), (2, "sent", None)]
    assert "admin@127.0.0.1" in client.get(f"/admin/email/details/?id={failed_mail}").get_data(
        as_text=True
    )


def test_retry_leaves_other_statuses_alone(client, sql):
    mail_id = post_mail(client)
    sql("UPDATE email SET status = 'sent' WHERE id = :id", id=uuid.UUID(mail_id))
    retry(client, mail_id, "not-a-uuid")
    assert sql("SELECT status FROM email")[0]["status"] == "sent"


def test_retry_needs_the_csrf_token(client, failed_mail, sql):
    assert retry(client, failed_mail, token=False).status_code == 302
    assert "Failed to perform action" in client.get("/admin/email/").get_data(as_text=True)
    assert sql("SELECT status FROM email")[0]["status"] == "failed"


# --- Hardening headers and the session cookie ----------------------------------------------

ADMIN_PAGES = ["/admin/", "/admin/email/", "/admin/email/new/"]


def csp_directives(response):
    """The response's Content-Security-Policy as {directive: [sources]}."""
    policy = response.headers["Content-Security-Policy"]
    return {
        name: sources
        for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }


@pytest.mark.parametrize(
    "path",
    [*ADMIN_PAGES, "/admin/email/details/?id={id}", "/admin/email/?flt0_created_at_equals=abc"],
)
def test_admin_pages_cannot_be_framed_and_load_only_their_own_files(client, path):
    response = client.get(path.format(id=post_mail(client)))
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    directives = csp_directives(response)
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["default-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    for name, sources in directives.items():
        for source in sources:
            # Bootstrap's style sheet draws a few icons as data: images; nothing else may be.
            allowed = ("'self'", "'none'", *(("data:",) if name == "img-src" else ()))
            assert source in allowed or re.fullmatch(r"'nonce-[\w-]+'", source), (name, source)


def test_admin_asks_for_credentials_with_the_headers_too(app, client):
    app.config["ADMIN_PASSWORD"] = "s3cret"
    response = client.get("/admin/email/")
    assert response.status_code == 401
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_api_answers_cannot_be_framed_nor_sniffed(client):
    for response in (
        client.get("/health"),
        client.post("/mail", json=sample_mail()),
        client.get("/mail/not-a-uuid"),
    ):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


# Every other page of the menu: each keeps to the same policy.
MENU_PAGES = [
    "/admin/suppression/",
    "/admin/suppression/new/",
    "/admin/webhook/",
    "/admin/webhook_endpoint/",
    "/admin/audit/",
    "/admin/api_key/",
    "/admin/templates/",
]


@pytest.mark.parametrize("path", [*ADMIN_PAGES, *MENU_PAGES])
def test_admin_pages_keep_to_their_policy(client, three_mails, path):
    # What a browser enforcing the policy would refuse: a script or style sheet from elsewhere,
    # an inline script without the response's nonce, inline event handlers and style attributes.
    response = client.get(path)
    page = response.get_data(as_text=True)
    nonces = {
        source[7:-1]
        for source in csp_directives(response)["script-src"]
        if source.startswith("'nonce-")
    }
    for tag in re.findall(r"<script\b[^>]*>", page):
        src = re.search(r'\ssrc="([^"]+)"', tag)
        if src:  # Flask-Admin's own files, or ours
            assert src.group(1).startswith(("/admin/static/", "/admin/assets/")), tag
            assert served(client, src.group(1)), tag
        else:
            assert re.search(r'\snonce="([^"]+)"', tag).group(1) in nonces, tag
    for href in re.findall(r'<link\b[^>]*\shref="([^"]+)"[^>]*rel="stylesheet"', page):
        assert href.startswith(("/admin/static/", "/admin/assets/")), href
        assert served(client, href), href
    assert re.findall(r"<[^>]*\son[a-z]+=", page) == []
    assert re.findall(r"<[^>]*\sstyle=", page) == []
    assert "<style" not in page


def test_the_retry_action_is_bound_without_an_inline_handler(client, three_mails):
    page = client.get("/admin/email/").get_data(as_text=True)
    assert re.search(r'<a class="dropdown-item" href="#" data-action="retry">Retry</a>', page)
    assert "modelActions.execute" in page  # in the nonce'd script that binds it


def served(client, url):
    """Whether ``url`` is served (200)."""
    with client.get(url) as response:
        return response.status_code == 200


def session_cookie(response):
    """The Set-Cookie header of the session cookie."""
    [cookie] = [
        value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")
    ]
    return cookie


def test_session_cookie_is_same_site_lax_and_not_secure_over_http(client):
    cookie = session_cookie(client.get("/admin/email/new/"))
    assert "SameSite=Lax" in cookie and "HttpOnly" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_over_https(app):
    client = app.test_client()
    cookie = session_cookie(client.get("/admin/email/new/", base_url="https://localhost"))
    assert "Secure" in cookie and "SameSite=Lax" in cookie


# --- Leases, errors, schedules and times ----------------------------------------------------


def utc_text(moment):
    """A timestamp as the admin shows it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.fixture
def stuck_mails(client, sql):
    """A mail whose worker died mid-send (lease expired) and one still being sent; their ids."""
    stuck = post_mail(client, subject="stuck")
    live = post_mail(client, subject="in flight")
    sql(
        "UPDATE email SET status = 'sending', locked_by = 'worker-a@db1:4242', "
        "locked_until = now() - interval '90 seconds' WHERE id = :id",
        id=uuid.UUID(stuck),
    )
    sql(
        "UPDATE email SET status = 'sending', locked_by = 'worker-b@db2:77', "
        "locked_until = now() + interval '5 minutes' WHERE id = :id",
        id=uuid.UUID(live),
    )
    return {"stuck": stuck, "live": live}


def lease_until(sql, mail_id):
    """The mail's lease expiry."""
    return sql("SELECT locked_until FROM email WHERE id = :id", id=uuid.UUID(mail_id))[0][
        "locked_until"
    ]


def test_list_shows_who_holds_a_lease_and_until_when(client, sql, stuck_mails):
    post_mail(client, subject="waiting")
    rows = list_rows(client)
    assert rows["stuck"]["locked_by"] == "worker-a@db1:4242"
    assert rows["stuck"]["locked_until"] == (
        f"{utc_text(lease_until(sql, stuck_mails['stuck']))} expired"
    )
    assert rows["in flight"]["locked_by"] == "worker-b@db2:77"
    assert rows["in flight"]["locked_until"] == utc_text(lease_until(sql, stuck_mails["live"]))
    assert rows["waiting"]["locked_by"] == rows["waiting"]["locked_until"] == ""


def test_details_show_the_lease_and_whether_it_expired(client, sql, stuck_mails):
    stuck = details(client, stuck_mails["stuck"])
    assert stuck["Lease Owner"] == "worker-a@db1:4242"
    assert stuck["Lease Until"] == f"{utc_text(lease_until(sql, stuck_mails['stuck']))} expired"
    live = details(client, stuck_mails["live"])
    assert live["Lease Until"] == utc_text(lease_until(sql, stuck_mails["live"]))


def test_list_shows_the_last_error_cut_short_and_when_queued_mail_is_next_tried(client, sql):
    error = "HTTP 503 from mailgun: " + "Service Unavailable " * 20
    retrying = post_mail(client, subject="retrying")
    sql(
        "UPDATE email SET attempts = 2, last_error = :error, "
        "next_attempt_at = '2030-01-02 03:04:05.678+00' WHERE id = :id",
        error=error,
        id=uuid.UUID(retrying),
    )
    done = post_mail(client, subject="done")
    sql(
        "UPDATE email SET status = 'failed', last_error = 'Rejected: bad address', "
        "next_attempt_at = '2030-01-02 03:04:05+00' WHERE id = :id",
        id=uuid.UUID(done),
    )
    rows = list_rows(client)
    assert rows["retrying"]["next_attempt_at"] == "2030-01-02 03:04:05 UTC"
    assert rows["done"]["next_attempt_at"] == ""  # not queued: it has no next attempt
    shown = rows["retrying"]["last_error"]
    assert shown.endswith("…") and len(shown) <= 81 and error.startswith(shown[:-1])
    page = client.get("/admin/email/").get_data(as_text=True)
    assert f'title="{error.strip()}"' in page  # the whole error on hover
    assert rows["done"]["last_error"] == "Rejected: bad address"
    assert details(client, retrying)["Last Error"] == error.strip()


def test_times_are_shown_in_utc_to_the_second(client, sql, sandbox, run_worker):
    mail_id = post_mail(client, subject="timed")
    run_worker()
    sql(
        "UPDATE email SET created_at = '2026-01-02 05:04:05.678901+02' WHERE id = :id",
        id=uuid.UUID(mail_id),
    )
    [attempt] = sql("SELECT created_at FROM delivery_attempt")
    row = list_rows(client)["timed"]
    assert row["created_at"] == "2026-01-02 03:04:05 UTC"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", row["updated_at"])
    shown = details(client, mail_id)
    assert shown["Created At"] == "2026-01-02 03:04:05 UTC"
    assert shown["Sent At"] == shown["Updated At"] != ""
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown["Sent At"])
    page = client.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    assert timeline(page)[0]["at"] == utc_text(attempt["created_at"])


def test_dashboard_shows_circuit_times_in_utc(client, sql):
    sql(
        "INSERT INTO provider_state (name, state, consecutive_failures, cooldown, open_until, "
        "updated_at) VALUES ('mailgun', 'open', 5, 30, '2030-01-02 05:04:05.5+02', now())"
    )
    page = client.get("/admin/").get_data(as_text=True)
    assert provider_row(page, "mailgun")["open_until"] == "2030-01-02 03:04:05 UTC"


def test_cancel_action_cancels_waiting_mail_and_records_who(client, sql, mail):
    waiting = client.post("/mail", json={**mail, "send_at": "2099-01-01T00:00:00Z"})
    assert waiting.status_code == 400  # beyond MAX_SCHEDULE_DAYS
    scheduled = post_mail(client, tags=["spring"])
    sent = post_mail(client)
    sql("UPDATE email SET status = 'sent' WHERE id = :id", id=uuid.UUID(sent))
    token = csrf_token(client, "/admin/email/")
    response = client.post(
        "/admin/email/action/",
        data={"action": "cancel", "rowid": [scheduled, sent], "csrf_token": token},
    )
    assert response.status_code == 302
    page = client.get("/admin/email/").get_data(as_text=True)
    assert "1 mail cancelled; 1 already sending or finished was left alone." in page
    statuses = {str(row["id"]): row["status"] for row in sql("SELECT id, status FROM email")}
    assert statuses == {scheduled: "cancelled", sent: "sent"}
    details = client.get(f"/admin/email/details/?id={scheduled}").get_data(as_text=True)
    assert "cancelled" in details and "admin@127.0.0.1" in details


def test_details_show_tags_metadata_headers_and_attachments(client, mail):
    body = {
        **mail,
        "tags": ["spring"],
        "metadata": {"user": "42"},
        "headers": {"X-Campaign": "spring-sale"},
        "attachments": [
            {"filename": "terms.pdf", "content_type": "application/pdf", "content": "JVBERi0="}
        ],
    }
    mail_id = client.post("/mail", json=body).get_json()["id"]
    page = client.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
    assert "spring-sale" in page and "&#34;user&#34;: &#34;42&#34;" in page
    assert "terms.pdf (application/pdf, 5 bytes)" in page
    listed = client.get("/admin/email/?flt0_tag_has=spring").get_data(as_text=True)
    assert mail_id in listed
    assert mail_id not in client.get("/admin/email/?flt0_tag_has=autumn").get_data(as_text=True)
