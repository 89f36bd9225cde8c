"""``GET /mail`` writes its answer straight from the page's rows (``listing.page_json``): the
bytes are those ``json.dumps`` (as Flask-RESTful calls it) makes of the page's dict, each mail
as ``GET /mail/<id>`` shows it without its route, attachments, attempts, recipients and events,
for every kind of mail, every page and filter."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

ODD = 'Grüße ☃ 😀 "quoted" back\\slash tab\t nl\n del\x7f bell\x07 </script>'
PDF = base64.b64encode(b"%PDF-1.4 terms").decode()
MAILS = {
    "plain": {},
    "rich": {
        "cc": ["Boss <boss@example.com>", "c2@example.com"],
        "bcc": "b@example.com",
        "reply_to": "help@example.com",
        "html": "<p>Hi ☃</p>",
        "tags": ["t1", "ünï"],
        "metadata": {"user": "42", "name": 'Jöhn ☃ "q" \\'},
        "headers": {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:u@example.com>"},
        "attachments": [
            {"filename": "terms.pdf", "content_type": "application/pdf", "content": PDF}
        ],
    },
    "odd": {"subject": "Grüße ☃ 😀", "text": ODD, "to": '"Doe, Jöhn" <j@EXAMPLE.com>'},
    "scheduled": {"send_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    "failed": {"tags": ["t1"]},
    "sent": {"metadata": {"n": "1"}},
}


DETAIL_ONLY = (
    "route",
    "attachments",
    "attempt_log",
    "recipients",
    "events",
    "event_count",
    "replies",
    "reply_count",
)


def answers(client, path):
    """``path``'s answer, and the bytes json.dumps makes of its page with each mail as
    ``GET /mail/<id>`` shows it (less what only the detail has)."""
    fast = client.get(path)
    page = fast.get_json()
    listed = []
    for mail in page["mails"]:
        shown = client.get(f"/mail/{mail['id']}").get_json()
        listed.append({key: value for key, value in shown.items() if key not in DETAIL_ONLY})
    reference = json.dumps({**page, "mails": listed}) + "\n"
    return fast, reference


@pytest.fixture
def stored(client, mail, sql):
    """One mail of each kind in ``MAILS``, failed and sent ones as the worker leaves them."""
    ids = {
        name: client.post("/mail", json={**mail, **extra}).get_json()["id"]
        for name, extra in MAILS.items()
    }
    sql(
        "UPDATE email SET status = 'failed', attempts = 5, last_error = :error, "
        "result = CAST(:result AS json), next_attempt_at = now() WHERE id = :id",
        id=uuid.UUID(ids["failed"]),
        error="503 from mailgun: " + ODD,
        result=json.dumps(
            [
                {
                    "provider": "mailgun",
                    "status": 503,
                    "body": ODD,
                    "took": 0.25,
                    "big": 1e300,
                    "nested": {"a": [1, None, True]},
                }
            ]
        ),
    )
    # What validation refuses today may be in rows stored before: written as it is.
    sql(
        "UPDATE email SET subject = :odd, reply_to = :odd WHERE id = :id",
        odd=ODD,
        id=uuid.UUID(ids["odd"]),
    )
    sql(
        "UPDATE email SET status = 'delivered', attempts = 1, provider = 'sendgrid', "
        "provider_message_id = '<sg-1>', sent_at = date_trunc('second', now()), "
        'result = \'{"id": "<sg-1>"}\' WHERE id = :id',
        id=uuid.UUID(ids["sent"]),
    )
    return ids


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?limit=2",
        "?status=failed",
        "?status=scheduled",
        "?tag=t1",
        "?tag=%C3%BCn%C3%AF",
        "?to=j@example.com",
        "?status=delivered&status=failed",
        "?tag=none",
    ],
)
def test_each_page_is_the_bytes_json_dumps_makes(client, stored, query):
    fast, reference = answers(client, f"/mail{query}")
    assert fast.status_code == 200
    assert fast.get_data(as_text=True) == reference
    assert fast.headers["Content-Type"] == "application/json"
    assert fast.headers["Content-Length"] == str(len(reference))
    assert fast.get_json()["count"] == len(fast.get_json()["mails"])


def test_every_page_of_a_walk_is_the_same_bytes(client, stored):
    cursor, pages = None, 0
    while True:
        path = "/mail?limit=2" + (f"&cursor={cursor}" if cursor else "")
        fast, reference = answers(client, path)
        assert fast.get_data(as_text=True) == reference
        cursor, pages = fast.get_json()["next_cursor"], pages + 1
        if cursor is None:
            break
    assert pages == 3  # 6 mails, 2 a page
