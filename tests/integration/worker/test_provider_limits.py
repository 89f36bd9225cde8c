"""Issue 19, item 15: each provider is sent only the tags and options it takes.

The mail keeps all its tags with us (stored, listed, filterable); Mailgun is sent the first
three ASCII ones, SendGrid its ten ASCII categories. Custom headers and metadata are bounded at
submission so that any mail fits every provider: Mailgun's 16 KB of sending options is the
tightest. The sandbox enforces Mailgun's documented limits over real HTTP, refusing as Mailgun
does, so what it received is what Mailgun would have taken.
"""

import pytest
import requests
from conftest import MAILGUN_KEY

from providers.base import MAX_DOMAIN

TAGS = [
    "café",  # not ASCII: neither provider takes it
    "welcome",
    "Welcome",  # the same tag for Mailgun, which ignores case
    "ünïcode",
    "spring",
    "onboarding",
    "t7",
    "t8",
    "t9",
    "t10",
]
# What the service adds to every Mailgun send: our id, and our Message-ID at its longest.
MAIL_ID_OPTION = len("v:mail_id") + 36 + len("h:Message-Id") + len("<@>") + 36 + MAX_DOMAIN
MAILGUN_OPTIONS = 16 * 1024


def headers_taking(size):
    """Custom headers that take exactly ``size`` bytes of Mailgun's options (``h:`` fields)."""
    headers, index = {}, 0
    while size > 0:
        name = f"X-Pad-{index:02d}"
        value = "v" * min(990, size - len(f"h:{name}"))
        headers[name] = value
        size -= len(f"h:{name}") + len(value)
        index += 1
    assert size == 0
    return headers


def sent_through(client, mail, run_worker, provider, **fields):
    """Submit a mail with ``fields``, let ``provider`` alone send it; the mail as the API shows
    it afterwards."""
    answer = client.post("/mail", json={**mail, **fields})
    assert answer.status_code == 202, answer.get_json()
    run_worker(PROVIDERS=provider)
    return client.get(f"/mail/{answer.get_json()['id']}").get_json()


def test_mailgun_is_sent_the_first_three_ascii_tags_and_the_mail_keeps_all(
    client, mail, sandbox, run_worker
):
    body = sent_through(client, mail, run_worker, "mailgun", tags=TAGS)
    assert body["status"] == "sent", body["last_error"]
    [received] = sandbox.messages("mailgun")
    assert received["options"]["tag"] == ["welcome", "spring", "onboarding"]
    assert body["tags"] == TAGS
    assert [mail["id"] for mail in client.get("/mail?tag=café").get_json()["mails"]] == [body["id"]]


def test_sendgrid_is_sent_the_ascii_tags_as_categories(client, mail, sandbox, run_worker):
    body = sent_through(client, mail, run_worker, "sendgrid", tags=TAGS)
    assert body["status"] == "sent", body["last_error"]
    [received] = sandbox.messages("sendgrid")
    assert received["categories"] == [tag for tag in TAGS if tag.isascii()]
    assert body["tags"] == TAGS


def test_headers_that_fill_mailgun_options_exactly_go_through_mailgun(
    client, mail, sandbox, run_worker
):
    headers = headers_taking(MAILGUN_OPTIONS - MAIL_ID_OPTION)
    body = sent_through(client, mail, run_worker, "mailgun", headers=headers)
    assert body["status"] == "sent", body["last_error"]
    [received] = sandbox.messages("mailgun")
    assert {**headers, "Message-Id": f"<{body['id']}@example.com>"} == received["headers_in"]


@pytest.mark.parametrize(
    "extra",
    [
        {"headers": headers_taking(MAILGUN_OPTIONS - MAIL_ID_OPTION + 1)},
        # What the service adds counts too: Reply-To is sent as a header, tags as options.
        {"headers": headers_taking(MAILGUN_OPTIONS - MAIL_ID_OPTION), "tags": ["a"]},
        {"headers": headers_taking(MAILGUN_OPTIONS - MAIL_ID_OPTION), "reply_to": "r@ex.com"},
        # Characters beyond ASCII take more than a byte each.
        {"headers": {f"X-Wide-{i}": "é" * 990 for i in range(9)}},
    ],
    ids=["one-byte-over", "with-a-tag", "with-reply-to", "utf-8"],
)
def test_headers_beyond_mailgun_options_are_refused_at_submission(client, mail, sql, extra):
    answer = client.post("/mail", json={**mail, **extra})
    assert answer.status_code == 400
    [error] = answer.get_json()["errors"]
    assert error["field"] == "headers"
    assert "16384 bytes" in error["message"] and "Mailgun" in error["message"]
    assert sql("SELECT count(*) AS n FROM email")[0]["n"] == 0


def test_a_batch_names_the_mail_whose_headers_do_not_fit(client, mail):
    too_many = headers_taking(MAILGUN_OPTIONS)
    answer = client.post("/mail/batch", json=[mail, {**mail, "headers": too_many}])
    assert answer.status_code == 400
    assert "headers" in str(answer.get_json())


# --- The sandbox refuses what Mailgun refuses ---------------------------------------------------


def mailgun_send(sandbox, *options):
    """Post a minimal Mailgun send with ``options`` (form fields) to the sandbox."""
    fields = [
        ("from", "a@example.com"),
        ("to", "b@example.com"),
        ("subject", "s"),
        ("text", "t"),
        *options,
    ]
    with requests.Session() as session:
        session.trust_env = False
        return session.post(
            f"{sandbox.url}/v3/mg.example.com/messages",
            auth=("api", MAILGUN_KEY),
            data=fields,
            timeout=5,
        )


@pytest.mark.parametrize(
    "options, refusal",
    [
        ([("o:tag", f"t{i}") for i in range(4)], "up to 3 tags"),
        ([("o:tag", "x" * 129)], "at most 128 characters"),
        ([("h:X-Big", "x" * (MAILGUN_OPTIONS - len("h:X-Big") + 1))], "limited to 16KB"),
        ([("v:a", "x" * 9000), ("v:b", "x" * 9000)], "limited to 16KB"),
    ],
    ids=["four-tags", "long-tag", "big-header", "big-variables"],
)
def test_the_sandbox_refuses_what_mailgun_documents_as_too_much(sandbox, options, refusal):
    sandbox.reset()
    answer = mailgun_send(sandbox, *options)
    assert answer.status_code == 400 and refusal in answer.json()["message"]
    assert sandbox.messages() == []


def test_the_sandbox_takes_mailgun_limits_exactly_and_strips_unicode_from_tags(sandbox):
    sandbox.reset()
    tags = [("o:tag", "xé"), ("o:tag", "ü"), ("o:tag", "ab")]
    taken = sum(len(name) + len(value.encode()) for name, value in tags)
    header = ("h:X-Big", "x" * (MAILGUN_OPTIONS - len("h:X-Big") - taken))
    answer = mailgun_send(sandbox, header, *tags)
    assert answer.status_code == 200, answer.text
    [received] = sandbox.messages("mailgun")
    assert received["options"]["tag"] == ["x", "ab"]
