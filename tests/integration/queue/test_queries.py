"""The queue's SQL: named statements in ``mailer/queue/sql/*.sql`` that say what the Python
constants say, filters that the planner drops while their parameter is NULL, and a dead
connection handed to SQLAlchemy, which replaces the pool's older ones too."""

import os
import uuid

import pytest
from sqlalchemy import create_engine

from mailer.events import outbox, provider
from mailer.queue import actions, notify, queries, reads, suppressions
from models import FINISHED, HANDED_OFF, RECIPIENT_ORDER, WAITING, db


def statements():
    """Every statement of every ``.sql`` file, by (file, name)."""
    found = {}
    for filename in sorted(os.listdir(queries.DIRECTORY)):
        with open(os.path.join(queries.DIRECTORY, filename), encoding="utf-8") as handle:
            for name, statement in queries.parse(handle.read(), filename).items():
                found[filename, name] = statement
    return found


def in_list(values):
    """``values`` as the statements write a list of them: ``('a', 'b')``."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


def array(values):
    """``values`` as the statements write an array of them: ``ARRAY['a', 'b']``."""
    return "ARRAY[" + ", ".join(f"'{value}'" for value in values) + "]"


def test_every_file_parses_into_named_statements():
    found = statements()
    assert len(found) > 50
    assert all(statement and not statement.endswith(";") for statement in found.values())


def test_a_file_that_breaks_the_format_is_refused():
    with pytest.raises(queries.QueryFileError, match="named twice"):
        queries.parse("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")
    with pytest.raises(queries.QueryFileError, match="not a parameter"):
        queries.parse("-- name: a\nSELECT '100%';\n")
    with pytest.raises(queries.QueryFileError, match="before the first"):
        queries.parse("SELECT 1;\n-- name: a\nSELECT 2;\n")
    assert queries.parse("-- what\n-- name: a\n-- does\nSELECT %(x)s;\n") == {"a": "SELECT %(x)s"}


@pytest.mark.parametrize(
    "filename, name, written",
    [
        ("lease.sql", "claim_due", in_list(WAITING)),
        ("lease.sql", "hand_off", array(HANDED_OFF)),
        ("events.sql", "store_and_move", array(HANDED_OFF)),
        ("events.sql", "store_and_move", array(RECIPIENT_ORDER)),
        ("events.sql", "store_and_move", in_list(provider.SUPPRESSES)),
        ("events.sql", "store_and_move", in_list(provider.CLIENT_EVENT)),
        ("actions.sql", "retry", in_list(actions.RETRYABLE)),
        ("actions.sql", "cancel", in_list(WAITING)),
        ("actions.sql", "resend", in_list(HANDED_OFF)),
        ("purge.sql", "purge_mail", in_list(FINISHED)),
        ("counts.sql", "oldest_due_age", in_list(WAITING)),
        ("suppressions.sql", "add", "reason = " + in_list(suppressions.EXPIRING)[1:-1]),
        ("notify.sql", "listen", f"LISTEN {notify.CHANNEL}"),
        ("notify.sql", "wake_workers", f"pg_notify('{notify.CHANNEL}'"),
        ("webhooks.sql", "claim", "NOT IN " + in_list((outbox.DONE, outbox.GAVE_UP))),
        ("webhooks.sql", "record", "NOT IN " + in_list((outbox.DONE, outbox.GAVE_UP))),
    ],
)
def test_the_statements_name_what_the_code_defines(filename, name, written):
    assert written in " ".join(statements()[filename, name].split())


def plan(database_url, statement, **params):
    """PostgreSQL's plan of ``statement`` with ``params`` (the others NULL), scans discouraged."""
    nulls = dict.fromkeys(
        (
            "status",
            "statuses",
            "to",
            "tag",
            "template",
            "tenant",
            "test",
            "source",
            "created_after",
            "created_before",
            "after_created",
        )
    )
    engine = create_engine(database_url)
    with engine.connect() as conn:
        # Discouraged, so that the plan shows what the indexes can do rather than what a few
        # rows make cheapest.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.exec_driver_sql(f"SET {setting} = off")
        rows = conn.exec_driver_sql(
            "EXPLAIN " + statement, {**nulls, "after_id": None, "limit": 51, **params}
        )
        shown = "\n".join(row[0] for row in rows)
    engine.dispose()
    return shown


@pytest.mark.committed
def test_a_listing_filter_is_dropped_while_its_parameter_is_null(client, mail, settings):
    for _ in range(3):
        client.post("/mail", json=mail)
    url = settings["DATABASE_URL"]
    everything = plan(url, reads.SQL.page)
    assert "ix_email_created" in everything and "Filter" not in everything, everything
    # One status: with three rows the planner may walk the status's index or the page's own and
    # filter; either way a keyset walk, never a sort.
    one_status = plan(url, reads.SQL.page, status="queued")
    assert "ix_email_status_created" in one_status or "ix_email_created" in one_status, one_status
    assert "Sort" not in one_status, one_status
    # With three rows the planner may walk either index; either way the recipient's filter
    # applies and the other filters, their parameters NULL, are gone.
    recipient = plan(url, reads.SQL.page, to="rcpt@example.com")
    assert "recipients @>" in recipient and "status" not in recipient, recipient
    template = plan(url, reads.SQL.page, template="receipt")
    assert "ix_email_template" in template and "Sort" not in template, template
    tenant = plan(url, reads.SQL.page, tenant="shop")
    assert "ix_email_tenant_created" in tenant and "Sort" not in tenant, tenant
    # A tenant and a status: with three rows the planner may take the tenant's index and filter
    # the status, or the index of both; either way a keyset walk of the tenant, never a sort.
    tenant_status = plan(url, reads.SQL.page, tenant="shop", status="queued")
    assert "ix_email_tenant_" in tenant_status and "Sort" not in tenant_status, tenant_status


@pytest.mark.committed
def test_a_dead_connection_is_replaced_with_every_pooled_one_as_old(app, client, sql):
    with app.app_context():
        pooled = [db.engine.connect(), db.engine.connect()]  # two in the pool
        pids = [conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() for conn in pooled]
        for conn in pooled:
            conn.close()
    for pid in pids:  # as a restarted database leaves them
        sql("SELECT pg_terminate_backend(:pid)", pid=pid)
    unknown = "/mail/00000000-0000-0000-0000-000000000000"
    assert client.get(unknown).status_code == 503  # its connection was dead
    assert client.get(unknown).status_code == 404  # the other one was replaced, not tried
    assert client.get("/mail").status_code == 200


ATTACHMENT = {"filename": "a.txt", "content_type": "text/plain", "content": "aGk="}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"tags": ["spring", "spring", "vip"]},
        {"attachments": [ATTACHMENT]},
        {"tags": ["spring"], "attachments": [ATTACHMENT, {**ATTACHMENT, "filename": "b.txt"}]},
    ],
    ids=["plain", "tagged", "attached", "both"],
)
@pytest.mark.parametrize("keyed", [False, True], ids=["no key", "key"])
def test_each_submission_statement_stores_the_mail_its_tags_files_and_key(
    client, mail, sql, fields, keyed
):
    headers = {"Idempotency-Key": "k-1"} if keyed else {}
    first = client.post("/mail", json={**mail, **fields}, headers=headers)
    assert first.status_code == 202, first.get_json()
    mail_id = uuid.UUID(first.get_json()["id"])
    tags = sql("SELECT tag FROM mail_tag WHERE email_id = :id ORDER BY tag", id=mail_id)
    assert [row["tag"] for row in tags] == sorted(set(fields.get("tags", [])))
    files = sql(
        "SELECT filename FROM attachment WHERE email_id = :id ORDER BY position", id=mail_id
    )
    assert [row["filename"] for row in files] == [
        f["filename"] for f in fields.get("attachments", [])
    ]
    assert sql("SELECT count(*) AS n FROM idempotency_key")[0]["n"] == (1 if keyed else 0)
    if keyed:
        again = client.post("/mail", json={**mail, **fields}, headers=headers)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.get_json() == first.get_json()
        assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 1
