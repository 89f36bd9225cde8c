"""The suppression list: addresses that mail does not go to, why, and for how long.

- A permanent bounce, a complaint or an unsubscribe adds its recipient (``add_many``, called by
  ``mailqueue.record_events`` in the transaction that records the event), with the provider's
  words, the mail that caused it and the time; an operator adds or removes one by hand (API,
  admin).
- A bounce entry expires ``SUPPRESSION_DAYS`` after it was (last) added, as Postal's do: a full
  mailbox or a retired address may come back. Complaints, unsubscribes and entries added by
  hand never expire on their own. A stronger entry replaces an expiring one; nothing replaces a
  permanent one (remove it first).
- The worker asks ``active`` once per claimed batch which of its recipients are suppressed.

Addresses are bare (``addresses.bare_address``): the domain compares case-insensitively, the
local part as given. This module holds every SQL statement of the list.
"""

from sqlalchemy import delete, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from mailer.validation.addresses import bare_address
from models import Suppression

table = Suppression.__table__
BOUNCE, COMPLAINT, UNSUBSCRIBE, MANUAL = "bounce", "complaint", "unsubscribe", "manual"
REASONS = (BOUNCE, COMPLAINT, UNSUBSCRIBE, MANUAL)
EXPIRING = (BOUNCE,)
# The reason that wins when one batch of events suppresses an address twice.
STRENGTH = {BOUNCE: 0, MANUAL: 1, UNSUBSCRIBE: 2, COMPLAINT: 3}
DAY = literal_column("interval '1 day'")
# ``active``'s query, once per claimed batch: one array parameter, so the statement is the same
# text for every batch (an IN list of the batch's addresses would be rendered and compiled anew
# by SQLAlchemy each time).
ACTIVE_SQL = (
    "SELECT address, reason, detail FROM suppression WHERE address = ANY(%s::text[]) "
    "AND (expires_at IS NULL OR expires_at > now())"
)


def in_force():
    """The condition of an entry that suppresses now (not expired)."""
    return or_(table.c.expires_at.is_(None), table.c.expires_at > func.now())


def active(conn, addresses):
    """Which of ``addresses`` (bare) are suppressed now: {address: a reason for people}."""
    if not addresses:
        return {}
    rows = conn.exec_driver_sql(ACTIVE_SQL, (sorted(set(addresses)),))
    return {address: describe(reason, detail) for address, reason, detail in rows}


def describe(reason, detail):
    """Why a recipient was left out, as its status's reason says it."""
    return f"on the suppression list: {reason}" + (f" ({detail})" if detail else "")


def add_many(conn, entries, days):
    """Add or renew entries ``{address, reason, detail, email_id}``; the rows that changed.

    One statement. An expiring (bounce) entry gives way to any new entry, so a new bounce
    renews it and a complaint makes it permanent; a permanent entry stays as it is.
    """
    strongest = {}
    for entry in entries:
        held = strongest.get(entry["address"])
        if held is None or STRENGTH[entry["reason"]] >= STRENGTH[held["reason"]]:
            strongest[entry["address"]] = entry
    if not strongest:
        return []
    rows = [
        {
            **entry,
            "expires_at": func.now() + DAY * float(days) if entry["reason"] in EXPIRING else None,
        }
        for entry in strongest.values()
    ]
    statement = pg_insert(table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.address],
        set_={
            "reason": statement.excluded.reason,
            "detail": statement.excluded.detail,
            "email_id": statement.excluded.email_id,
            "created_at": func.now(),
            "expires_at": statement.excluded.expires_at,
        },
        where=table.c.expires_at.is_not(None),
    ).returning(*table.c)
    return [dict(row) for row in conn.execute(statement).mappings()]


def add(conn, address, reason=MANUAL, detail=None, days=30):
    """Add one address by hand; its entry as it now stands and whether it was added."""
    address = bare_address(address)
    added = add_many(
        conn, [{"address": address, "reason": reason, "detail": detail, "email_id": None}], days
    )
    if added:
        return added[0], True
    return dict(
        conn.execute(select(table).where(table.c.address == address)).mappings().one()
    ), False


def remove(conn, address):
    """Take an address off the list; whether it was on it."""
    statement = delete(table).where(table.c.address == bare_address(address))
    return conn.execute(statement).rowcount > 0


def page(conn, reason=None, limit=50, after=None):
    """A page of entries in force, newest first, and whether more follow: ``(rows, more)``.

    Keyset pagination on (created_at, address): ``after`` is the position of the previous
    page's last entry.
    """
    query = (
        select(table)
        .where(in_force())
        .order_by(table.c.created_at.desc(), table.c.address)
        .limit(limit + 1)
    )
    if reason:
        query = query.where(table.c.reason == reason)
    if after:
        created, address = after
        query = query.where(
            or_(
                table.c.created_at < created,
                (table.c.created_at == created) & (table.c.address > address),
            )
        )
    rows = [dict(row) for row in conn.execute(query).mappings()]
    return rows[:limit], len(rows) > limit


def purge_expired(conn, batch_size):
    """Delete up to ``batch_size`` entries that expired; how many went."""
    doomed = (
        select(table.c.address)
        .where(table.c.expires_at <= func.now())
        .limit(batch_size)
        .scalar_subquery()
    )
    return conn.execute(delete(table).where(table.c.address.in_(doomed))).rowcount
