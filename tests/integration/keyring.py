"""Stored API keys for tests: made in the test's transaction, as ``POST /keys`` makes them."""

from mailer import database, principals
from mailer.api.auth import keys_changed


def make_key(app, tenant, scopes, name="key", test=False):
    """Store a key of ``tenant`` with ``scopes`` (a list); its ``Authorization`` header and id."""
    fields = {"name": name, "tenant": tenant, "scopes": scopes, "test": test}
    assert principals.key_problems(fields, principals.LOCAL) == []
    with app.app_context():
        with database.transaction() as conn:
            new = principals.issue(conn, fields, principals.LOCAL, "tests")
        keys_changed()
    return {"Authorization": f"Bearer {new.key}"}, str(new.row["id"])
