"""The simulator decides by the first recipient's local part, keeps the providers' contract,
and reports the events of each outcome in order, one set per recipient."""

from datetime import UTC, datetime

import pytest

from mailer.worker import simulator
from mailer.worker.delivery import Decision
from providers import Message, MessageRejected

SENT_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def message(*to):
    """A message to ``to``."""
    return Message(id="m1", from_address="a@example.com", to=list(to), subject="Hi", text="x")


def sent(attempts=1):
    """The decision of a test mail the simulator took."""
    answer = {"at": SENT_AT.isoformat()}
    return Decision(
        id="m1",
        status="sent",
        attempts=attempts,
        provider="simulator",
        message_id="simulated-m1",
        result=[answer],
        test=True,
    )


@pytest.mark.parametrize(
    "address, outcome",
    [
        ("Bounce.Me <bounce-7@example.com>", simulator.BOUNCE),
        ("complaint@example.com", simulator.COMPLAINT),
        ("REJECT@example.com", simulator.REJECT),
        ("deferred@example.com", simulator.DEFER),
        ("ann@example.com", None),
        ("ann.bounce@example.com", None),
    ],
)
def test_the_first_recipient_decides(address, outcome):
    assert simulator.outcome_for(address) == outcome


def test_a_reject_is_a_rejection_and_the_rest_are_taken():
    with pytest.raises(MessageRejected):
        simulator.Simulator().send(None, message("reject@example.com", "ann@example.com"))
    taken = simulator.Simulator().send(None, message("ann@example.com", "reject@example.com"))
    assert taken.message_id == "simulated-m1" and taken.status_code == 200


def test_events_per_recipient_in_order_with_unique_keys():
    events = simulator.events_of(sent(), ["defer@example.com", "Bo <bo@Example.com>"])
    assert [(e.type, e.recipient) for e in events] == [
        ("deferred", "defer@example.com"),
        ("deferred", "bo@example.com"),
        ("delivered", "defer@example.com"),
        ("delivered", "bo@example.com"),
    ]
    assert all(e.provider == "simulator" and e.mail_id == "m1" for e in events)
    assert len({e.key for e in events}) == 4
    assert events[0].occurred_at > SENT_AT and events[2].occurred_at > events[0].occurred_at
    again = simulator.events_of(sent(attempts=2), ["defer@example.com"])
    assert not {e.key for e in again} & {e.key for e in events}


def test_mail_that_did_not_go_reports_nothing():
    failed = Decision(id="m1", status="failed", attempts=1, test=True)
    assert simulator.events_of(failed, ["ann@example.com"]) == ()
