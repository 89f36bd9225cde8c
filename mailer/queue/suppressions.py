"""The suppression list: addresses that mail does not go to, why, and for how long.

- A permanent bounce, a complaint or an unsubscribe adds its recipient (``add_many``, called by
  ``events.record_events`` in the transaction that records the event), with the provider's
  words, the mail that caused it and the time; an operator adds or removes one by hand (API,
  admin).
- A bounce entry expires ``SUPPRESSION_DAYS`` after it was (last) added, as Postal's do: a full
  mailbox or a retired address may come back. Complaints, unsubscribes and entries added by
  hand never expire on their own. A stronger entry replaces an expiring one; nothing replaces a
  permanent one (remove it first).
- The worker asks ``active`` once per claimed batch which of its recipients are suppressed.

Addresses are bare (``addresses.bare_address``): the domain compares case-insensitively, the
local part as given. The statements of the list are in ``sql/suppressions.sql``.
"""

from mailer.queue.queries import as_json, load
from mailer.validation.addresses import bare_address

SQL = load("suppressions.sql")
BOUNCE, COMPLAINT, UNSUBSCRIBE, MANUAL = "bounce", "complaint", "unsubscribe", "manual"
REASONS = (BOUNCE, COMPLAINT, UNSUBSCRIBE, MANUAL)
EXPIRING = (BOUNCE,)
# The reason that wins when one batch of events suppresses an address twice.
STRENGTH = {BOUNCE: 0, MANUAL: 1, UNSUBSCRIBE: 2, COMPLAINT: 3}


def active(conn, addresses):
    """Which of ``addresses`` (bare) are suppressed now: {address: a reason for people}."""
    if not addresses:
        return {}
    rows = conn.exec_driver_sql(SQL.active, {"addresses": sorted(set(addresses))})
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
    rows = conn.exec_driver_sql(
        SQL.add, {"entries": as_json(list(strongest.values())), "days": float(days)}
    )
    return [dict(row) for row in rows.mappings()]


def add(conn, address, reason=MANUAL, detail=None, days=30):
    """Add one address by hand; its entry as it now stands and whether it was added."""
    address = bare_address(address)
    added = add_many(
        conn, [{"address": address, "reason": reason, "detail": detail, "email_id": None}], days
    )
    if added:
        return added[0], True
    entry = conn.exec_driver_sql(SQL.entry, {"address": address}).mappings().one()
    return dict(entry), False


def remove(conn, address):
    """Take an address off the list; whether it was on it."""
    return conn.exec_driver_sql(SQL.remove, {"address": bare_address(address)}).rowcount > 0


def page(conn, reason=None, limit=50, after=None):
    """A page of entries in force, newest first, and whether more follow: ``(rows, more)``.

    Keyset pagination on (created_at, address): ``after`` is the position of the previous
    page's last entry.
    """
    created, address = after or (None, None)
    rows = conn.exec_driver_sql(
        SQL.page,
        {
            "reason": reason or None,
            "after_created": created,
            "after_address": address,
            "limit": limit + 1,
        },
    )
    rows = [dict(row) for row in rows.mappings()]
    return rows[:limit], len(rows) > limit


def purge_expired(conn, batch_size):
    """Delete up to ``batch_size`` entries that expired; how many went."""
    return conn.exec_driver_sql(SQL.purge_expired, {"batch_size": batch_size}).rowcount
