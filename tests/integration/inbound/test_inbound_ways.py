"""The three providers' ways in (issue 25): the sandbox posts a mail as Mailgun's route,
SendGrid's Inbound Parse and Postmark's inbound webhook post it, over real HTTP, and the service
answers 200 with what it stored; forged signatures, wrong basic auth, endpoints that are off
and posts that are not what the provider sends are refused, naming why.

What was stored (``GET /inbound/<id>``) is asserted in test_inbound_ways_stored.py."""

import uuid

import pytest
from helpers import serving
from unit.inbound.payloads import IMAGE

from app import create_app
from integration.inbound.posts import (
    CREDENTIALS,
    SUPPORT,
    basic,
    mailgun_form,
    post,
    post_mailgun_form,
    written,
)

WAYS = [
    pytest.param("mailgun", False, id="mailgun"),
    pytest.param("mailgun", True, id="mailgun-mime"),
    pytest.param("sendgrid", False, id="sendgrid"),
    pytest.param("sendgrid", True, id="sendgrid-raw"),
    pytest.param("postmark", False, id="postmark"),
    pytest.param("postmark", True, id="postmark-raw"),
]
REPLY = {
    "from": "Ann Example <ann@example.com>",
    "to": [SUPPORT],
    "cc": ["carl@example.com"],
    "subject": "Re: Your order",
    "text": "Thanks, that works.\n",
    "html": '<p>Thanks, that works. <img src="cid:logo@example.com"></p>',
    "headers": {"In-Reply-To": "<mail-1@shop.example.com>"},
    "attachments": [
        {"filename": "order.pdf", "content_type": "application/pdf", "content": b"%PDF-1.4"},
        {
            "filename": "logo.png",
            "content_type": "image/png",
            "content": IMAGE,
            "content_id": "logo@example.com",
        },
    ],
}


@pytest.fixture
def live(settings, app, sandbox):
    """The app on a real loopback HTTP server, and the sandbox posting to it with the
    providers' credentials."""
    with serving(create_app(settings)) as url:
        sandbox.configure_events(url=url, **CREDENTIALS)
        yield sandbox


def taken(answer):
    """The id a 200 answer gives, after checking the answer's shape."""
    assert answer["status"] == 200, answer
    body = answer["answer"]
    assert body["success"] is True and body["kind"] in ("stored", "replay", "report")
    return uuid.UUID(body["id"])


# Taken --------------------------------------------------------------------------------------


@pytest.mark.committed
@pytest.mark.parametrize("provider, raw", WAYS)
def test_each_way_takes_a_reply_with_attachments(live, provider, raw):
    [answer] = live.post_inbound(provider, raw=raw, **REPLY)
    taken(answer)


@pytest.mark.committed
@pytest.mark.parametrize("provider", ["mailgun", "sendgrid", "postmark"])
def test_a_retry_of_the_same_post_is_taken_again(live, provider):
    first, again = live.post_inbound(provider, times=2, **REPLY)
    assert taken(first) and taken(again)


def test_the_sandbox_control_endpoint_posts_as_the_provider(settings, app, sandbox):
    import requests

    with serving(create_app(settings)) as url:
        sandbox.configure_events(url=url, **CREDENTIALS)
        answer = requests.post(
            f"{sandbox.url}/_sandbox/inbound/postmark",
            json={"subject": "Over the control endpoint", "times": 1},
            timeout=10,
        )
    assert answer.status_code == 200
    [posted] = answer.json()["posted"]
    taken(posted)


# Refused: authentication --------------------------------------------------------------------


@pytest.mark.committed
def test_a_forged_mailgun_signature_is_401(live):
    live.configure_events(mailgun_key="not-the-signing-key")
    [answer] = live.post_inbound("mailgun", **REPLY)
    assert answer["status"] == 401
    assert answer["answer"]["errors"] == [
        {
            "field": "signature",
            "message": "Missing or wrong signature (timestamp, token, signature)",
        }
    ]


@pytest.mark.committed
@pytest.mark.parametrize(
    "provider, setting",
    [("sendgrid", "sendgrid_inbound_password"), ("postmark", "postmark_password")],
)
def test_wrong_basic_auth_is_401(live, provider, setting):
    live.configure_events(**{setting: "a-guess"})
    [answer] = live.post_inbound(provider, **REPLY)
    assert answer["status"] == 401
    [error] = answer["answer"]["errors"]
    assert error["field"] == "Authorization" and error["message"] == "Wrong user name or password"


@pytest.mark.parametrize("provider", ["sendgrid", "postmark"])
def test_missing_basic_auth_is_401_with_its_challenge(client, provider):
    path, body, headers = written(provider, **REPLY)
    del headers["Authorization"]
    answer = client.post(path, data=body, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == f'Basic realm="{provider}"'
    assert answer.get_json()["errors"][0]["message"].startswith("Missing")


def test_a_client_that_keeps_guessing_gets_429(settings, app):
    guessed = create_app({**settings, "AUTH_FAILURE_LIMIT": 2}).test_client()
    wrong = {"sendgrid_inbound_password": "a-guess"}
    codes = [post(guessed, "sendgrid", wrong, **REPLY).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert post(guessed, "sendgrid", **REPLY).status_code == 200  # the right one still passes


@pytest.mark.parametrize(
    "path, unset",
    [
        ("/inbound/mailgun", "MAILGUN_WEBHOOK_SIGNING_KEY"),
        ("/inbound/mailgun/mime", "MAILGUN_WEBHOOK_SIGNING_KEY"),
        ("/inbound/sendgrid", "SENDGRID_INBOUND_USERNAME"),
        ("/inbound/sendgrid", "SENDGRID_INBOUND_PASSWORD"),
        ("/inbound/postmark", "POSTMARK_WEBHOOK_USERNAME"),
        ("/inbound/postmark", "POSTMARK_WEBHOOK_PASSWORD"),
    ],
)
def test_each_way_is_404_until_its_credentials_are_set(settings, path, unset):
    client = create_app({**settings, unset: ""}).test_client()
    provider = path.split("/")[2]
    _, body, headers = written(provider, **REPLY)
    answer = client.post(path, data=body, headers=headers)
    assert answer.status_code == 404
    assert answer.get_json()["errors"] == [{"field": "url", "message": f"Off: {unset} is not set"}]


def test_a_stale_mailgun_timestamp_is_401(client):
    answer = post_mailgun_form(client, mailgun_form(age=2 * 86400))
    assert answer.status_code == 401
    assert answer.get_json()["errors"][0]["field"] == "timestamp"


def test_a_token_that_signed_another_post_is_refused_as_a_replay(client):
    token = "b" * 50
    assert post_mailgun_form(client, mailgun_form(token=token)).status_code == 200
    again = post_mailgun_form(client, mailgun_form(token=token))  # the same form: a retry
    assert again.status_code == 200
    other = post_mailgun_form(client, mailgun_form(token=token, **{"body-plain": "Other"}))
    assert other.status_code == 401
    assert other.get_json()["errors"][0]["field"] == "signature.token"


def test_a_malformed_mailgun_post_spends_its_token(client):
    token = "c" * 50
    bad = post_mailgun_form(client, mailgun_form(token=token, **{"message-headers": "{}"}))
    assert bad.status_code == 400
    good = post_mailgun_form(client, mailgun_form(token=token))
    assert good.status_code == 401
    assert good.get_json()["errors"][0]["field"] == "signature.token"


# Refused: not what the provider sends -------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"message-headers": "not json"}, "message-headers"),
        ({"attachment-count": "1"}, "attachment-1"),
        ({"attachments": "[]"}, "attachments"),  # a store() notification
    ],
)
def test_a_mailgun_post_that_is_not_mailguns_is_400_naming_the_field(client, fields, field):
    answer = post_mailgun_form(client, mailgun_form(**fields))
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == field
    assert answer.get_json()["message"] == "Malformed inbound mail; nothing was stored"


def test_json_posted_to_mailguns_inbound_url_is_400(client):
    answer = client.post("/inbound/mailgun", json={"signature": {}, "event-data": {}})
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "Content-Type"


def test_a_sendgrid_post_without_its_headers_is_400(client):
    answer = client.post(
        "/inbound/sendgrid",
        data={"text": "no headers"},
        headers=basic(
            CREDENTIALS["sendgrid_inbound_username"], CREDENTIALS["sendgrid_inbound_password"]
        ),
        content_type="multipart/form-data",
    )
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "headers"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"RecordType": "Delivery", "Recipient": "ann@example.com"}, "RecordType"),
        ({"Attachments": [{"Name": "a.pdf", "Content": "***"}]}, "Attachments[0].Content"),
        ({"ToFull": "support@in.example.com"}, "ToFull"),
        (["not", "an", "object"], "body"),
    ],
)
def test_a_postmark_post_that_is_not_postmarks_is_400_naming_the_field(client, body, field):
    auth = basic(CREDENTIALS["postmark_username"], CREDENTIALS["postmark_password"])
    answer = client.post("/inbound/postmark", json=body, headers=auth)
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == field


def test_a_post_past_max_content_length_is_413(settings):
    client = create_app({**settings, "MAX_CONTENT_LENGTH": 4096}).test_client()
    attachment = {"filename": "big.bin", "content": b"x" * 8192}
    answer = post(client, "sendgrid", **{**REPLY, "attachments": [attachment]})
    assert answer.status_code == 413
