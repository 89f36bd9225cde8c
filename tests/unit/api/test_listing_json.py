"""``listing.page_json`` writes the same bytes as ``json.dumps`` of the page's ``MailPage``, for
rows of every kind (the served pages are compared in tests/integration/api)."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailer.api import listing
from mailer.shapes.mail import MailPage

NOW = datetime(2026, 11, 29, 4, 0, 0, 123456, tzinfo=UTC)
ODD = 'Grüße ☃ 😀 "quoted" back\\slash tab\t nl\n del\x7f bell\x07 </script>'


def row(**values):
    """A listed mail's row (``reads.PAGE_COLUMNS``) with ``values`` replaced."""
    base = {
        "id": str(uuid.uuid4()),
        "status": "queued",
        "from_address": "a@example.com",
        "to_address": ["b@example.com"],
        "cc": [],
        "bcc": [],
        "reply_to": None,
        "subject": "Hi",
        "text": "Hello",
        "html": None,
        "result": None,
        "provider": None,
        "provider_message_id": None,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": NOW,
        "send_at": None,
        "headers": None,
        "metadata": None,
        "tags": [],
        "created_at": NOW,
        "updated_at": NOW,
        "sent_at": None,
        "template": None,
        "template_version": None,
        "tenant": "default",
        "api_key_id": None,
        "test": False,
        "source": "api",
        **values,
    }
    return tuple(base[name] for name in listing.PAGE_COLUMNS)


ROWS = [
    row(),
    row(tenant="shop.eu-1", api_key_id=str(uuid.uuid4())),
    row(
        status="sent",
        next_attempt_at=NOW.replace(microsecond=0),
        sent_at=NOW,
        cc=None,
        bcc=None,
        tags=None,
        headers={},
        metadata={},
    ),
    row(
        subject=ODD,
        text=ODD,
        html=ODD,
        reply_to=ODD,
        to_address=[ODD, "c@example.com"],
        cc=[ODD, None],
        tags=[ODD],
        headers={ODD: ODD},
        metadata={"x": 1.5, "y": [1, None]},
        result=[{"id": ODD, "n": 10**30, "f": 0.1}],
        provider="mailgun",
        provider_message_id=ODD,
        attempts=12,
        last_error=ODD,
        template=ODD,
        template_version=3,
    ),
    row(
        status="scheduled",
        send_at=NOW + timedelta(days=1),
        created_at=NOW.astimezone(timezone(timedelta(hours=5, minutes=30))),
        next_attempt_at=NOW.replace(microsecond=0, tzinfo=timezone(-timedelta(hours=3))),
    ),
    row(status="failed", result="a JSON string", id=uuid.uuid4()),
    row(test=True, source="smtp", bcc=["x@example.com", None], tags=[None]),
]


def page_dict(rows, more):
    """The page of ``rows`` as a dict, each mail the ``ListedMail`` of its columns."""
    return MailPage.dump(
        {
            "mails": [dict(zip(listing.PAGE_COLUMNS, row, strict=True)) for row in rows],
            "count": len(rows),
            "next_cursor": listing.encode_cursor(rows[-1]) if more else None,
        }
    )


@pytest.mark.parametrize("count", range(len(ROWS) + 1))
@pytest.mark.parametrize("more", [False, True])
def test_page_json_is_json_dumps_of_the_page_dict(count, more):
    rows = ROWS[:count]
    if more and not rows:
        return  # a page with more after it has a last mail
    assert listing.page_json(rows, more) == json.dumps(page_dict(rows, more)) + "\n"
