"""Placeholder, to be replaced by the dsn branch's module of the same name: a bounce report's
failed recipients moved to bounced through the providers' events path.

Only the function ``mailer.queue.inbound.receive`` calls, with its signature.
"""


def apply_report(conn, report, config):
    """Apply ``report`` (a ``mailer.inbound.reports.BounceReport``) in the caller's transaction;
    how many recipients moved to bounced. Placeholder: none."""
    return 0
