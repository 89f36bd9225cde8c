"""Migration 0014 (``template``, ``template_version``, ``email.template``) goes up, down and up
again (down to 0013, the revision before it)."""

from conftest import migrated_to
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect


def schema(url):
    """The template tables and the email columns and index that 0014 adds, where they exist."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        columns = {column["name"] for column in found.get_columns("email")}
        indexes = {index["name"] for index in found.get_indexes("email")}
        return {
            "tables": sorted(t for t in ("template", "template_version") if found.has_table(t)),
            "columns": sorted(columns & {"template", "template_version"}),
            "index": "ix_email_template" in indexes,
        }
    finally:
        engine.dispose()


def test_0014_up_down_and_up(postgres_server):
    with migrated_to(postgres_server, "0011") as (url, migrations):
        upgrade(directory=migrations, revision="0014")
        expected = {
            "tables": ["template", "template_version"],
            "columns": ["template", "template_version"],
            "index": True,
        }
        assert schema(url) == expected
        downgrade(directory=migrations, revision="0013")
        assert schema(url) == {"tables": [], "columns": [], "index": False}
        upgrade(directory=migrations, revision="0014")
        assert schema(url) == expected
