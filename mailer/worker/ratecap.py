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

from mailer.queue import rates

BURST_SECONDS = 0.2  # the bucket holds this many seconds of the rate (the margin over a cap)
# A token is taken when a batch is claimed, and its send reaches the provider after the batch
# waits for a send thread and the request crosses the network: measured at the provider, a
# one-second window can also hold the sends of up to this many seconds' tokens from before it.
DISPATCH_SECONDS = 0.1


def burst(rate):
    """How many tokens a provider's bucket holds: ``BURST_SECONDS`` of its rate, at least 1."""
    return max(1.0, rate * BURST_SECONDS)


def ensure_rows(conn, caps):
    """Create the bucket of each capped provider that has none yet (full)."""
    for name, rate in caps.items():
        rates.ensure(conn, name, burst(rate))


def take(conn, name, rate, wanted):
    """Take up to ``wanted`` tokens of ``name``'s bucket: (how many, seconds to the next one)."""
    row = rates.take(conn, name, rate, burst(rate), wanted)
    if row is None:  # no bucket yet (another worker's start): nothing taken this time
        return 0, 0.05
    taken, available = row
    left = available - taken
    return taken, 0.0 if left >= 1 else max(0.0, (1 - left) / rate)


def current_rates(conn):
    """Each capped provider's sends per second over the last whole second, by name."""
    return rates.current_rates(conn)


def margin(rate):
    """The most a one-second window at the provider may exceed ``rate`` by: the bucket's burst,
    plus the tokens of ``DISPATCH_SECONDS`` taken before the window whose sends arrive in it."""
    return math.ceil(burst(rate) + rate * DISPATCH_SECONDS)
