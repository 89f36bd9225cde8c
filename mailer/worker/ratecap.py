"""Shared send-rate caps: a token bucket per provider in the database, drawn in blocks.

``PROVIDER_RATE_LIMITS`` (``mailgun:50,sendgrid:20``) caps the mails per second each provider
is sent by all workers on all hosts together. Each capped provider has a ``provider_rate`` row
whose tokens refill at the cap's rate by the database's clock, up to a burst of
``BURST_SECONDS`` of the rate. A worker takes a block of tokens per claim, one statement per
provider per batch, and an unused token simply lapses (it is never given back), so the real
rate can only fall short of the cap, not exceed it by more than the burst.

Accuracy: any one-second window holds at most the tokens refilled in it plus a full bucket at
its start, so at most ``cap × (1 + BURST_SECONDS)`` (and at least one mail) is taken; sends
then leave within the time a claimed batch waits for a send thread, which can move a few
across the edge of a window: at the provider, ``margin()`` allows ``DISPATCH_SECONDS`` more.
"""

import math

from sqlalchemy import text

BURST_SECONDS = 0.2  # the bucket holds this many seconds of the rate (the margin over a cap)
# A token is taken when a batch is claimed, and its send reaches the provider after the batch
# waits for a send thread and the request crosses the network: measured at the provider, a
# one-second window can also hold the sends of up to this many seconds' tokens from before it.
DISPATCH_SECONDS = 0.1

TAKE = text("""
    WITH cur AS (
        SELECT name, clock_timestamp() AS moment, granted, "window",
               LEAST(:burst, tokens + :rate * extract(epoch FROM clock_timestamp() - refilled_at))
                   AS available
        FROM provider_rate WHERE name = :name FOR UPDATE
    ), taken AS (
        SELECT *, LEAST(:wanted, floor(available))::int AS n,
               date_trunc('second', moment) AS second FROM cur
    )
    UPDATE provider_rate AS p SET
        tokens = t.available - t.n,
        refilled_at = t.moment,
        "window" = t.second,
        last_granted = CASE WHEN t."window" = t.second THEN p.last_granted
                            WHEN t."window" = t.second - interval '1 second' THEN p.granted
                            ELSE 0 END,
        granted = CASE WHEN t."window" = t.second THEN p.granted + t.n ELSE t.n END
    FROM taken AS t WHERE p.name = t.name
    RETURNING t.n, t.available
""")
ENSURE = text(
    "INSERT INTO provider_rate (name, tokens) VALUES (:name, :burst) ON CONFLICT (name) DO NOTHING"
)
RATES = text("""
    SELECT name,
           CASE WHEN "window" = date_trunc('second', now()) THEN last_granted
                WHEN "window" = date_trunc('second', now()) - interval '1 second' THEN granted
                ELSE 0 END AS rate
    FROM provider_rate
""")


def burst(rate):
    """How many tokens a provider's bucket holds: ``BURST_SECONDS`` of its rate, at least 1."""
    return max(1.0, rate * BURST_SECONDS)


def ensure_rows(conn, caps):
    """Create the bucket of each capped provider that has none yet (full)."""
    for name, rate in caps.items():
        conn.execute(ENSURE, {"name": name, "burst": burst(rate)})


def take(conn, name, rate, wanted):
    """Take up to ``wanted`` tokens of ``name``'s bucket: (how many, seconds to the next one)."""
    row = conn.execute(
        TAKE, {"name": name, "rate": rate, "burst": burst(rate), "wanted": wanted}
    ).first()
    if row is None:  # no bucket yet (another worker's start): nothing taken this time
        return 0, 0.05
    taken, available = row
    left = available - taken
    return taken, 0.0 if left >= 1 else max(0.0, (1 - left) / rate)


def current_rates(conn):
    """Each capped provider's sends per second over the last whole second, by name."""
    return {name: rate for name, rate in conn.execute(RATES)}


def margin(rate):
    """The most a one-second window at the provider may exceed ``rate`` by: the bucket's burst,
    plus the tokens of ``DISPATCH_SECONDS`` taken before the window whose sends arrive in it."""
    return math.ceil(burst(rate) + rate * DISPATCH_SECONDS)
