"""Fixtures of the events tests."""

import pytest


@pytest.fixture
def sent(client, sql, mail):
    """Make a mail as the worker leaves it once ``provider`` took it; returns its id."""

    def make(
        to="ann@example.com", cc=(), provider="mailgun", message_id="<20260101.abc@mg.example.com>"
    ):
        body = client.post("/mail", json={**mail, "to": to, "cc": list(cc)}).get_json()
        sql(
            "UPDATE email SET status = 'sent', provider = :provider, provider_message_id = :mid "
            "WHERE id = :id",
            provider=provider,
            mid=message_id,
            id=body["id"],
        )
        sql(
            "INSERT INTO recipient (email_id, address, status) "
            "SELECT id, unnest(recipients), 'sent' FROM email WHERE id = :id",
            id=body["id"],
        )
        return body["id"]

    return make
