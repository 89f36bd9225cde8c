"""``Email.mail_dict``, the mail object built without an ORM object (``POST /mail``'s answer,
``GET /mail``'s items), is exactly what ``to_dict`` and ``recipient_list`` give for the same
row."""

from datetime import UTC, datetime, timedelta

import pytest

from mailer.queue import submit
from mailer.validation.mail import validate_mail
from models import Email

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
            "files": [],
        }
    )
    return row


@pytest.mark.parametrize("request_body", REQUESTS)
@pytest.mark.parametrize("status", ["queued", "scheduled"])
def test_new_mail_dict_is_to_dict_of_the_same_row(request_body, status):
    row = stored(request_body, status)
    mail = submit.as_email(row)
    assert Email.mail_dict(row) == mail.to_dict(with_attempts=False)
    assert [
        {"address": a, "status": status, "reason": None, "updated_at": None}
        for a in row["recipients"]
    ] == mail.recipient_list()


def test_mail_dict_of_a_finished_row_is_to_dict():
    row = {
        **stored(REQUESTS[1], "delivered"),
        "result": [{"provider": "mailgun", "id": "<x>"}],
        "provider": "mailgun",
        "provider_message_id": "<x@mg>",
        "attempts": 2,
        "last_error": "503 from sendgrid",
        "sent_at": NOW + timedelta(seconds=3),
    }
    assert Email.mail_dict(row) == submit.as_email(row).to_dict(with_attempts=False)


@pytest.mark.parametrize("request_body", REQUESTS)
@pytest.mark.parametrize("status", ["queued", "scheduled"])
def test_stamped_answer_is_mail_dict_of_the_stored_row(request_body, status):
    # POST /mail's answer is built before the database sets created_at, status and
    # next_attempt_at (the key is stored in the same statement), then stamped with them:
    # the result is the stored row's mail_dict, with the recipients in the mail's status.
    from mailer.api.resources import accepted_mail, stamp_mail

    row = stored(request_body, status)
    body, code, headers = accepted_mail([row])
    stamped = stamp_mail(body, (row["created_at"], row["status"], row["next_attempt_at"]))
    expected = Email.mail_dict(row)
    assert {key: stamped[key] for key in expected} == expected
    assert stamped["recipients"] == [
        {"address": a, "status": status, "reason": None, "updated_at": None}
        for a in row["recipients"]
    ]
    assert (code, headers) == (202, {"Location": f"/mail/{row['id']}"})
