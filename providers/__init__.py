"""Email providers, one module each, behind the contract in ``base``.

``build_providers`` turns the ``PROVIDERS`` setting into provider objects in failover order.
"""

from providers.base import (
    Message,
    MessageRejected,
    OutcomeUnknown,
    Provider,
    ProviderError,
    ProviderMisconfigured,
    ProviderUnavailable,
    RateLimited,
    Sent,
)
from providers.mailgun import Mailgun
from providers.postmark import Postmark
from providers.sendgrid import SendGrid
from providers.ses import SES
from providers.smtp import SMTPRelay

REGISTRY = {cls.name: cls for cls in (Mailgun, SendGrid, SES, Postmark, SMTPRelay)}

__all__ = [
    "Message",
    "MessageRejected",
    "OutcomeUnknown",
    "Provider",
    "ProviderError",
    "ProviderMisconfigured",
    "ProviderUnavailable",
    "RateLimited",
    "Sent",
    "build_providers",
]


def build_providers(config):
    """The providers named in ``PROVIDERS``, in order; unknown names are a settings error."""
    names = config["PROVIDERS"]
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise ValueError(f"PROVIDERS names unknown providers: {', '.join(unknown)}")
    if not names:
        raise ValueError("PROVIDERS is empty: name at least one of mailgun, sendgrid")
    return [REGISTRY[name](config) for name in names]
