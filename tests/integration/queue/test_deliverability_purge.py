"""Retention of the guard's counts: minutes older than a day, or twice the window, go."""

import pytest

from mailer.queue.purge import deliverability_kept, purge_deliverability


@pytest.mark.parametrize(("window", "kept"), [(3600.0, 86400.0), (86400.0, 172800.0)])
def test_a_day_is_kept_or_twice_the_window(window, kept):
    assert deliverability_kept(window) == kept


def test_old_minutes_go_in_batches_and_the_window_stays(app, sql):
    sql(
        "INSERT INTO deliverability (minute, provider, domain, delivered)"
        " SELECT date_trunc('minute', now()) - n * interval '1 hour', 'mailgun', 'x.example', 1"
        " FROM generate_series(0, 29) AS n"
    )
    conn = app.extensions["test_connection"]
    assert purge_deliverability(conn, deliverability_kept(3600.0), 4) == 4
    while purge_deliverability(conn, deliverability_kept(3600.0), 4):
        pass
    [row] = sql("SELECT count(*) AS n, max(now() - minute) AS oldest FROM deliverability")
    assert row["n"] == 24 and row["oldest"].total_seconds() < 86400
