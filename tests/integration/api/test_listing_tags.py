"""``GET /mail?tag=`` reads a tag's mail from ``mail_tag`` (migration 0010): every way a mail
is stored (``POST /mail``, ``POST /mail/batch``, an operator's resend) writes its tags there in
the same statement, a mail without tags writes nothing, the purge takes them with the mail, the
migration copies the tags of mail already stored, and the pages list exactly the mail whose
``tags`` hold the tag, newest first, each once while mail keeps arriving."""

import uuid

import pytest
from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, text

from mailer.queue import actions, purge, reads

pytestmark = pytest.mark.committed  # created_at must differ between mails: one per commit


def listed(client, query):
    """The ids of every page of ``GET /mail?<query>`` (limit 3), walked by cursor."""
    seen, cursor = [], None
    while True:
        response = client.get(f"/mail?{query}&limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.get_json()
        seen += [item["id"] for item in response.get_json()["mails"]]
        cursor = response.get_json()["next_cursor"]
        if cursor is None:
            return seen


def carrying(sql, tag, where="true"):
    """The ids of mail whose own ``tags`` hold ``tag``, in the listing's order."""
    return [
        str(row["id"])
        for row in sql(
            f"SELECT id FROM email WHERE tags @> ARRAY[:tag]::text[] AND {where} "
            "ORDER BY created_at DESC, id DESC",
            tag=tag,
        )
    ]


def tag_rows(sql):
    """mail_tag's rows as {(mail id, tag): whether its created_at is the mail's}."""
    return {
        (str(row["email_id"]), row["tag"]): row["same"]
        for row in sql(
            "SELECT email_id, tag, mail_tag.created_at = email.created_at AS same "
            "FROM mail_tag JOIN email ON email.id = email_id"
        )
    }


def test_each_tag_of_a_stored_mail_is_listed_and_mail_without_tags_writes_none(client, mail, sql):
    plain = client.post("/mail", json=mail).get_json()["id"]
    assert tag_rows(sql) == {}
    one = client.post("/mail", json={**mail, "tags": ["spring"]}).get_json()["id"]
    two = client.post("/mail", json={**mail, "tags": ["spring", "news"]}).get_json()["id"]
    batch = client.post(
        "/mail/batch",
        json=[
            {**mail, "tags": ["news"]},
            mail,
            {**mail, "tags": ["spring", "vip", "spring"]},
        ],
    ).get_json()["ids"]
    assert tag_rows(sql) == {
        (one, "spring"): True,
        (two, "spring"): True,
        (two, "news"): True,
        (batch[0], "news"): True,
        (batch[2], "spring"): True,
        (batch[2], "vip"): True,
    }
    for tag in ("spring", "news", "vip", "none"):
        assert listed(client, f"tag={tag}") == carrying(sql, tag)
    assert set(listed(client, "tag=spring")) == {one, two, batch[2]}
    assert plain not in listed(client, "tag=spring") + listed(client, "tag=news")


def test_a_tag_with_other_filters_lists_what_the_mail_table_says(client, mail, sql):
    ids = [
        client.post(
            "/mail", json={**mail, "tags": ["spring"], "to": f"r{index % 2}@example.com"}
        ).get_json()["id"]
        for index in range(8)
    ]
    sql("UPDATE email SET status = 'failed' WHERE id = ANY(CAST(:ids AS uuid[]))", ids=ids[::3])
    middle = sql("SELECT created_at FROM email WHERE id = :id", id=uuid.UUID(ids[4]))[0]
    before = middle["created_at"].isoformat().replace("+00:00", "Z")
    assert listed(client, "tag=spring&status=failed") == carrying(
        sql, "spring", "status = 'failed'"
    )
    assert listed(client, "tag=spring&to=r1@example.com") == carrying(
        sql, "spring", "recipients @> ARRAY['r1@example.com']"
    )
    assert listed(client, f"tag=spring&created_before={before}") == ids[3::-1]
    assert listed(client, f"tag=spring&created_after={before}") == ids[:4:-1]


def test_a_tag_s_pages_return_each_mail_once_while_mail_keeps_arriving(client, mail, sql):
    first = [
        client.post("/mail", json={**mail, "tags": ["spring"]}).get_json()["id"] for _ in range(10)
    ]
    seen, cursor = [], None
    while True:
        answer = client.get(
            "/mail?tag=spring&limit=3" + (f"&cursor={cursor}" if cursor else "")
        ).get_json()
        client.post("/mail", json={**mail, "tags": ["spring"]})  # newer than every next page
        client.post("/mail", json=mail)
        seen += [item["id"] for item in answer["mails"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert seen == first[::-1]


def test_a_resent_mail_is_listed_under_its_tags(app, client, mail, sql):
    original = client.post("/mail", json={**mail, "tags": ["spring", "vip"]}).get_json()["id"]
    sql("UPDATE email SET status = 'delivered' WHERE id = :id", id=uuid.UUID(original))
    engine = create_engine(app.config["DATABASE_URL"])
    with engine.begin() as conn:
        copy = str(actions.resend(conn, [uuid.UUID(original)], "admin:ops")[uuid.UUID(original)])
    engine.dispose()
    assert tag_rows(sql) == {
        (original, "spring"): True,
        (original, "vip"): True,
        (copy, "spring"): True,
        (copy, "vip"): True,
    }
    assert listed(client, "tag=vip") == [copy, original]


def test_the_purge_takes_a_mail_s_tags_with_it(app, client, mail, sql):
    old = client.post("/mail", json={**mail, "tags": ["spring"]}).get_json()["id"]
    kept = client.post("/mail", json={**mail, "tags": ["spring"]}).get_json()["id"]
    sql(
        "UPDATE email SET status = 'sent', updated_at = now() - interval '40 days' WHERE id = :id",
        id=uuid.UUID(old),
    )
    engine = create_engine(app.config["DATABASE_URL"])
    with engine.begin() as conn:
        assert purge.purge_batch(conn, 30, 10) == 1
    engine.dispose()
    assert tag_rows(sql) == {(kept, "spring"): True}
    assert listed(client, "tag=spring") == [kept]


def test_the_migration_copies_the_tags_of_mail_already_there(postgres_server):
    with migrated_to(postgres_server, "0009") as (url, migrations):
        engine = create_engine(url)
        with engine.begin() as conn:
            ids = [
                str(row[0])
                for row in conn.execute(
                    text(
                        "INSERT INTO email (id, status, from_address, subject, attempts, tags) "
                        "VALUES "
                        "(gen_random_uuid(), 'sent', 'a@example.com', 'Hi', 0, '{a,b}'), "
                        "(gen_random_uuid(), 'sent', 'a@example.com', 'Hi', 0, '{b,b}'), "
                        "(gen_random_uuid(), 'sent', 'a@example.com', 'Hi', 0, '{}') RETURNING id"
                    )
                )
            ]
        upgrade(directory=migrations)
        downgrade(directory=migrations, revision="0009")
        upgrade(directory=migrations)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT email_id::text, tag FROM mail_tag JOIN email ON email.id = email_id "
                    "AND email.created_at = mail_tag.created_at ORDER BY 1, 2"
                )
            ).all()
        engine.dispose()
    assert sorted(rows) == sorted([(ids[0], "a"), (ids[0], "b"), (ids[1], "b")])


def test_a_tag_s_page_is_read_from_its_index(app, client, mail, sql):
    client.post("/mail", json={**mail, "tags": ["spring"]})
    sql("ANALYZE email, mail_tag")
    params = dict.fromkeys(
        (
            "status",
            "statuses",
            "to",
            "template",
            "tenant",
            "test",
            "source",
            "created_after",
            "created_before",
            "after_created",
            "after_id",
        )
    )
    engine = create_engine(app.config["DATABASE_URL"])
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        explained = conn.exec_driver_sql(
            "EXPLAIN " + reads.SQL.page_by_tag, {**params, "tag": "spring", "limit": 51}
        )
        plan = "\n".join(row[0] for row in explained)
    engine.dispose()
    assert "ix_mail_tag_listing" in plan and "Sort" not in plan, plan
