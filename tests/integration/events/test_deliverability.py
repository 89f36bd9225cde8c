"""The guard's counts: each new delivered, bounced, deferred or complained event adds to its
provider's and recipient domain's minute, in the statement that stores the batch."""

import time

from signed import sendgrid_event, sendgrid_request
from sqlalchemy import event

from models import db


def post_batch(client, events):
    """Post a signed SendGrid batch; its answer."""
    body, headers = sendgrid_request(events)
    answer = client.post("/webhooks/sendgrid", data=body, headers=headers)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def counts(sql):
    """{(provider, domain): (delivered, bounced, deferred, complained)} over every minute."""
    rows = sql(
        "SELECT provider, domain, sum(delivered) AS d, sum(bounced) AS b, sum(deferred) AS f,"
        " sum(complained) AS c FROM deliverability GROUP BY provider, domain"
    )
    return {(r["provider"], r["domain"]): (r["d"], r["b"], r["f"], r["c"]) for r in rows}


def test_a_batch_counts_its_outcomes_per_provider_and_recipient_domain(client, sent, sql):
    gmail = [sent(to=f"g{n}@gmail.example", provider="sendgrid") for n in range(3)]
    outlook = [sent(to=f"o{n}@Outlook.EXAMPLE", provider="sendgrid") for n in range(3)]
    batch = [
        *(sendgrid_event("delivered", f"g{n}@gmail.example", mail) for n, mail in enumerate(gmail)),
        sendgrid_event("processed", "g0@gmail.example", gmail[0]),  # not an outcome
        sendgrid_event("open", "g0@gmail.example", gmail[0]),  # nor this
        sendgrid_event("bounce", "o0@outlook.example", outlook[0], type="bounce"),
        sendgrid_event("bounce", "o1@outlook.example", outlook[1], type="blocked"),  # deferred
        sendgrid_event("deferred", "o2@outlook.example", outlook[2]),
        sendgrid_event("delivered", "o2@outlook.example", outlook[2]),
        sendgrid_event("spamreport", "o2@outlook.example", outlook[2]),
    ]
    post_batch(client, batch)
    expected = {
        ("sendgrid", "gmail.example"): (3, 0, 0, 0),
        ("sendgrid", "outlook.example"): (1, 1, 2, 1),
    }
    assert counts(sql) == expected
    assert post_batch(client, batch)["repeats"] == len(batch)  # SendGrid's duplicates
    assert counts(sql) == expected


def test_outcomes_fall_in_the_minute_they_occurred(client, sent, sql):
    mails = [sent(to=f"r{n}@example.org", provider="sendgrid") for n in range(2)]
    post_batch(
        client,
        [
            sendgrid_event("delivered", "r0@example.org", mails[0]),
            sendgrid_event(
                "delivered", "r1@example.org", mails[1], timestamp=int(time.time()) - 180
            ),
        ],
    )
    minutes = sql(
        "SELECT minute, date_trunc('minute', now()) - minute AS ago FROM deliverability"
        " ORDER BY minute"
    )
    assert len(minutes) == 2
    assert minutes[0]["ago"].total_seconds() >= 120 and minutes[1]["ago"].total_seconds() <= 60


def test_the_counting_costs_no_statement_per_event(app, client, sent, sql):
    mails = [sent(to=f"r{n}@d{n % 5}.example", provider="sendgrid") for n in range(60)]

    def statements_for(events):
        seen = []

        def note(conn, cursor, statement, *args):
            seen.append(statement)

        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", note)
            try:
                post_batch(client, events)
            finally:
                event.remove(db.engine, "before_cursor_execute", note)
        return len(seen)

    small = statements_for(
        [sendgrid_event("deferred", f"r{n}@d{n % 5}.example", mails[n]) for n in range(5)]
    )
    large = statements_for(
        [sendgrid_event("deferred", f"r{n}@d{n % 5}.example", mails[n]) for n in range(5, 60)]
    )
    assert small == large
    assert sum(row[2] for row in counts(sql).values()) == 60
