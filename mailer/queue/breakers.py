"""The rows of the providers' circuit breakers and of their actions by hand
(``sql/breakers.sql``). What a row means, and when a breaker opens or closes, is
``mailer.worker.circuit``'s."""

from mailer.queue.queries import load

SQL = load("breakers.sql")


def ensure(conn, names):
    """A closed breaker row for each of ``names`` that has none yet."""
    conn.exec_driver_sql(SQL.ensure, {"names": list(names)})


def clock(conn):
    """The database's clock at this moment."""
    return conn.exec_driver_sql(SQL.clock).scalar()


def breakers(conn, names=None):
    """The breaker rows of ``names`` (all when None or empty), by name, as dicts, each with the
    database's ``db_now``."""
    rows = conn.exec_driver_sql(SQL.breakers, {"names": list(names) if names else None})
    return [dict(row) for row in rows.mappings()]


def try_probe(conn, name, window):
    """Claim the probe of ``name``'s open breaker for ``window`` seconds: its end, or None if
    it is not due or another worker took it."""
    return conn.exec_driver_sql(SQL.try_probe, {"name": name, "window": float(window)}).scalar()


def close(conn, name):
    """Close ``name``'s breaker unless it is held open by hand; whether it was closed."""
    return conn.exec_driver_sql(SQL.close, {"name": name}).rowcount > 0


def lock(conn, name):
    """``name``'s breaker row (with ``db_now``), locked until the transaction ends; or None."""
    row = conn.exec_driver_sql(SQL.lock_breaker, {"name": name}).mappings().first()
    return None if row is None else dict(row)


def fail(conn, row):
    """Write ``row`` (a locked breaker row, changed by one more failure) back."""
    conn.exec_driver_sql(SQL.fail, row)


def pause(conn, name, seconds, reason):
    """Pause ``name`` for ``seconds`` from now; the pause's end, or None if a longer one
    holds."""
    return conn.exec_driver_sql(
        SQL.pause, {"name": name, "seconds": float(seconds), "reason": reason}
    ).scalar()


def open_by_hand(conn, name, actor, reason):
    """Hold ``name``'s breaker open by hand (its row made if it had none)."""
    conn.exec_driver_sql(SQL.open_by_hand, {"name": name, "actor": actor, "reason": reason})


def close_by_hand(conn, name):
    """Close ``name``'s breaker by hand; whether it had a row."""
    return conn.exec_driver_sql(SQL.close_by_hand, {"name": name}).rowcount > 0


def log_hand_action(conn, name, action, actor, reason):
    """One row of the ``provider_action`` log."""
    conn.exec_driver_sql(
        SQL.log_hand_action, {"name": name, "action": action, "actor": actor, "reason": reason}
    )


def hand_actions(conn, limit):
    """The latest ``limit`` breaker actions by hand, newest first, as dicts."""
    rows = conn.exec_driver_sql(SQL.hand_actions, {"limit": limit})
    return [dict(row) for row in rows.mappings()]
