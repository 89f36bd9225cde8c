"""Tests for devkit/sandbox: real HTTP against a Sandbox running on threads of this process,
no mocks. (Its command line, a process of its own, is tested in tests/system/devkit.)"""

import base64
import re
import threading
import time

import pytest
import requests
from helpers import sg_payload

from devkit.sandbox import Sandbox

MG_KEY = "mg-test-key"
SG_KEY = "SG.test-key"
DOMAIN = "mg.example.com"


@pytest.fixture(scope="module")
def server():
    """One sandbox for the module (reset before each test by `sb`)."""
    with Sandbox(mailgun_key=MG_KEY, sendgrid_key=SG_KEY).start() as sandbox:
        yield sandbox


@pytest.fixture
def sb(server):
    """The shared sandbox with clean messages, requests and behaviour."""
    server.reset()
    return server


@pytest.fixture
def http():
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def mg_post(http, sb, data=None, files=None, key=MG_KEY, **kwargs):
    """POST to the Mailgun send endpoint."""
    url = f"{sb.url}/v3/{DOMAIN}/messages"
    return http.post(url, auth=("api", key), data=data, files=files, **kwargs)


def mg_data(**overrides):
    """A valid Mailgun form payload."""
    data = {"from": "Shop <shop@example.com>", "to": "ann@example.com", "subject": "Hi"}
    data["text"] = "Hello"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def sg_post(http, sb, payload=None, key=SG_KEY, **kwargs):
    """POST to the SendGrid send endpoint."""
    headers = {"Authorization": f"Bearer {key}"}
    return http.post(f"{sb.url}/v3/mail/send", json=payload, headers=headers, **kwargs)


def send(http, sb, provider):
    """Send one valid message through the given provider."""
    if provider == "mailgun":
        return mg_post(http, sb, mg_data())
    return sg_post(http, sb, sg_payload())


OK = {"mailgun": 200, "sendgrid": 202}


# --- Mailgun ----------------------------------------------------------------------------------


def test_mailgun_success_shape_and_recorded_fields(sb, http):
    data = mg_data(
        to=['ann@example.com, "Doe, Jo" <jo@example.com>', "cat@example.com"],
        cc="cc@example.com",
        bcc="bcc@example.com",
        html="<b>Hello</b>",
        **{"h:Reply-To": "help@example.com", "h:X-Order": "42", "v:user-id": "7"},
    )
    r = mg_post(http, sb, data)
    assert r.status_code == 200
    body = r.json()
    assert body["message"] == "Queued. Thank you."
    assert re.fullmatch(r"<\d{14}\.[0-9a-f]+@mg\.example\.com>", body["id"])
    [msg] = sb.messages("mailgun")
    assert msg["id"] == body["id"]
    assert msg["provider"] == "mailgun"
    assert msg["from"] == "Shop <shop@example.com>"
    assert msg["to"] == ["ann@example.com", '"Doe, Jo" <jo@example.com>', "cat@example.com"]
    assert msg["cc"] == ["cc@example.com"] and msg["bcc"] == ["bcc@example.com"]
    assert msg["reply_to"] == "help@example.com"
    assert (msg["subject"], msg["text"], msg["html"]) == ("Hi", "Hello", "<b>Hello</b>")
    assert msg["custom"] == {"user-id": "7"}
    assert msg["headers_in"] == {"Reply-To": "help@example.com", "X-Order": "42"}
    assert msg["received_at"].endswith("+00:00")
    assert sb.messages("sendgrid") == []
    assert [r["status"] for r in sb.requests()] == [200]


def test_mailgun_multipart_form(sb, http):
    files = [
        ("from", (None, "shop@example.com")),
        ("to", (None, "ann@example.com")),
        ("subject", (None, "Grüße")),
        ("text", (None, "Zeile 1\r\nZeile 2 – ü".encode())),
        ("v:order", (None, "A-1")),
        ("attachment", ("invoice.txt", b"not a form field")),
    ]
    r = mg_post(http, sb, files=files)
    assert r.status_code == 200, r.text
    [msg] = sb.messages()
    assert msg["subject"] == "Grüße"
    assert msg["text"] == "Zeile 1\r\nZeile 2 – ü"
    assert msg["custom"] == {"order": "A-1"}


def test_mailgun_records_inline_files_by_name_as_their_content_id(sb, http):
    files = [
        ("inline", ("logo@example.com", b"PNG", "image/png")),
        ("attachment", ("bill.pdf", b"%PDF", "application/pdf")),
    ]
    r = mg_post(http, sb, mg_data(html='<img src="cid:logo@example.com">'), files=files)
    assert r.status_code == 200, r.text
    [msg] = sb.messages()
    assert [(f["filename"], f["disposition"], f["content_id"]) for f in msg["attachments"]] == [
        ("bill.pdf", "attachment", None),
        ("logo@example.com", "inline", "logo@example.com"),
    ]


def test_mailgun_delivers_and_answers_the_message_id_it_is_given(sb, http):
    r = mg_post(http, sb, mg_data(**{"h:Message-Id": "<m-1@shop.example>"}))
    assert r.json()["id"] == "<m-1@shop.example>"
    r = mg_post(http, sb, mg_data())
    own = r.json()["id"]
    assert own.endswith(f"@{DOMAIN}>")
    assert [msg["message_id"] for msg in sb.messages()] == ["<m-1@shop.example>", own]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("from", "from parameter is missing"),
        ("to", "to parameter is missing"),
        (
            "text",
            "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified",
        ),
    ],
)
def test_mailgun_missing_fields(sb, http, missing, message):
    r = mg_post(http, sb, mg_data(**{missing: None}))
    assert r.status_code == 400
    assert r.json() == {"message": message}
    assert sb.messages() == []
    assert [r["status"] for r in sb.requests("mailgun")] == [400]


@pytest.mark.parametrize("auth", [("api", "wrong"), ("user", MG_KEY), None])
def test_mailgun_bad_auth_is_forbidden(sb, http, auth):
    r = http.post(f"{sb.url}/v3/{DOMAIN}/messages", data=mg_data(), auth=auth)
    assert r.status_code == 401
    assert r.text == "Forbidden"
    assert r.headers["Content-Type"].startswith("text/plain")
    assert sb.messages() == []


def test_keys_unset_accept_any_credentials(http):
    with Sandbox().start() as open_sb:
        assert mg_post(http, open_sb, mg_data(), key="anything").status_code == 200
        assert sg_post(http, open_sb, sg_payload(), key="whatever").status_code == 202
        assert mg_post(http, open_sb, mg_data(), key="").status_code == 401


# --- SendGrid ---------------------------------------------------------------------------------


def test_sendgrid_success_shape_and_recorded_fields(sb, http):
    payload = sg_payload(
        reply_to={"email": "help@example.com"},
        custom_args={"user_id": "7", "kind": "receipt"},
        headers={"X-Order": "42"},
    )
    payload["personalizations"][0].update(
        cc=[{"email": "cc@example.com"}], custom_args={"kind": "welcome"}, subject="Per-person"
    )
    r = sg_post(http, sb, payload)
    assert r.status_code == 202
    assert r.content == b""
    assert r.headers["Content-Length"] == "0"
    msg_id = r.headers["X-Message-Id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", msg_id)
    [msg] = sb.messages("sendgrid")
    assert msg["id"] == msg_id
    assert msg["from"] == "Shop <shop@example.com>"
    assert msg["to"] == ["Bob <bob@example.com>"]
    assert msg["cc"] == ["cc@example.com"] and msg["bcc"] == []
    assert msg["reply_to"] == "help@example.com"
    assert msg["subject"] == "Per-person"
    assert (msg["text"], msg["html"]) == ("Hi Bob", "<p>Hi Bob</p>")
    assert msg["custom"] == {"user_id": "7", "kind": "welcome"}
    assert msg["headers_in"] == {"X-Order": "42"}


def test_sendgrid_records_inline_attachments_and_the_message_id(sb, http):
    logo = {
        "content": base64.b64encode(b"PNG").decode(),
        "filename": "logo.png",
        "type": "image/png",
        "disposition": "inline",
        "content_id": "logo@example.com",
    }
    payload = sg_payload(attachments=[logo], headers={"Message-ID": "<m-1@shop.example>"})
    assert sg_post(http, sb, payload).status_code == 202
    r = sg_post(http, sb, sg_payload())
    [given, own] = sb.messages("sendgrid")
    assert [(f["disposition"], f["content_id"]) for f in given["attachments"]] == [
        ("inline", "logo@example.com")
    ]
    assert given["message_id"] == "<m-1@shop.example>"
    assert own["message_id"].startswith(f"<{r.headers['X-Message-Id']}@")


def test_sendgrid_refuses_an_inline_attachment_without_a_content_id(sb, http):
    logo = {"content": "UE5H", "filename": "logo.png", "type": "image/png"}
    r = sg_post(http, sb, sg_payload(attachments=[{**logo, "disposition": "inline"}]))
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["field"] == "attachments.0.content_id" and "content_id" in error["message"]
    assert sb.messages() == []


def test_sendgrid_validation_error_shape(sb, http):
    r = sg_post(http, sb, sg_payload(**{"from": {"name": "No address"}}))
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert error["field"] == "from.email"
    assert error["message"].startswith("The from object must be provided")
    assert error["help"].startswith("http://sendgrid.com/docs/")
    r = sg_post(http, sb, {"from": {"email": "shop@example.com"}})
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"personalizations", "subject", "content"}
    assert sb.messages() == []


def test_sendgrid_malformed_json_and_bad_auth(sb, http):
    headers = {"Authorization": f"Bearer {SG_KEY}", "Content-Type": "application/json"}
    r = http.post(f"{sb.url}/v3/mail/send", data=b"{not json", headers=headers)
    assert r.status_code == 400
    [error] = r.json()["errors"]
    assert (error["message"], error["field"]) == ("Bad Request", None)
    r = sg_post(http, sb, sg_payload(), key="wrong")
    assert r.status_code == 401
    msg = r.json()["errors"][0]["message"]
    assert msg == "The provided authorization grant is invalid, expired, or revoked"
    assert [x["status"] for x in sb.requests("sendgrid")] == [400, 401]


# --- Fault injection --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_injected_503_for_count_then_success(sb, http, provider):
    sb.configure(provider, status=503, count=2)
    statuses = [send(http, sb, provider).status_code for _ in range(3)]
    assert statuses == [503, 503, OK[provider]]
    assert [r["status"] for r in sb.requests(provider)] == statuses
    assert len(sb.messages(provider)) == 1


def test_injected_5xx_bodies_match_providers(sb, http):
    sb.configure("mailgun", status=500)
    sb.configure("sendgrid", status=500)
    assert send(http, sb, "mailgun").json() == {"message": "Internal Server Error"}
    errors = send(http, sb, "sendgrid").json()["errors"]
    assert errors == [{"message": "internal error", "field": None, "help": None}]


def test_429_retry_after_headers(sb, http):
    sb.configure("mailgun", status=429, retry_after=30)
    sb.configure("sendgrid", status=429, retry_after=30)
    r = send(http, sb, "mailgun")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "30")
    assert r.json() == {"message": "Too many requests"}
    before = time.time()
    r = send(http, sb, "sendgrid")
    assert (r.status_code, r.headers["Retry-After"]) == (429, "30")
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert int(r.headers["X-RateLimit-Limit"]) > 0
    assert before + 29 <= int(r.headers["X-RateLimit-Reset"]) <= time.time() + 31
    assert r.json() == {"errors": [{"field": None, "message": "too many requests"}]}


def test_hang_times_out_client_and_stop_is_prompt(http):
    hung = Sandbox().start()
    hung.configure("mailgun", hang=30)
    with pytest.raises(requests.Timeout):
        mg_post(http, hung, mg_data(), timeout=0.3)
    started = time.monotonic()
    hung.stop()
    assert time.monotonic() - started < 15  # the request would hang for 30 s
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{hung.url}/_sandbox/health", timeout=1)


@pytest.mark.parametrize("provider", ["mailgun", "sendgrid"])
def test_cut_takes_the_mail_and_closes_the_connection_unanswered(sb, http, provider):
    sb.configure(provider, cut=True, count=1)
    with pytest.raises(requests.ConnectionError):
        send(http, sb, provider)
    assert len(sb.messages(provider)) == 1  # the client cannot know that it was taken
    assert [r["status"] for r in sb.requests(provider)] == [None]
    assert send(http, sb, provider).status_code == OK[provider]  # only the next one was cut


def test_latency_applies_to_every_answer_of_its_provider(sb, http):
    sb.configure("sendgrid", latency_ms=150)
    started = time.monotonic()
    assert send(http, sb, "sendgrid").status_code == 202
    assert time.monotonic() - started >= 0.15  # a lower bound: no machine is too fast for it
    # Mailgun has no latency of its own: it answers long before SendGrid's minute would end,
    # however slow this machine is.
    sb.configure("sendgrid", latency_ms=60_000)
    assert mg_post(http, sb, mg_data(), timeout=30).status_code == 200
    assert sb.behaviour("mailgun") == {} and sb.behaviour("sendgrid") == {"latency_ms": 60_000}
    assert [r["provider"] for r in sb.requests()] == ["sendgrid", "mailgun"]


def test_reject_to(sb, http):
    sb.configure("mailgun", reject_to="bounce")
    sb.configure("sendgrid", reject_to="bounce")
    r = mg_post(http, sb, mg_data(to="bounce@example.com"))
    assert r.status_code == 400
    assert "not a valid address" in r.json()["message"]
    payload = sg_payload()
    payload["personalizations"][0]["to"].append({"email": "bounce@example.com"})
    r = sg_post(http, sb, payload)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "personalizations.0.to.1.email"
    assert sb.messages() == []
    assert send(http, sb, "mailgun").status_code == 200
    assert send(http, sb, "sendgrid").status_code == 202


def test_html_body_injection(sb, http):
    page = "<html>502 Bad Gateway</html>"
    sb.configure("sendgrid", status=502, body=page, content_type="text/html")
    r = send(http, sb, "sendgrid")
    assert (r.status_code, r.text) == (502, page)
    assert r.headers["Content-Type"] == "text/html"
    sb.configure("mailgun", status=500, body="x" * 2_000_000)
    r = send(http, sb, "mailgun")
    assert r.status_code == 500 and len(r.content) == 2_000_000


def test_configure_rejects_unknown_behaviour(sb):
    with pytest.raises(ValueError):
        sb.configure("mailgun", statuss=500)
    with pytest.raises(ValueError):
        sb.configure("sparkpost", status=500)
    with pytest.raises(ValueError):
        sb.configure("mailgun", body="<html/>")  # a body needs a status


# --- Control API ------------------------------------------------------------------------------


def test_http_control_api(sb, http):
    base = f"{sb.url}/_sandbox"
    assert http.get(f"{base}/health").json() == {"ok": True}
    r = http.put(f"{base}/behaviour/mailgun", json={"status": 500, "count": 1})
    assert r.status_code == 200
    assert http.get(f"{base}/behaviour/mailgun").json() == {"status": 500, "count": 1}
    assert send(http, sb, "mailgun").status_code == 500
    assert send(http, sb, "mailgun").status_code == 200
    assert send(http, sb, "sendgrid").status_code == 202
    msgs = http.get(f"{base}/messages", params={"provider": "mailgun"}).json()["messages"]
    assert [m["provider"] for m in msgs] == ["mailgun"]
    assert len(http.get(f"{base}/messages").json()["messages"]) == 2
    reqs = http.get(f"{base}/requests").json()["requests"]
    assert [(r["provider"], r["status"]) for r in reqs] == [
        ("mailgun", 500),
        ("mailgun", 200),
        ("sendgrid", 202),
    ]
    assert http.put(f"{base}/behaviour/mailgun", json={"nope": 1}).status_code == 400
    assert http.delete(f"{base}/messages").status_code == 204
    assert http.get(f"{base}/messages").json() == {"messages": []}
    assert http.get(f"{base}/behaviour/mailgun").json() == {}
    sb.configure("sendgrid", status=503)
    assert http.post(f"{base}/reset").status_code == 204
    assert sb.requests() == [] and sb.behaviour("sendgrid") == {}


def test_browser_page_lists_messages_escaped(sb, http):
    mg_post(http, sb, mg_data(subject="<script>alert(1)</script>"))
    r = http.get(f"{sb.url}/_sandbox/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "<script>" not in r.text
    assert "ann@example.com" in r.text


def test_unknown_paths_are_json_404(sb, http):
    for path in ("/nope", "/v3/mail/sendx", "/_sandbox/nope"):
        r = http.get(f"{sb.url}{path}")
        assert r.status_code == 404
        assert r.headers["Content-Type"] == "application/json"
        r.json()


# --- Connections and concurrency --------------------------------------------------------------


def test_keep_alive_reuses_one_connection(http):
    with Sandbox().start() as fresh:
        for i in range(200):
            provider = "mailgun" if i % 2 else "sendgrid"
            assert send(http, fresh, provider).status_code == OK[provider]
        # error answers must not break the connection either
        fresh.configure("sendgrid", status=500, count=1)
        assert send(http, fresh, "sendgrid").status_code == 500
        assert sg_post(http, fresh, {"bad": True}).status_code == 400
        assert fresh.connections_accepted == 1
        assert len(fresh.messages()) == 200


def test_concurrent_clients(sb):
    errors = []

    def client():
        with requests.Session() as session:
            session.trust_env = False
            for i in range(25):
                provider = "mailgun" if i % 2 else "sendgrid"
                status = send(session, sb, provider).status_code
                if status != OK[provider]:
                    errors.append(status)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(sb.messages()) == 400
    assert len({m["id"] for m in sb.messages()}) == 400
