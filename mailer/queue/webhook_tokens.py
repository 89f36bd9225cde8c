"""The Mailgun signature tokens already used, shared by every API process (``webhook_token``).

Mailgun signs ``timestamp + token``, not the event beside them, so a signed triple seen once
(in a log, a proxy, a mistaken forward) would sign any event posted with it while its timestamp
is fresh. Each token that passes is kept with a digest of its event until its signature is too
old to be taken anyway (its timestamp + ``WEBHOOK_MAX_AGE``): the same token with the same
event again is Mailgun retrying (a repeat), with another event it is a replay (refused).

``remember`` is one statement, in the caller's transaction (the one that records the event,
so a refusal stores nothing); it also deletes a few expired tokens, through the index on
``expires_at``, so the table holds about one window of tokens without a purge job.
"""

import hashlib
import json

from mailer.queue.queries import load

SQL = load("webhook_tokens.sql")
PURGE_PER_WRITE = 10  # expired tokens each new one deletes: more than one keeps up


def event_digest(event_data):
    """The sha256 (hex) of an event as parsed JSON: the same event, however it is written out,
    has the same digest."""
    text = json.dumps(event_data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def remember(conn, token, digest, expires):
    """Keep ``token`` with ``digest`` until ``expires`` (epoch seconds); whether it is new or
    was seen with this very event before (False: it signed another event)."""
    stored = conn.exec_driver_sql(
        SQL.remember,
        {"token": token, "digest": digest, "expires": expires, "purge": PURGE_PER_WRITE},
    ).scalar_one()
    return stored == digest
