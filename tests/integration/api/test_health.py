"""``/healthz`` and ``/readyz``: liveness without the database, readiness with it, its schema, the
providers' circuits, weights, caps and rates, and the workers' heartbeats."""

import os

import pytest
from conftest import ROOT, fresh_database
from flask_migrate import upgrade
from helpers import wait_for
from sqlalchemy import create_engine, text

from app import create_app
from mailer.database import head_revision
from mailer.queue import heartbeats
from mailer.worker import ratecap
from models import db

HEAD = head_revision()  # the migrations' newest revision
# Whether mailgun's last draw was before the last whole second, so /readyz no longer shows it.
STALE_DRAW = text(
    """SELECT "window" < date_trunc('second', now()) - interval '1 second'"""
    " FROM provider_rate WHERE name = 'mailgun'"
)

pytestmark = pytest.mark.committed  # the readiness checks read on connections of their own


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_shows_each_providers_circuit_weight_cap_and_rate(app, settings):
    weighted = create_app(
        {
            **settings,
            "PROVIDER_STRATEGY": "weighted",
            "PROVIDER_WEIGHTS": "mailgun:3,sendgrid:1",
            "PROVIDER_RATE_LIMITS": "mailgun:50",
        }
    )
    engine = create_engine(settings["DATABASE_URL"])
    with engine.begin() as conn:
        ratecap.ensure_rows(conn, {"mailgun": 50.0})
        heartbeats.beat(conn, "worker-a", host="h", pid=1)
    client = weighted.test_client()
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready" and body["database"] == "ok"
    assert body["schema"]["status"] == "current" and body["schema"]["revision"] == HEAD
    assert body["meltdown"] is False and body["strategy"] == "weighted"
    assert body["workers_alive"] == 1
    mailgun, sendgrid = body["providers"]
    assert (mailgun["name"], mailgun["state"], mailgun["usable"]) == ("mailgun", "closed", True)
    assert (mailgun["weight"], mailgun["rate_limit"]) == (3.0, 50.0)
    assert (sendgrid["weight"], sendgrid["rate_limit"], sendgrid["current_rate"]) == (
        1.0,
        None,
        None,
    )

    def rate_of_the_last_second():
        """Whether /readyz shows the 5 drawn, drawing them again in a new second when the
        second after the draw went by before /readyz was asked (a slow machine)."""
        with engine.begin() as conn:
            if conn.scalar(STALE_DRAW):
                assert ratecap.take(conn, "mailgun", 50.0, 5)[0] == 5
        return client.get("/readyz").get_json()["providers"][0]["current_rate"] == 5

    # The rate is that of the last whole second: it shows once the draw's second is over.
    with engine.begin() as conn:
        assert ratecap.take(conn, "mailgun", 50.0, 5)[0] == 5
    wait_for(rate_of_the_last_second, 10, message="the rate of the last second")
    engine.dispose()


def test_readyz_reports_a_meltdown_but_stays_ready(client, settings):
    engine = create_engine(settings["DATABASE_URL"])
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO provider_state (name, state, consecutive_failures, "
                "cooldown, open_until, updated_at) VALUES "
                "('mailgun', 'open', 5, 30, now() + interval '1 minute', now()), "
                "('sendgrid', 'closed', 0, 0, NULL, now())"
            )
        )
        conn.execute(
            text(
                "UPDATE provider_state SET paused_until = now() + interval '1 minute' "
                "WHERE name = 'sendgrid'"
            )
        )
    engine.dispose()
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200 and body["meltdown"] is True
    assert [(p["name"], p["state"]) for p in body["providers"]] == [
        ("mailgun", "open"),
        ("sendgrid", "paused"),
    ]
    assert client.get("/health").get_json()["status"] == "meltdown"  # the same definition


def test_readyz_is_503_while_the_schema_is_behind_or_missing(postgres_server, settings):
    with fresh_database(postgres_server) as url:
        app = create_app({**settings, "DATABASE_URL": url})
        client = app.test_client()
        response = client.get("/readyz")
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.get_json()["schema"] == {
            "status": "missing",
            "revision": None,
            "head": HEAD,
        }
        with app.app_context():
            upgrade(directory=os.path.join(ROOT, "migrations"), revision="0006")
        body = client.get("/readyz").get_json()
        assert body["status"] == "unavailable" and body["database"] == "ok"
        assert body["schema"] == {"status": "behind", "revision": "0006", "head": HEAD}
        with app.app_context():
            upgrade(directory=os.path.join(ROOT, "migrations"))
        assert client.get("/readyz").status_code == 200
        with app.app_context():
            db.engine.dispose()
