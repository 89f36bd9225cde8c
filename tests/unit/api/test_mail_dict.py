"""``POST /mail``'s answer is built before the database sets the mail's ``created_at``,
``status`` and ``next_attempt_at`` (the key is stored in the same statement), then stamped with
them: the result is the ``Mail`` of the stored row, as ``GET /mail/<id>`` shows a mail that no
worker has touched yet."""

from datetime import UTC, datetime, timedelta

import pytest

from mailer.api.resources import accepted_mail, stamp_mail
from mailer.queue import submit
from mailer.queue.reads import AttachmentRow
from mailer.shapes.mail import Mail
from mailer.validation.mail import validate_mail

NOW = datetime(2026, 11, 28, 23, 0, 0, 123456, tzinfo=UTC)
LIMITS = {"max_recipients": 50, "max_attachment_bytes": 10_000_000, "max_schedule_days": 30}
REQUESTS = [
    {"from": "a@example.com", "to": "b@example.com", "subject": "Hi", "text": "Hello"},
    {
        "from": "Shop <shop@example.com>",
        "to": ["ann@example.com", '"Doe, John" <j@EXAMPLE.com>'],
        "cc": "boss@example.com",
        "bcc": ["x@example.com"],
        "reply_to": "help@example.com",
        "subject": "Your order",
        "html": "<p>Thanks</p>",
        "tags": ["t1", "t2"],
        "metadata": {"order": "42"},
        "headers": {"X-Campaign": "spring"},
        "send_at": (NOW + timedelta(days=1)).isoformat(),
        "attachments": [{"filename": "a.txt", "content": "aGk="}],
    },
]


def stored(request, status):
    """The row ``enqueue_many`` returns for ``request``, as the database would stamp it."""
    row = submit.new_mail_row(validate_mail(dict(request), **LIMITS), submit.new_ids(1)[0])
    row.update(
        {
            "created_at": NOW,
            "updated_at": NOW,
            "status": status,
            "next_attempt_at": row["send_at"] or NOW,
        }
    )
    return row


def as_read_back(row):
    """``reads.mail_detail``'s dict of the stored mail: nothing delivered yet."""
    return {
        **row,
        "result": None,
        "provider": None,
        "provider_message_id": None,
        "route": None,
        "last_error": None,
        "sent_at": None,
        "attachments": [AttachmentRow(**item) for item in row["files"]],
        "attempt_log": [],
        "recipient_rows": [],
        "events": [],
        "event_count": 0,
        "replies": [],
        "reply_count": 0,
    }


@pytest.mark.parametrize("request_body", REQUESTS)
@pytest.mark.parametrize("status", ["queued", "scheduled"])
def test_stamped_answer_is_the_stored_mail(request_body, status):
    row = stored(request_body, status)
    body, code, headers = accepted_mail([row])
    stamped = stamp_mail(body, (row["created_at"], row["status"], row["next_attempt_at"]))
    assert stamped == Mail.dump(as_read_back(row))
    assert stamped["recipients"] == [
        {"address": a, "status": status, "reason": None, "updated_at": None}
        for a in row["recipients"]
    ]
    assert stamped["next_attempt_at"] == row["next_attempt_at"].isoformat()
    assert (code, headers) == (202, {"Location": f"/mail/{row['id']}"})
