"""The names the API shows clients, gathered from the modules that define them.

Each name is defined once, where the code acts on it; this module only collects them so that
the OpenAPI document (and anything else that lists them) cannot drift from the code:

- ``MAIL_STATUSES``: a mail's statuses, from ``models``;
- ``ANSWER_OUTCOMES``: what came of one provider call, ``sent`` or the ``outcome`` of an error
  class of ``providers.base``;
- ``ATTEMPT_OUTCOMES``: those, ``lease_expired`` for a send cut short by a dead worker, and
  ``retried`` for an operator's retry, and the other operators' actions (``cancelled``,
  ``released``, ``send_now``, ``resent`` on the original of a resend, ``resent_from`` on the
  copy);
- ``CIRCUIT_STATES``: a provider's circuit breaker, from ``mailer.worker.circuit``;
- ``RECIPIENT_STATUSES``: a recipient's statuses after the hand-off, from ``models``.
"""

from mailer.queue.actions import (
    CANCELLED_OUTCOME,
    RELEASED_OUTCOME,
    RESENT_FROM_OUTCOME,
    RESENT_OUTCOME,
    RETRIED_OUTCOME,
    SENT_NOW_OUTCOME,
)
from mailer.queue.lease import LEASE_EXPIRED_OUTCOME
from mailer.worker.circuit import CIRCUIT_STATES as STATES
from mailer.worker.circuit import PAUSED
from models import RECIPIENT_STATUSES, STATUSES
from providers import base

SENT_OUTCOME = "sent"  # a provider accepted the mail (mailer/worker/delivery.py)


def provider_error_outcomes():
    """The ``outcome`` of each error class in ``providers.base``, in definition order, once."""
    # A module's namespace keeps definition order, which reads from the general error to the
    # particular ones; a subclass that keeps its parent's outcome adds nothing.
    classes = [
        member
        for member in vars(base).values()
        if isinstance(member, type) and issubclass(member, base.ProviderError)
    ]
    return list(dict.fromkeys(cls.outcome for cls in classes))


MAIL_STATUSES = list(STATUSES)
ANSWER_OUTCOMES = [SENT_OUTCOME, *provider_error_outcomes()]
ATTEMPT_OUTCOMES = [
    *ANSWER_OUTCOMES,
    LEASE_EXPIRED_OUTCOME,
    RETRIED_OUTCOME,
    CANCELLED_OUTCOME,
    RELEASED_OUTCOME,
    SENT_NOW_OUTCOME,
    RESENT_OUTCOME,
    RESENT_FROM_OUTCOME,
]
CIRCUIT_STATES = list(STATES)

__all__ = [
    "ANSWER_OUTCOMES",
    "ATTEMPT_OUTCOMES",
    "CIRCUIT_STATES",
    "MAIL_STATUSES",
    "PAUSED",
    "RECIPIENT_STATUSES",
    "SENT_OUTCOME",
]
