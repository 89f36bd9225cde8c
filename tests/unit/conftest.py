"""Unit tests: pure logic, run in milliseconds without PostgreSQL or the provider sandbox."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent
# The fixtures of ../conftest.py that need a server; every other such fixture builds on these.
SERVER_FIXTURES = {"database_url", "postgres_server", "sandbox"}


def pytest_collection_modifyitems(items):
    """Refuse, before any fixture starts a server, a unit test that would need one."""
    offending = [
        item.nodeid
        for item in items
        if HERE in item.path.parents and SERVER_FIXTURES & set(item.fixturenames)
    ]
    if offending:
        raise pytest.UsageError(
            "unit tests run without a server; move these to tests/integration: "
            + ", ".join(offending)
        )
