"""What the providers' unit tests share: a mail id, a minimal message, and the parts of an HTTP
answer that ``Provider.read_response`` reads."""

from dataclasses import dataclass, field

from providers import Message

MAIL_ID = "9f0b7c1e-4d0a-4d7e-9a51-0c2f3e8b6a11"


@dataclass
class Answer:
    """The parts of an HTTP answer that ``read_response`` reads."""

    status_code: int
    headers: dict = field(default_factory=dict)


def message(**fields):
    """A message with only the required parts, plus ``fields``."""
    return Message(
        **{
            "id": MAIL_ID,
            "from_address": "shop@example.com",
            "to": ["ann@example.com"],
            "subject": "Your order",
            **fields,
        }
    )
