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
- Each entry holds back one tenant's mail (a bounce suppresses for the tenant whose mail
  bounced), or every tenant's: ``ALL_TENANTS``, an operator's entry from the admin. Test mail
  has a list of its own per tenant, the tenant's test view (``view``).

Addresses are bare (``addresses.bare_address``): the domain compares case-insensitively, the
local part as given. The statements of the list are in ``sql/suppressions.sql``.
"""

from mailer.queue.queries import as_json, load
from mailer.validation.addresses import bare_address

SQL = load("suppressions.sql")
ALL_TENANTS = "*"
TEST_VIEW = ":test"  # the suffix of a tenant's test view (``view``)
DEFAULT_TENANT = "default"
BOUNCE, COMPLAINT, UNSUBSCRIBE, MANUAL = "bounce", "complaint", "unsubscribe", "manual"
REASONS = (BOUNCE, COMPLAINT, UNSUBSCRIBE, MANUAL)
EXPIRING = (BOUNCE,)
# The reason that wins when one batch of events suppresses an address twice.
STRENGTH = {BOUNCE: 0, MANUAL: 1, UNSUBSCRIBE: 2, COMPLAINT: 3}


def view(tenant, test=False):
    """Whose entries hold back a mail of ``tenant``, and receive its bounces and complaints:
    the tenant's own, or for test mail (a ``mk_test_`` key's) the tenant's test view,
    ``<tenant>:test``, a name no tenant can have (``:`` is not allowed in one). Test mail's
    suppressions therefore never hold back live mail, and live ones not test mail (only an
    operator's entry for every tenant holds back both)."""
    return f"{tenant}{TEST_VIEW}" if test else tenant


def active(conn, addresses, tenants=(DEFAULT_TENANT,)):
    """Which of ``addresses`` (bare) are suppressed now for one of ``tenants``: {(tenant,
    address): a reason for people}, the tenant ``ALL_TENANTS`` for an entry of every tenant
    (``for_tenant`` reads one tenant's view of it)."""
    if not addresses:
        return {}
    params = {"addresses": sorted(set(addresses)), "tenants": sorted(set(tenants))}
    rows = conn.exec_driver_sql(SQL.active, params)
    return {(tenant, address): describe(reason, detail) for tenant, address, reason, detail in rows}


def for_tenant(blocked, tenant):
    """``active``'s answer as one tenant sees it: {address: reason}."""
    return {
        address: reason
        for (owner, address), reason in blocked.items()
        if owner in (tenant, ALL_TENANTS)
    }


def describe(reason, detail):
    """Why a recipient was left out, as its status's reason says it."""
    return f"on the suppression list: {reason}" + (f" ({detail})" if detail else "")


def add_many(conn, entries, days):
    """Add or renew entries ``{tenant, address, reason, detail, email_id}``; the rows that
    changed.

    One statement. An expiring (bounce) entry gives way to any new entry, so a new bounce
    renews it and a complaint makes it permanent; a permanent entry stays as it is.
    """
    strongest = {}
    for entry in entries:
        slot = (entry.get("tenant", DEFAULT_TENANT), entry["address"])
        held = strongest.get(slot)
        if held is None or STRENGTH[entry["reason"]] >= STRENGTH[held["reason"]]:
            strongest[slot] = {**entry, "tenant": slot[0]}
    if not strongest:
        return []
    rows = conn.exec_driver_sql(
        SQL.add, {"entries": as_json(list(strongest.values())), "days": float(days)}
    )
    return [dict(row) for row in rows.mappings()]


def add(conn, address, reason=MANUAL, detail=None, days=30, tenant=DEFAULT_TENANT):
    """Add one address by hand for ``tenant`` (``ALL_TENANTS``: every one); its entry as it
    now stands and whether it was added."""
    address = bare_address(address)
    entry = {
        "tenant": tenant,
        "address": address,
        "reason": reason,
        "detail": detail,
        "email_id": None,
    }
    added = add_many(conn, [entry], days)
    if added:
        return added[0], True
    entry = conn.exec_driver_sql(SQL.entry, {"address": address, "tenant": tenant})
    return dict(entry.mappings().one()), False


def remove(conn, address, tenant=None):
    """Take an address off the list of ``tenant`` (None: of every tenant); whether it was on
    it."""
    params = {"address": bare_address(address), "tenant": tenant}
    return conn.exec_driver_sql(SQL.remove, params).rowcount > 0


def page(conn, reason=None, limit=50, after=None, tenant=None):
    """A page of entries in force (of ``tenant``; None: every tenant's), newest first, and
    whether more follow: ``(rows, more)``.

    Keyset pagination on (created_at, address): ``after`` is the position of the previous
    page's last entry.
    """
    created, address = after or (None, None)
    rows = conn.exec_driver_sql(
        SQL.page,
        {
            "reason": reason or None,
            "tenant": tenant,
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
