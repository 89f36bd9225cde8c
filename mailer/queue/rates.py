"""The rows of the shared send-rate caps: a token bucket per capped provider
(``sql/rates.sql``). The rates, bursts and margins are ``mailer.worker.ratecap``'s."""

from mailer.queue.queries import load

SQL = load("rates.sql")


def ensure(conn, name, burst):
    """A full bucket of ``burst`` tokens for ``name``, unless it has one."""
    conn.exec_driver_sql(SQL.ensure, {"name": name, "burst": float(burst)})


def take(conn, name, rate, burst, wanted):
    """Take up to ``wanted`` tokens of ``name``'s bucket: ``(taken, available)``, or None
    while it has no bucket."""
    params = {"name": name, "rate": float(rate), "burst": float(burst), "wanted": wanted}
    return conn.exec_driver_sql(SQL.take, params).first()


def current_rates(conn):
    """Each capped provider's sends per second over the last whole second, by name."""
    return {name: rate for name, rate in conn.exec_driver_sql(SQL.current_rates)}
