"""``GET /inbound`` (stable pages, filters), ``GET /inbound/<id>`` and its attachments' bytes,
each key seeing its own tenant's received mail only; ``GET /mail/<id>`` lists the mail's
replies. The answers match the OpenAPI document."""

import uuid

import pytest
from helpers import sample_mail

from integration.api.schemas import assert_matches
from integration.inbound_mail import attachment, inbound_mail, take
from integration.keyring import make_key


@pytest.fixture
def spec(client):
    """The OpenAPI document as the API serves it."""
    return client.get("/api/spec").get_json()


def post_mail(client, headers=None, **fields):
    """Submit a mail; its id."""
    answer = client.post("/mail", json=sample_mail(**fields), headers=headers or {})
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def walk(client, query="", headers=None):
    """Every page of ``GET /inbound?<query>`` from the first; the pages' ids."""
    pages, cursor = [], None
    while True:
        url = f"/inbound?{query}" + (f"&cursor={cursor}" if cursor else "")
        answer = client.get(url, headers=headers or {})
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        pages.append([item["id"] for item in body["inbound"]])
        assert body["count"] == len(body["inbound"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def test_pages_walk_every_received_mail_once_newest_first(app, client, sql):
    ids = [str(take(app, inbound_mail()).inbound_id) for _ in range(5)]
    # Their received_at is the transaction's: spread them out as separate deliveries would be.
    for offset, inbound_id in enumerate(ids):
        sql(
            "UPDATE inbound SET received_at = now() - :s * interval '1 second' WHERE id = :id",
            s=len(ids) - offset,
            id=inbound_id,
        )
    pages = walk(client, "limit=2")
    assert pages == [ids[::-1][0:2], ids[::-1][2:4], ids[::-1][4:]]


def test_filters_by_recipient_sender_and_the_mail_it_answers(app, client, sql):
    mail_id = post_mail(client)
    reply = take(app, inbound_mail(in_reply_to=f"<{mail_id}@example.com>")).inbound_id
    other = take(
        app,
        inbound_mail(
            from_address="Bob <bob@Example.NET>",
            to=("sales@in.example.com",),
            envelope_to=("sales@in.example.com",),
            cc=("cc@in.example.com",),
        ),
    ).inbound_id

    def ids(query):
        return [item for page in walk(client, query) for item in page]

    assert ids(f"in_reply_to={mail_id}") == [str(reply)]
    assert ids("from=bob@example.net") == [str(other)]
    assert ids("from=Ann%20%3Cann@EXAMPLE.org%3E") == [str(reply)]
    assert ids("to=cc@in.example.com") == [str(other)]
    assert ids("to=support@in.example.com") == [str(reply)]
    assert ids(f"in_reply_to={uuid.uuid4()}") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("in_reply_to=nope", "in_reply_to"),
        ("status=sent", "status"),
        ("limit=0", "limit"),
        ("cursor=xyz", "cursor"),
        ("to=", "to"),
    ],
)
def test_a_bad_query_is_a_400_naming_it(client, spec, query, field):
    answer = client.get(f"/inbound?{query}")
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == field
    assert_matches(spec, "Error", answer.get_json())


def test_a_received_mail_as_the_api_shows_it(app, client, spec):
    mail_id = post_mail(client)
    files = (attachment("a.txt", b"hello", "text/plain"), attachment("b.bin", b"x" * 20))
    app.config["MAX_ATTACHMENT_BYTES"] = 10
    received = take(
        app,
        inbound_mail(
            in_reply_to=f"<{mail_id}@example.com>",
            references=(f"<{mail_id}@example.com>",),
            attachments=files,
            spam_score=0.5,
        ),
    )
    answer = client.get(f"/inbound/{received.inbound_id}")
    assert answer.status_code == 200
    body = answer.get_json()
    assert_matches(spec, "Inbound", body)
    assert (body["id"], body["from"], body["in_reply_to_mail_id"]) == (
        str(received.inbound_id),
        "Ann <ann@example.org>",
        mail_id,
    )
    assert body["headers"][2:] == [["Received", "from a"], ["Received", "from b"]]
    assert body["references"] == [f"<{mail_id}@example.com>"]
    assert [(a["filename"], a["size"], a["dropped"], a["url"]) for a in body["attachments"]] == [
        ("a.txt", 5, None, f"/inbound/{received.inbound_id}/attachments/0"),
        ("b.bin", 20, "MAX_ATTACHMENT_BYTES", None),
    ]
    listed = client.get("/inbound").get_json()
    assert_matches(spec, "InboundPage", listed)
    assert_matches(spec, "ListedInbound", listed["inbound"][0])


def test_an_attachment_is_a_download_that_runs_nothing(app, client, spec):
    app.config["MAX_ATTACHMENT_BYTES"] = 100
    files = (
        attachment("page.html", b"<script>alert(1)</script>", "text/html"),
        attachment("", b"\x00\x01", "bad\r\ntype"),
        attachment("huge.bin", b"x" * 200),
    )
    inbound_id = take(app, inbound_mail(attachments=files)).inbound_id
    page = client.get(f"/inbound/{inbound_id}/attachments/0")
    assert page.status_code == 200 and page.data == b"<script>alert(1)</script>"
    assert page.mimetype == "text/html"
    assert page.headers["Content-Disposition"].startswith("attachment;")
    assert "page.html" in page.headers["Content-Disposition"]
    assert "sandbox" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    nameless = client.get(f"/inbound/{inbound_id}/attachments/1")
    assert nameless.data == b"\x00\x01" and nameless.mimetype == "application/octet-stream"
    assert "attachment-1" in nameless.headers["Content-Disposition"]
    dropped = client.get(f"/inbound/{inbound_id}/attachments/2")
    assert dropped.status_code == 410
    assert_matches(spec, "Error", dropped.get_json())
    for path in ("3", "-1", "x", "99999999999"):
        missing = client.get(f"/inbound/{inbound_id}/attachments/{path}")
        assert missing.status_code == 404, path
        assert missing.get_json()["errors"][0]["field"] == "position"


@pytest.mark.parametrize("inbound_id", ["not-a-uuid", "0b6c7f3e-3d0c-4a43-9a31-6f3a4b1d2e55"])
def test_an_unknown_id_is_a_404(client, spec, inbound_id):
    for path in (f"/inbound/{inbound_id}", f"/inbound/{inbound_id}/attachments/0"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert_matches(spec, "Error", answer.get_json())


def test_each_key_sees_its_own_tenants_received_mail(app, client):
    shop, _ = make_key(app, "shop", ["mail:send", "mail:read"])
    other, _ = make_key(app, "billing", ["mail:read"])
    boss, _ = make_key(app, "default", ["admin"])
    sender_only, _ = make_key(app, "shop", ["mail:send"])
    shop_mail = post_mail(client, headers=shop)
    to_shop = take(app, inbound_mail(in_reply_to=f"<{shop_mail}@example.com>")).inbound_id
    unlinked = take(app, inbound_mail()).inbound_id
    assert walk(client, headers=shop) == [[str(to_shop)]]
    assert walk(client, headers=other) == [[]]
    assert sorted(walk(client, headers=boss)[0]) == sorted([str(to_shop), str(unlinked)])
    assert walk(client, "tenant=shop", headers=boss) == [[str(to_shop)]]
    assert client.get("/inbound?tenant=shop", headers=other).status_code == 403
    assert client.get(f"/inbound/{to_shop}", headers=shop).status_code == 200
    assert client.get(f"/inbound/{to_shop}", headers=other).status_code == 404
    assert client.get(f"/inbound/{unlinked}", headers=shop).status_code == 404
    assert client.get(f"/inbound/{to_shop}/attachments/0", headers=other).status_code == 404
    refused = client.get("/inbound", headers=sender_only)
    assert refused.status_code == 403 and refused.get_json()["errors"][0]["field"] == "scope"


def test_a_mail_lists_its_replies_but_not_automatic_ones(app, client, spec):
    mail_id = post_mail(client)
    assert client.get(f"/mail/{mail_id}").get_json()["replies"] == []
    first = take(app, inbound_mail(subject="Re: Hello", in_reply_to=f"<{mail_id}@example.com>"))
    automatic = (("From", "Ann <ann@example.org>"), ("Auto-Submitted", "auto-replied"))
    take(
        app,
        inbound_mail(
            subject="Out of office", in_reply_to=f"<{mail_id}@example.com>", headers=automatic
        ),
    )
    body = client.get(f"/mail/{mail_id}").get_json()
    assert_matches(spec, "Mail", body)
    assert body["reply_count"] == 1
    [reply] = body["replies"]
    assert (reply["id"], reply["from"], reply["subject"]) == (
        str(first.inbound_id),
        "Ann <ann@example.org>",
        "Re: Hello",
    )
    linked = client.get(f"/inbound?in_reply_to={mail_id}").get_json()["inbound"]
    assert sorted((item["subject"], item["auto_reply"]) for item in linked) == [
        ("Out of office", True),
        ("Re: Hello", False),
    ]


def test_the_ways_in_are_no_received_mails_id(client):
    for source in ("mailgun", "sendgrid", "postmark"):
        assert client.get(f"/inbound/{source}").status_code in (404, 405)
        assert client.get(f"/inbound/{source}").get_json()["success"] is False
