"""A brake on guessing: a client that sent too many wrong credentials lately gets 429 for
its wrong ones.

After ``AUTH_FAILURE_LIMIT`` failures (wrong API keys, admin passwords or metrics tokens) from
one client within ``AUTH_FAILURE_WINDOW`` seconds, that client's failures answer 429 with
``Retry-After`` for ``AUTH_BLOCK_SECONDS`` instead of 401, and the block is logged once. The
client is its real address (``auth.client_address``: behind ``TRUSTED_PROXIES``, the one they
saw), and the counts live in PostgreSQL (``mailer.queue.auth_failures``), so every API process
counts and refuses alike.

Only a failure costs a query: valid credentials are taken without looking here, so no client
(another one behind the same proxy or NAT, or the database being down) keeps a valid key out.
While the database cannot be reached, failures answer 401 uncounted.
"""

import logging

from sqlalchemy.exc import SQLAlchemyError

from mailer.database import transaction
from mailer.queue import auth_failures

log = logging.getLogger("mail_service.auth")


class FailureThrottle:
    """The failed-authentication policy of one app: its limit, window and block."""

    def __init__(self, limit, window, block):
        self.limit = limit
        self.window = window  # seconds
        self.block = block  # seconds

    def failed(self, client):
        """A failure of ``client``: the seconds it must wait if it is refused already (429),
        else 0 once the failure is counted (401)."""
        try:
            with transaction() as conn:
                seconds = auth_failures.blocked_for(conn, client)
                if seconds:
                    return seconds
                blocked = auth_failures.count(conn, client, self.limit, self.window, self.block)
        except SQLAlchemyError as err:
            log.warning("failed authentication from %s not counted: %s", client, type(err).__name__)
            return 0
        if blocked:
            log.warning(
                "%d failed authentications from %s within %gs: refusing its failures for %gs",
                self.limit,
                client,
                self.window,
                self.block,
            )
        return 0
