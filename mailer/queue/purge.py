"""Delete finished mail (sent, delivered, bounced, complained, suppressed, failed or cancelled)
older than RETENTION_DAYS, with its attachments, attempts, recipients, events and webhooks;
received mail that came more than RETENTION_DAYS ago, with its attachments and webhooks;
idempotency keys past IDEMPOTENCY_TTL; bounce suppressions that expired; and the guard's
per-minute delivery outcomes older than a day, or twice DELIVERABILITY_WINDOW if longer; and
the rows of the audit log older than AUDIT_RETENTION_DAYS (the only deletion of the log); in
small batches.

    scripts/purge --config settings.cfg [--days 30] [--batch-size 5000] [--dry-run]

Run it from cron, e.g. hourly. Each batch is its own short transaction, so the API and the
workers never wait long on it; queued and sending mail is never touched. The statements are in
``sql/purge.sql``.
"""

import argparse
import logging
import sys
import time

from mailer.config import load_config
from mailer.database import check_schema, make_engine
from mailer.queue import audit, inbound, suppressions
from mailer.queue.queries import load

SQL = load("purge.sql")
log = logging.getLogger("mail_service.purge")


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description="Purge finished mail past its retention.")
    parser.add_argument("--config", help="Flask config file (default: $MAIL_SERVICE_CONFIG)")
    parser.add_argument("--days", type=float, help="retention in days (default: RETENTION_DAYS)")
    parser.add_argument("--batch-size", type=int, default=5000, help="mails per transaction")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds to sleep between batches, to go easy on a busy database",
    )
    parser.add_argument("--dry-run", action="store_true", help="only count what would go")
    return parser.parse_args(argv)


def purge_batch(conn, days, batch_size):
    """Delete up to ``batch_size`` finished mails last updated more than ``days`` ago; how
    many went."""
    return conn.exec_driver_sql(
        SQL.purge_mail, {"days": float(days), "batch_size": batch_size}
    ).rowcount


def count_purgeable(conn, days):
    """How many finished mails were last updated more than ``days`` ago."""
    return conn.exec_driver_sql(SQL.count_purgeable, {"days": float(days)}).scalar()


def purge_idempotency_keys(conn, ttl, batch_size):
    """Delete up to ``batch_size`` keys older than ``ttl`` seconds; how many went."""
    return conn.exec_driver_sql(
        SQL.purge_keys, {"ttl": float(ttl), "batch_size": batch_size}
    ).rowcount


def deliverability_kept(window):
    """Seconds of the guard's per-minute outcomes kept: a day, or twice the window if longer."""
    return max(86400.0, 2 * window)


def purge_deliverability(conn, keep, batch_size):
    """Delete up to ``batch_size`` per-minute outcomes older than ``keep`` seconds; how many
    went."""
    return conn.exec_driver_sql(
        SQL.purge_deliverability, {"keep": float(keep), "batch_size": batch_size}
    ).rowcount


def purge(engine, days, batch_size, pause=0.0):
    """Delete batches until none is left; returns (mails deleted, longest batch in seconds)."""
    return _in_batches(engine, lambda conn: purge_batch(conn, days, batch_size), batch_size, pause)


def purge_inbound(engine, days, batch_size, pause=0.0):
    """Delete received mail older than ``days`` days; returns (deleted, longest batch)."""
    return _in_batches(
        engine, lambda conn: inbound.purge(conn, days, batch_size), batch_size, pause
    )


def purge_keys(engine, ttl, batch_size):
    """Delete idempotency keys past ``IDEMPOTENCY_TTL``; returns (keys deleted, longest)."""
    return _in_batches(
        engine, lambda conn: purge_idempotency_keys(conn, ttl, batch_size), batch_size
    )


def purge_audit(engine, days, batch_size):
    """Delete the audit log's rows older than ``days`` days; returns (rows deleted, longest)."""
    return _in_batches(engine, lambda conn: audit.purge(conn, days, batch_size), batch_size)


def _in_batches(engine, delete_batch, batch_size, pause=0.0):
    """Run ``delete_batch`` in its own transaction until a batch comes back short."""
    total, longest = 0, 0.0
    while True:
        started = time.monotonic()
        with engine.begin() as conn:
            deleted = delete_batch(conn)
        longest = max(longest, time.monotonic() - started)
        total += deleted
        if deleted < batch_size:
            return total, longest
        if pause:
            time.sleep(pause)


def main(argv=None):
    """Purge, and report how much went and how long the longest transaction took."""
    args = parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    days = args.days if args.days is not None else config["RETENTION_DAYS"]
    engine = make_engine(config)
    check_schema(engine)
    if args.dry_run:
        with engine.connect() as conn:
            log.info(
                "%d finished mails older than %g days would be purged",
                count_purgeable(conn, days),
                days,
            )
            log.info(
                "%d received mails older than %g days would be purged",
                inbound.count_purgeable(conn, days),
                days,
            )
        return 0
    started = time.monotonic()
    total, longest = purge(engine, days, max(1, args.batch_size), args.pause)
    log.info(
        "purged %d finished mails older than %g days in %.1fs (longest batch %.3fs)",
        total,
        days,
        time.monotonic() - started,
        longest,
    )
    received, _ = purge_inbound(engine, days, max(1, args.batch_size), args.pause)
    log.info("purged %d received mails older than %g days", received, days)
    keys, _ = purge_keys(engine, config["IDEMPOTENCY_TTL"], max(1, args.batch_size))
    log.info("purged %d idempotency keys older than IDEMPOTENCY_TTL", keys)
    expired, _ = _in_batches(
        engine,
        lambda conn: suppressions.purge_expired(conn, max(1, args.batch_size)),
        max(1, args.batch_size),
    )
    log.info("purged %d expired bounce suppressions", expired)
    keep = deliverability_kept(config["DELIVERABILITY_WINDOW"])
    minutes, _ = _in_batches(
        engine,
        lambda conn: purge_deliverability(conn, keep, max(1, args.batch_size)),
        max(1, args.batch_size),
    )
    log.info("purged %d per-minute delivery outcomes older than %gs", minutes, keep)
    logged, _ = purge_audit(engine, config["AUDIT_RETENTION_DAYS"], max(1, args.batch_size))
    log.info("purged %d audit log rows older than AUDIT_RETENTION_DAYS", logged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
