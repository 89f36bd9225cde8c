"""How the API's management endpoints append to the audit log (``mailer.queue.audit``).

``audited(conn, action, target, summary)`` appends one row for the request's key, its client
address and its tenant, on the connection of the change, so the row commits with the change or
not at all. Every endpoint that changes keys, client webhook endpoints, templates or
suppressions calls it once per change it made (a request that changed nothing appends
nothing).
"""

from mailer.api.auth import client_address, current_principal
from mailer.queue import audit


def who():
    """The request's key as the log names it (``audit.key``)."""
    principal = current_principal()
    return audit.key(principal.key_id, principal.key_name)


def audited(conn, action, target, summary=None, tenant=None):
    """Append the change ``action`` on ``target`` (``summary``: what changed) to the audit log,
    for the request's key and client, in the transaction of ``conn``; ``tenant`` defaults to
    the key's own."""
    principal = current_principal()
    audit.record(
        conn,
        who(),
        principal.tenant if tenant is None else tenant,
        action,
        target,
        summary,
        client_address(),
    )
