"""A mail's events, however many: ``GET /mail/<id>`` and the admin's page show the latest
``MAX_EVENTS_SHOWN`` with the total, and ``GET /mail/<id>/events`` pages through all of them,
oldest first."""

import pytest

from app import create_app
from integration.admin.pages import timeline
from integration.api.schemas import assert_matches
from mailer.config import DEFAULTS

# Five events: e1 and e2 at the same moment (the id decides), then e3, e4, e5.
EVENTS = (("e1", 50), ("e2", 50), ("e3", 40), ("e4", 30), ("e5", 20))


@pytest.fixture
def sent(client, mail, sql):
    """A sent mail with the five ``EVENTS``; its id."""
    mail_id = client.post("/mail", json=mail).get_json()["id"]
    sql("UPDATE email SET status = 'sent', provider = 'mailgun' WHERE id = :id", id=mail_id)
    for key, seconds in EVENTS:
        sql(
            "INSERT INTO delivery_event (email_id, provider, dedup_key, type, provider_event, "
            "recipient, occurred_at, payload) VALUES (:id, 'mailgun', :key, 'delivered', :key, "
            "'rcpt@example.com', date_trunc('second', now()) - make_interval(secs => :s), '{}')",
            id=mail_id,
            key=key,
            s=seconds,
        )
    return mail_id


@pytest.fixture
def two(settings, app):
    """A client of the app with MAX_EVENTS_SHOWN = 2, on the same database as ``client``."""
    return create_app({**settings, "MAX_EVENTS_SHOWN": "2"}).test_client()


def names(events):
    """The provider's names of ``events``, in order."""
    return [event["event"] for event in events]


def test_the_default_is_100():
    assert DEFAULTS["MAX_EVENTS_SHOWN"] == 100


def test_a_mail_shows_its_latest_events_and_their_total(client, two, sent):
    everything = client.get(f"/mail/{sent}").get_json()
    assert names(everything["events"]) == ["e1", "e2", "e3", "e4", "e5"]
    assert everything["event_count"] == 5
    latest = two.get(f"/mail/{sent}").get_json()
    assert names(latest["events"]) == ["e4", "e5"]
    assert latest["event_count"] == 5


def test_a_new_mail_has_no_events(client, mail):
    answer = client.post("/mail", json=mail).get_json()
    assert (answer["events"], answer["event_count"]) == ([], 0)
    page = client.get(f"/mail/{answer['id']}/events").get_json()
    assert page == {"success": True, "events": [], "count": 0, "next_cursor": None}


def test_the_events_are_paged_oldest_first(client, sent):
    spec = client.get("/api/spec").get_json()
    seen, cursor, pages = [], None, 0
    while True:
        answer = client.get(
            f"/mail/{sent}/events?limit=2" + (f"&cursor={cursor}" if cursor else "")
        )
        assert answer.status_code == 200
        page = answer.get_json()
        assert_matches(spec, "EventPage", page)
        assert page["count"] == len(page["events"])
        seen += names(page["events"])
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert (seen, pages) == (["e1", "e2", "e3", "e4", "e5"], 3)
    whole = client.get(f"/mail/{sent}/events").get_json()
    assert whole["events"] == client.get(f"/mail/{sent}").get_json()["events"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("?limit=0", "limit"), ("?cursor=bm9wZQ", "cursor"), ("?page=2", "page")],
)
def test_a_bad_query_is_a_400_naming_it(client, sent, query, field):
    answer = client.get(f"/mail/{sent}/events{query}")
    assert answer.status_code == 400
    assert [error["field"] for error in answer.get_json()["errors"]] == [field]


@pytest.mark.parametrize("mail_id", ["00000000-0000-4000-8000-000000000000", "not-a-uuid"])
def test_an_unknown_mail_is_a_404(client, mail_id):
    answer = client.get(f"/mail/{mail_id}/events")
    assert answer.status_code == 404
    assert answer.get_json()["errors"] == [{"field": "id", "message": "Unknown id"}]


def test_the_events_need_a_key_as_the_mail_does(settings, app, sent):
    keyed = create_app({**settings, "API_KEYS": "secret-key"}).test_client()
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert keyed.get(f"/mail/{sent}/events", environ_base=remote).status_code == 401
    allowed = keyed.get(
        f"/mail/{sent}/events", environ_base=remote, headers={"X-API-Key": "secret-key"}
    )
    assert allowed.status_code == 200


def test_the_admin_page_shows_the_latest_with_the_total(client, two, sent):
    for api, shown, words in ((client, 5, "5 events"), (two, 2, "The last 2 of 5 events")):
        page = api.get(f"/admin/email/details/?id={sent}").get_data(as_text=True)
        listed = [e["detail"] for e in timeline(page) if e["kind"] == "event"]
        assert (
            listed
            == [
                "e1",
                "e2",
                "e3",
                "e4",
                "e5",
            ][-shown:]
        )
        assert f'id="event-count">{words}</small>' in page


def test_twenty_thousand_events_answer_a_bounded_mail(client, admin_page_of, sent, sql):
    # The setup's 20,000 rows may outlast the API's statement timeout on a busy machine.
    sql("SET LOCAL statement_timeout = 0")
    sql(
        "INSERT INTO delivery_event (email_id, provider, dedup_key, type, provider_event, "
        "recipient, occurred_at, payload) SELECT :id, 'sendgrid', 'k' || n, 'opened', 'open', "
        "'rcpt@example.com', now() + make_interval(secs => n), '{}' "
        "FROM generate_series(1, 20000) AS n",
        id=sent,
    )
    answer = client.get(f"/mail/{sent}")
    shown = answer.get_json()
    assert shown["event_count"] == 20005 and len(shown["events"]) == DEFAULTS["MAX_EVENTS_SHOWN"]
    assert shown["events"][-1]["received_at"] and len(answer.get_data()) < 100_000
    page = admin_page_of(sent)
    assert 'id="event-count">The last 100 of 20,005 events</small>' in page
    assert len(page) < 200_000


@pytest.fixture
def admin_page_of(client):
    """The admin's page of a mail, as text."""
    return lambda mail_id: client.get(f"/admin/email/details/?id={mail_id}").get_data(as_text=True)
