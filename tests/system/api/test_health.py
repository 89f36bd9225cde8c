"""``/readyz`` while the database is down: a private embedded PostgreSQL, stopped and started
again, while ``/healthz`` stays 200."""

import os

import pytest
from conftest import ROOT, throwaway_postgres
from flask_migrate import upgrade
from helpers import wait_for

from app import create_app
from models import db

pytestmark = pytest.mark.committed  # the readiness checks read on connections of their own


@pytest.mark.slow
def test_readyz_is_503_while_the_database_is_down_and_healthz_stays_200(settings):
    server = throwaway_postgres()
    try:
        app = create_app({**settings, "DATABASE_URL": server.url(), "DB_CONNECT_TIMEOUT": 1})
        with app.app_context():
            upgrade(directory=os.path.join(ROOT, "migrations"))
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        server.stop()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["database"] == "unavailable"
        assert "postgres" not in response.get_data(as_text=True)  # no URL, host or user
        assert client.get("/healthz").status_code == 200
        server.start()
        wait_for(
            lambda: client.get("/readyz").status_code == 200,
            60,
            message="readiness after the database returned",
        )
        with app.app_context():
            db.engine.dispose()
    finally:
        server.destroy()
