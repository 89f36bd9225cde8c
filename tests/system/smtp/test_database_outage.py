"""A database outage during DATA: the door answers 451 4.3.0 (never a 250 for a mail it did not
store), and the client's retry once the database is back stores the mail once.

Runs against a private embedded server (devkit/embedded_db.py), never the session's shared one.
"""

import os

import pytest
from conftest import ROOT, throwaway_postgres
from flask_migrate import upgrade
from helpers import mail_rows
from integration.smtp.door import connect, queued_id, running_door, sample_message, send_data

from app import create_app
from models import db

pytestmark = [pytest.mark.committed, pytest.mark.slow]


@pytest.fixture
def private_postgres():
    """A running throwaway server, deleted after the test."""
    server = throwaway_postgres()
    yield server
    server.destroy()


def test_an_outage_during_data_is_451_and_the_retry_stores_one_mail(private_postgres, settings):
    url = private_postgres.url()
    config = {**settings, "DATABASE_URL": url, "DB_CONNECT_TIMEOUT": 1}
    app = create_app(config)
    with app.app_context():
        upgrade(directory=os.path.join(ROOT, "migrations"))
        db.engine.dispose()
    message = sample_message(Message_ID="<outage-1@shop.example.com>")
    with running_door(config) as door, connect(door) as smtp:
        assert queued_id(send_data(smtp, sample_message()))  # the pool holds a connection
        private_postgres.stop()
        code, text = send_data(smtp, message)
        assert code == 451 and text.startswith(b"4.3.0 The database is unavailable")
        assert smtp.rset()[0] == 250
        private_postgres.start()
        first = queued_id(send_data(smtp, message))
        assert queued_id(send_data(smtp, message)) == first  # a retry after a lost 250
    assert len(mail_rows(url)) == 2 and first in mail_rows(url)
