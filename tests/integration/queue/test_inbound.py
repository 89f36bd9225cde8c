"""``receive`` stores a received mail once, links it to the mail of ours it answers (by its
In-Reply-To or References, our Message-ID or the provider's), keeps its attachments within the
limits (recording those past them), applies a bounce report instead of storing it, and the
purge takes it after RETENTION_DAYS."""

import uuid
from pathlib import Path

import pytest
from helpers import sample_mail
from inbound_mail import inbound_of

from integration.inbound_mail import attachment, inbound_mail, take
from mailer import database
from mailer.queue import inbound
from mailer.queue.inbound import REPLAYED, REPORT, STORED

BOUNCES = Path(__file__).parents[2] / "fixtures" / "bounces"


def post_mail(client, **fields):
    """Submit a mail; its id."""
    answer = client.post("/mail", json=sample_mail(**fields))
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def stored(sql, inbound_id):
    """The inbound row ``inbound_id``."""
    return sql("SELECT * FROM inbound WHERE id = :id", id=inbound_id)[0]


def test_a_received_mail_is_stored_with_what_it_came_with(app, sql):
    mail = inbound_mail(
        cc=("Bob <bob@EXAMPLE.org>",),
        spam_score=1.5,
        spam_verdict="ham",
        references=("<a@x>", "<b@y>"),
        in_reply_to="<b@y>",
    )
    result = take(app, mail)
    assert result.outcome == STORED and result.in_reply_to_mail_id is None
    row = stored(sql, result.inbound_id)
    assert (row["source"], row["delivery_id"], row["message_id"]) == (
        "mailgun",
        mail.delivery_id,
        mail.message_id,
    )
    assert row["from_address"] == "Ann <ann@example.org>"
    assert (row["to_address"], row["cc"]) == (["Support <support@in.example.com>"], list(mail.cc))
    assert row["envelope_to"] == ["support@in.example.com"]
    assert row["headers"] == [[name, value] for name, value in mail.headers]
    assert (row["text"], row["html"], row["stripped_text"]) == (mail.text, mail.html, "Thanks!")
    assert (row["in_reply_to"], row["reference_ids"]) == ("<b@y>", ["<a@x>", "<b@y>"])
    assert (row["spam_score"], row["spam_verdict"], row["auto_reply"]) == (1.5, "ham", False)
    assert row["tenant"] == "default"
    assert row["recipients"] == ["support@in.example.com", "bob@example.org"]
    assert row["sender"] == "ann@example.org"
    now = sql("SELECT now() AS now")[0]["now"]
    assert row["received_at"] == now  # the database's clock, in the test's transaction


def test_a_replay_of_the_same_delivery_or_message_id_stores_one(app, sql):
    first = take(app, inbound_mail(delivery_id="mg-1", message_id="<same@example.org>"))
    again = take(app, inbound_mail(delivery_id="mg-1", message_id="<other@example.org>"))
    by_smtp = take(app, inbound_mail(source="smtp", delivery_id=None, message_id="<same@x>"))
    same_id = take(app, inbound_mail(source="postmark", message_id="<same@example.org>"))
    assert (again.outcome, again.inbound_id) == (REPLAYED, first.inbound_id)
    assert (same_id.outcome, same_id.inbound_id) == (REPLAYED, first.inbound_id)
    assert by_smtp.outcome == STORED
    rows = sql("SELECT source, message_id FROM inbound ORDER BY received_at, message_id")
    assert sorted((row["source"], row["message_id"]) for row in rows) == [
        ("mailgun", "<same@example.org>"),
        ("smtp", "<same@x>"),
    ]


def test_mail_without_delivery_id_or_message_id_is_stored_each_time(app, sql):
    for _ in range(2):
        assert take(app, inbound_mail(delivery_id=None, message_id=None)).outcome == STORED
    assert sql("SELECT count(*) AS n FROM inbound")[0]["n"] == 2


def test_linked_by_in_reply_to_whatever_the_domain_and_takes_its_tenant(app, client, sql):
    mail_id = post_mail(client)
    sql("UPDATE email SET tenant = 'shop' WHERE id = :id", id=mail_id)
    result = take(app, inbound_mail(in_reply_to=f"<{mail_id}@mail.shop.example>"))
    assert result.in_reply_to_mail_id == uuid.UUID(mail_id)
    row = stored(sql, result.inbound_id)
    assert (row["in_reply_to_mail_id"], row["tenant"]) == (uuid.UUID(mail_id), "shop")


def test_linked_by_the_nearest_of_its_references(app, client, sql):
    older, newer = post_mail(client), post_mail(client)
    references = (f"<{older}@example.com>", f"<{newer}@example.com>", "<from-them@example.org>")
    result = take(app, inbound_mail(in_reply_to="<from-them@example.org>", references=references))
    assert result.in_reply_to_mail_id == uuid.UUID(newer)
    in_reply_to_wins = take(
        app, inbound_mail(in_reply_to=f"<{older}@example.com>", references=references)
    )
    assert in_reply_to_wins.in_reply_to_mail_id == uuid.UUID(older)


def test_linked_by_a_message_id_the_provider_wrote(app, client, sql):
    mail_id = post_mail(client)
    sql(
        "UPDATE email SET provider_message_id = '0100018c-ses-id-000000' WHERE id = :id",
        id=mail_id,
    )
    result = take(app, inbound_mail(in_reply_to="<0100018c-ses-id-000000@email.amazonses.com>"))
    assert result.in_reply_to_mail_id == uuid.UUID(mail_id)


def test_an_id_of_no_mail_of_ours_links_nothing(app, client, sql):
    post_mail(client)
    result = take(
        app,
        inbound_mail(in_reply_to=f"<{uuid.uuid4()}@example.com>", references=("not an id at all",)),
    )
    assert result.in_reply_to_mail_id is None
    assert stored(sql, result.inbound_id)["tenant"] == "default"


def test_an_automatic_reply_is_stored_and_marked(app, client, sql):
    mail_id = post_mail(client)
    headers = (("From", "Ann <ann@example.org>"), ("Auto-Submitted", "auto-replied"))
    auto = take(
        app,
        inbound_mail(
            subject="Automatic reply: away", in_reply_to=f"<{mail_id}@x>", headers=headers
        ),
    )
    assert auto.outcome == STORED and auto.auto_reply is True
    row = stored(sql, auto.inbound_id)
    assert (row["auto_reply"], row["in_reply_to_mail_id"]) == (True, uuid.UUID(mail_id))


def test_a_bounce_report_is_read_and_not_stored(app, sql):
    """A real report (Postfix's, about a mail we do not hold) is a report: nothing stored."""
    with open(BOUNCES / "postfix-dsn.eml", "rb") as sample:
        report = inbound_of(sample.read())
    result = take(app, report)
    assert (result.outcome, result.inbound_id, result.bounced) == (REPORT, None, 0)
    assert sql("SELECT count(*) AS n FROM inbound")[0]["n"] == 0


def test_attachments_are_kept_within_the_limits_and_the_rest_recorded(app, sql):
    app.config.update(MAX_ATTACHMENT_BYTES=10, MAX_ATTACHMENTS=3)
    files = (
        attachment("a.txt", b"123456", "text/plain"),
        attachment("big.bin", b"12345"),  # 6 + 5 > 10: dropped
        attachment("logo.png", b"\x89PNG", "image/png", content_id="logo@x"),  # 6 + 4 fits
        attachment("d.txt", b"1"),  # the fourth file: dropped
    )
    result = take(app, inbound_mail(attachments=files))
    rows = sql(
        "SELECT position, filename, content_type, content_id, size, content, dropped "
        "FROM inbound_attachment WHERE inbound_id = :id ORDER BY position",
        id=result.inbound_id,
    )
    assert [
        (r["filename"], r["size"], r["content"] and bytes(r["content"]), r["dropped"]) for r in rows
    ] == [
        ("a.txt", 6, b"123456", None),
        ("big.bin", 5, None, "MAX_ATTACHMENT_BYTES"),
        ("logo.png", 4, b"\x89PNG", None),
        ("d.txt", 1, None, "MAX_ATTACHMENTS"),
    ]
    assert rows[2]["content_id"] == "logo@x"


def test_text_postgresql_cannot_hold_is_cleaned_not_refused(app, sql):
    mail = inbound_mail(
        subject="Hi\x00there",
        text="bad \udcff byte",
        headers=(("X-Odd", "a\x00b"),),
        message_id="<" + "☃" * 900 + "@example.org>",  # too long to be one: no replay key
        from_address="x" * 3000 + "@example.org",  # no address an index could hold
        to=("y" * 3000 + "@example.org", "ok@example.org"),
        spam_score=float("nan"),
    )
    row = stored(sql, take(app, mail).inbound_id)
    assert row["sender"] == "ann@example.org"  # the envelope's: the From is none to look up
    assert row["recipients"] == ["support@in.example.com", "ok@example.org"]
    assert (row["subject"], row["text"], row["headers"]) == (
        "Hithere",
        "bad ? byte",
        [["X-Odd", "ab"]],
    )
    assert (row["message_id"], row["spam_score"]) == (None, None)


def test_purge_takes_received_mail_past_retention_with_its_attachments(app, client, sql):
    old = take(app, inbound_mail(attachments=(attachment("a.txt", b"a"),))).inbound_id
    new = take(app, inbound_mail()).inbound_id
    sql("UPDATE inbound SET received_at = now() - interval '31 days' WHERE id = :id", id=old)
    with app.app_context(), database.transaction() as conn:
        assert inbound.count_purgeable(conn, 30) == 1
        assert inbound.purge(conn, 30, 10) == 1
    assert [row["id"] for row in sql("SELECT id FROM inbound")] == [new]
    assert sql("SELECT count(*) AS n FROM inbound_attachment")[0]["n"] == 0


def test_purging_the_mail_it_answers_keeps_the_reply_unlinked(app, client, sql):
    mail_id = post_mail(client)
    reply = take(app, inbound_mail(in_reply_to=f"<{mail_id}@example.com>")).inbound_id
    sql("DELETE FROM email WHERE id = :id", id=mail_id)
    row = stored(sql, reply)
    assert (row["in_reply_to_mail_id"], row["in_reply_to"]) == (None, f"<{mail_id}@example.com>")


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("<a@x> <b@y>", ["a@x", "b@y"]),
        ("a@x", ["a@x"]),
        ("two words", []),
        ("", []),
    ],
)
def test_the_ids_of_a_header(value, ids):
    assert inbound.reply_candidates(inbound_mail(in_reply_to=value)) == ids
