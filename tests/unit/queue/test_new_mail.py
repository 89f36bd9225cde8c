"""A new mail's row: its id (``submit.new_ids``: random version 4 UUIDs, written as
``str(uuid.uuid4())`` writes them) and its recipients (``submit.recipients_of``)."""

import uuid

from mailer.queue import submit


def test_new_ids_are_distinct_version_4_uuids_as_text():
    ids = submit.new_ids(5000)
    assert len(set(ids)) == 5000
    for mail_id in ids:
        parsed = uuid.UUID(mail_id)
        assert str(parsed) == mail_id
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # All the random bits are used: each variant digit and each hex digit turns up.
    assert {mail_id[19] for mail_id in ids} == set("89ab")
    assert {digit for mail_id in ids for digit in mail_id[24:]} == set("0123456789abcdef")


def test_no_mail_no_ids():
    assert submit.new_ids(0) == []


def test_recipients_are_bare_addresses_once_each_in_to_cc_bcc_order():
    assert submit.recipients_of(["Ann <ann@Example.COM>"], [], []) == ["ann@example.com"]
    assert submit.recipients_of(
        ["b@example.com", "Ann <ann@example.com>"],
        ["ANN@example.com", "ann@EXAMPLE.com"],
        ["b@example.com", "c@example.com"],
    ) == ["b@example.com", "ann@example.com", "ANN@example.com", "c@example.com"]
    assert submit.recipients_of(["a@example.com"], [], ["a@example.com"]) == ["a@example.com"]
