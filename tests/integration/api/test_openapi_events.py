"""Delivery events in the OpenAPI document: the provider webhooks, the suppression list, and a
mail's recipients and timeline, checked against what the API really answers."""

import pytest
from signed import mailgun_body

from integration.api.schemas import assert_matches, validator
from mailer.events import provider as provider_events
from mailer.queue import suppressions
from models import RECIPIENT_STATUSES


@pytest.fixture
def spec(client):
    """The document as the API serves it."""
    return client.get("/api/spec").get_json()


def test_the_new_endpoints_are_documented(spec):
    paths = spec["paths"]
    assert paths["/webhooks/mailgun"]["post"]["security"] == []
    assert paths["/webhooks/sendgrid"]["post"]["security"] == []
    assert {"400", "401", "404", "200"} <= set(paths["/webhooks/sendgrid"]["post"]["responses"])
    assert set(paths["/suppressions"]) == {"get", "post"}
    assert set(paths["/suppressions/{address}"]) == {"delete"}
    assert {"bearerAuth": []} in paths["/suppressions"]["get"]["security"]
    schemas = spec["components"]["schemas"]
    assert schemas["Suppression"]["properties"]["reason"]["enum"] == list(suppressions.REASONS)
    assert schemas["DeliveryEvent"]["properties"]["type"]["enum"] == list(
        provider_events.EVENT_TYPES
    )
    assert set(RECIPIENT_STATUSES) <= set(schemas["Recipient"]["properties"]["status"]["enum"])
    assert {"recipients", "events"} <= set(schemas["Mail"]["properties"])


def test_suppression_answers_match_the_spec(client, spec):
    added = client.post("/suppressions", json={"address": "a@example.com", "reason": "bounce"})
    assert added.status_code == 201
    assert_matches(
        spec, "Suppression", {k: v for k, v in added.get_json().items() if k != "success"}
    )
    assert_matches(spec, "SuppressionPage", client.get("/suppressions").get_json())
    assert validator(spec, "SuppressionRequest").is_valid({"address": "a@example.com"})
    assert not validator(spec, "SuppressionRequest").is_valid({"address": "a", "colour": 1})


def test_event_answers_recipients_and_timeline_match_the_spec(client, spec, sql):
    mail_id = client.post(
        "/mail",
        json={"from": "s@example.com", "to": "r@example.com", "subject": "Hi", "text": "Hello"},
    ).get_json()["id"]
    sql("UPDATE email SET status = 'sent' WHERE id = :id", id=mail_id)
    answer = client.post(
        "/webhooks/mailgun",
        json=mailgun_body("failed", "r@example.com", mail_id=mail_id, severity="permanent"),
    )
    assert_matches(spec, "EventsReceived", answer.get_json())
    body = client.get(f"/mail/{mail_id}").get_json()
    for recipient in body["recipients"]:
        assert_matches(spec, "Recipient", recipient)
    for event in body["events"]:
        assert_matches(spec, "DeliveryEvent", event)
    refused = client.post("/webhooks/mailgun", json={"event-data": {}})
    assert refused.status_code == 401
    assert_matches(spec, "Error", refused.get_json())
