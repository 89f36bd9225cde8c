"""``database.describe``: a database error as its message, never with a password."""

import psycopg2
from sqlalchemy.exc import OperationalError

from mailer.database import describe


def test_database_errors_are_logged_with_their_message_never_a_password():
    try:
        psycopg2.connect("postgresql://mail:s3cret@127.0.0.1:1/mail", connect_timeout=2)
    except psycopg2.OperationalError as err:
        wrapped = OperationalError("connect", {}, err)
    text_ = describe(wrapped)
    assert text_.startswith("OperationalError: ") and "refused" in text_.lower()
    assert "s3cret" not in text_
    leaked = OperationalError(
        "x", {}, psycopg2.OperationalError("could not use postgresql://mail:s3cret@db/mail")
    )
    assert "s3cret" not in describe(leaked) and "mail:***@db" in describe(leaked)
