"""The ``flask keys`` commands: make the first key of a new installation, list and revoke keys.

    flask --app app keys create --tenant shop --name checkout --scopes mail:send,mail:read
    flask --app app keys list [--tenant shop]
    flask --app app keys revoke <id>

``create`` prints the key once, alone on standard output (so that a script can keep it), and
what it is on standard error; the key is stored as its SHA-256 only.
"""

import uuid

import click
from flask.cli import AppGroup

from mailer import principals
from mailer.database import transaction
from mailer.queue import keys as stored_keys

keys_cli = AppGroup("keys", help="Make, list and revoke API keys.")
OPERATOR = principals.Principal(
    principals.DEFAULT_TENANT, None, "cli", frozenset(principals.SCOPES)
)


def _split(text):
    """A comma-separated option as a list, without blanks."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


@keys_cli.command("create")
@click.option("--tenant", default=principals.DEFAULT_TENANT, show_default=True)
@click.option("--name", required=True, help="What the key is for.")
@click.option(
    "--scopes",
    default="mail:send,mail:read",
    show_default=True,
    help=f"Comma-separated, of: {', '.join(principals.SCOPES)}.",
)
@click.option("--allowed-from-domains", default="", help="Comma-separated sender domains.")
@click.option("--rate-limit", type=float, default=None, help="Mails a second.")
@click.option("--daily-quota", type=int, default=None, help="Mails a UTC day.")
@click.option("--test", is_flag=True, help="A test key (mk_test_): its mail is never sent.")
def create(tenant, name, scopes, allowed_from_domains, rate_limit, daily_quota, test):
    """Make a key and print it, once."""
    fields = {
        "tenant": tenant,
        "name": name,
        "scopes": _split(scopes),
        "allowed_from_domains": _split(allowed_from_domains),
        "rate_limit": rate_limit,
        "daily_quota": daily_quota,
        "test": test,
    }
    errors = principals.key_problems(fields, OPERATOR)
    if errors:
        for error in errors:
            click.echo(f"{error['field']}: {error['message']}", err=True)
        raise SystemExit(2)
    with transaction() as conn:
        made = principals.issue(conn, fields, OPERATOR, "cli")
    row = made.row
    click.echo(
        f"Key {row['id']} of tenant {row['tenant']} ({row['name']}; {', '.join(row['scopes'])}). "
        "It is shown this once:",
        err=True,
    )
    click.echo(made.key)


@keys_cli.command("list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
def list_keys(tenant):
    """List the keys, newest first (never the keys themselves)."""
    after = None
    while True:
        with transaction() as conn:
            rows, more = stored_keys.page(conn, tenant, 500, after)
        for row in rows:
            state = "revoked" if row["revoked_at"] else "live"
            click.echo(
                f"{row['id']}  {row['tenant']}  {row['name']}  {row['prefix']}…{row['last4']}  "
                f"{','.join(row['scopes'])}  {state}"
            )
        if not more:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])


@keys_cli.command("revoke")
@click.argument("key_id")
def revoke(key_id):
    """Revoke a key: every API process refuses it within a second."""
    try:
        found = uuid.UUID(key_id)
    except ValueError:
        raise click.BadParameter("not a key id", param_hint="KEY_ID") from None
    with transaction() as conn:
        if not stored_keys.revoke(conn, found):
            raise click.ClickException(f"no key {key_id}")
    click.echo(f"Revoked {key_id}.", err=True)


def init_app(app):
    """Register the commands on ``app``'s ``flask`` command."""
    app.cli.add_command(keys_cli)
