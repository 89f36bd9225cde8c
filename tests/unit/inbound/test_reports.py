"""Bounce reports and automatic replies read from received mail (``mailer.inbound.reports``),
on real reports (tests/fixtures/bounces, their sources in its README) and on mail written here.

Each real report is read twice: from the whole message (``raw``, as the SMTP door and
SendGrid's raw mode give it) and from the parts alone (as Mailgun's parsed routes and Postmark
give it: headers, text and attachments)."""

import base64
from pathlib import Path

import pytest
from inbound_mail import inbound_of

from mailer.inbound.reports import MAX_DIAGNOSTIC, is_auto_reply, read_report

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bounces"
WAYS_IN = pytest.mark.parametrize("keep_raw", [True, False], ids=["raw", "parts"])
OURS = "<0b9e3c1e-2a4f-4c55-9a51-2a9f0d1c7e11@mail.shop.example>"


def fixture(name, keep_raw=True, **fields):
    """The ``InboundMail`` of a fixture, with or without its whole message."""
    return inbound_of((FIXTURES / name).read_bytes(), keep_raw=keep_raw, **fields)


def failures(report):
    """``(address, action, status, permanent)`` of each failure of ``report``."""
    return [(f.address, f.action, f.status, f.permanent) for f in report.failures]


# (fixture, failures, the returned message's Message-ID, words of the first diagnostic)
REAL_REPORTS = [
    (
        "postfix-dsn.eml",
        [("kijitora@example.co.jp", "failed", "5.1.1", True)],
        "<A8F82EDD-E518-4F5C-8C70-BC4EFF24AB9F@example.ne.jp>",
        "550 5.1.1 Address rejected",
    ),
    (
        "sendmail-dsn-two-recipients.eml",
        [
            ("userunknown@example.org", "failed", "5.1.1", True),
            ("filtered@example.com", "failed", "5.2.1", True),
        ],
        "<C6625D0F-A302-4980-BEAB-2AF883EA0116@example.jp>",
        "550 5.1.1 <userunknown@example.org>... User Unknown",
    ),
    (
        "office365-dsn.eml",
        [("kijitora@example.com", "failed", "5.1.0", True)],
        "<000000000000.2222.22222222222200000000@NEKO-NYAAN>",
        "550 5.1.0 192.0.2.222 is not allowed to send",
    ),
    (
        "exchange2007-dsn.eml",
        [("kijitora@neko.example.com", "failed", "5.2.3", True)],
        "<20100429233445.FF00FFEE0000@r2.example.org>",
        "RESOLVER.RST.RecipSizeLimit; message too large",
    ),
    (
        "exim-two-recipients.eml",
        [
            ("kijitora@example.jp", "failed", "5.1.1", True),
            ("sabatora@example.jp", "failed", "5.2.1", True),
        ],
        "<E1X58pB-0004bW-2s@marutamachi.example.org>",
        "550 5.1.1 <kijitora@example.jp>... User Unknown",
    ),
    (
        "qmail.eml",
        [("kijitora@example.ne.jp", "failed", "5.5.0", True)],
        "<000000000.9999999999999.JavaMail.postmaster@mailhub>",
        "Sorry, no SMTP connection got far enough",
    ),
    (
        "gmail-plain.eml",
        [("userunknown@example.jp", "failed", "5.1.1", True)],
        "<D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com>",
        "550 5.1.1 <userunknown@example.jp>... User Unknown",
    ),
]


@WAYS_IN
@pytest.mark.parametrize(
    ("name", "expected", "returned", "words"), REAL_REPORTS, ids=[r[0] for r in REAL_REPORTS]
)
def test_a_real_report_names_who_failed_why_and_the_mail_it_returns(
    name, expected, returned, words, keep_raw
):
    report = read_report(fixture(name, keep_raw))
    assert failures(report) == expected
    assert report.original_message_ids[0] == returned
    assert words in report.failures[0].diagnostic
    assert report.bounces == report.failures  # all given up on for good


@WAYS_IN
def test_the_address_we_sent_to_is_the_original_recipient_not_where_it_was_forwarded(keep_raw):
    report = read_report(fixture("postfix-dsn-forwarded.eml", keep_raw))
    # Final-Recipient: rfc822; r@p351355.pool.example.ne.jp (an alias of the address sent to)
    assert failures(report) == [("kijitora@example.org", "failed", "5.1.1", True)]
    assert report.failures[0].diagnostic.startswith("procmail: Couldn't create \"/var/spool")


@WAYS_IN
def test_a_delayed_recipient_is_read_but_is_no_bounce(keep_raw):
    report = read_report(fixture("outlook-dsn-delayed.eml", keep_raw))
    assert failures(report) == [("kijitora@example.com", "delayed", "4.4.7", False)]
    assert report.bounces == ()


@WAYS_IN
def test_a_success_notice_is_a_report_that_fails_no_one(keep_raw):
    report = read_report(fixture("postfix-dsn-delivered.eml", keep_raw))
    assert report.failures == () and report.bounces == ()
    # The returned headers (text/rfc822-headers) name the mail.
    assert report.original_message_ids == (
        "<20151025071802.22CC00222233@neko-222-2222.vs.example.ne.jp>",
    )


@WAYS_IN
@pytest.mark.parametrize(
    "name",
    [
        "not-a-report.eml",
        "autoreply-auto-submitted.eml",
        "autoreply-outlook-subject.eml",
        "postmaster-autoreply.eml",
    ],
)
def test_mail_that_is_not_a_report_is_none(name, keep_raw):
    assert read_report(fixture(name, keep_raw)) is None


def dsn(status_part, returned=OURS, top="", content_type="multipart/report"):
    """A report in RFC 3464's shape with ``status_part`` (the delivery-status fields)."""
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounces@mail.shop.example
Subject: Undelivered Mail Returned to Sender
Date: Thu, 29 Apr 2021 23:34:45 +0200
{top}MIME-Version: 1.0
Content-Type: {content_type}; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.

--b
Content-Type: message/delivery-status

{status_part}
--b
Content-Type: text/rfc822-headers

From: Shop <shop@shop.example>
To: ann@example.com
Message-ID: {returned}

--b--
""".encode()


@WAYS_IN
def test_the_report_s_own_references_follow_the_returned_message_id(keep_raw):
    data = dsn(
        "Final-Recipient: rfc822; ann@example.com\nAction: failed\nStatus: 5.1.1\n",
        top="In-Reply-To: <first@shop.example>\nReferences: <thread@shop.example>\n",
    )
    report = read_report(inbound_of(data, keep_raw=keep_raw))
    assert report.original_message_ids == (OURS, "<first@shop.example>", "<thread@shop.example>")
    assert report.reported_at.isoformat() == "2021-04-29T23:34:45+02:00"


@WAYS_IN
def test_rfc_3464_fields_in_their_odd_spellings(keep_raw):
    fields = (
        "Reporting-MTA: dns; mx.example.net\n\n"
        "Final-Recipient: RFC822; <Ann@Example.COM>\nAction: failed (bad address)\n"
        "Status: 5.1.1 (bad destination mailbox)\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <Ann@Example.COM>: Recipient address\n"
        "    rejected: User unknown\n\n"
        "Final-Recipient: bob@example.com\nAction: error\nStatus: 5.2.2\n\n"  # OpenSMTPD's
        "Final-Recipient: rfc822; carl@example.com\nAction: delayed\nStatus: 4.4.1\n\n"
        "Final-Recipient: rfc822; dora@example.com\nAction: failed\n"
        "Diagnostic-Code: smtp; 550 mailbox unavailable\n"  # no Status: its reply's class
    )
    report = read_report(inbound_of(dsn(fields), keep_raw=keep_raw))
    assert failures(report) == [
        ("ann@example.com", "failed", "5.1.1", True),
        ("bob@example.com", "failed", "5.2.2", True),
        ("carl@example.com", "delayed", "4.4.1", False),
        ("dora@example.com", "failed", "5.0.0", True),
    ]
    assert report.failures[0].diagnostic == (
        "550 5.1.1 <Ann@Example.COM>: Recipient address rejected: User unknown"
    )
    assert [f.address for f in report.bounces] == [
        "ann@example.com",
        "bob@example.com",
        "dora@example.com",
    ]


def test_rfc_3464_fields_in_the_body_of_a_report_that_lost_its_mime_parts():
    data = f"""From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>
Subject: Returned mail: see transcript for details

   ----- The following addresses had permanent fatal errors -----
<ann@example.com>

Reporting-MTA: dns; mx.example.net

Final-Recipient: RFC822; ann@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: SMTP; 550 5.1.1 <ann@example.com>... User unknown

Message-ID: {OURS}
From: shop@mail.shop.example
""".encode()
    report = read_report(inbound_of(data))
    assert failures(report) == [("ann@example.com", "failed", "5.1.1", True)]
    assert report.original_message_ids == (OURS,)


def test_a_delivery_status_part_in_base64_is_read():
    fields = "Final-Recipient: rfc822; ann@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    data = dsn("=placeholder=").replace(
        b"Content-Type: message/delivery-status\n\n=placeholder=",
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(b"Reporting-MTA: dns; mx\r\n\r\n" + fields.encode()),
    )
    report = read_report(inbound_of(data))
    assert failures(report) == [("ann@example.com", "failed", "5.1.1", True)]


def test_a_diagnostic_is_bounded_and_holds_no_nul():
    fields = (
        "Final-Recipient: rfc822; ann@example.com\nAction: failed\nStatus: 5.1.1\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 no\x00body {'x' * 5000}\n"
    )
    [failure] = read_report(inbound_of(dsn(fields))).failures
    assert len(failure.diagnostic) == MAX_DIAGNOSTIC
    assert failure.diagnostic.startswith("550 5.1.1 nobody xxx")


def test_a_person_s_reply_that_quotes_a_bounce_is_not_one():
    data = f"""From: Ann <ann@example.com>
To: shop@shop.example
Subject: Re: Your order
In-Reply-To: {OURS}
Message-ID: <reply@example.com>

My colleague bob@example.com got "550 5.1.1 User unknown" when he forwarded it.
Message-ID: {OURS}
""".encode()
    assert read_report(inbound_of(data, envelope_from="ann@example.com")) is None


FORGED_FIELDS = "Final-Recipient: rfc822; bob@example.com\nAction: failed\nStatus: 5.1.1\n"


def from_ann(data, envelope_from="ann@example.com"):
    """``data`` as Ann's mail client sends it: her address as From and in the envelope."""
    data = data.replace(
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>", b"From: Ann <ann@example.com>"
    )
    return inbound_of(data, envelope_from=envelope_from)


def test_a_report_written_by_a_person_is_none_whatever_its_shape():
    # A co-recipient knows the mail's Message-ID (her copy has it) and could name another
    # recipient as failed: from her own address, neither RFC 3464's shape nor a report's
    # Subject and words make her mail a report.
    assert read_report(from_ann(dsn(FORGED_FIELDS))) is None
    plain = f"""From: Ann <ann@example.com>
Subject: Undelivered Mail Returned to Sender
X-Failed-Recipients: bob@example.com
In-Reply-To: {OURS}

{FORGED_FIELDS}""".encode()
    assert read_report(inbound_of(plain, envelope_from="ann@example.com")) is None
    named = plain.replace(b"From: Ann", b"From: Mail Delivery System")
    assert read_report(inbound_of(named, envelope_from="ann@example.com")) is None


@pytest.mark.parametrize(
    ("envelope_from", "top", "is_report"),
    [
        ("", "", True),  # the null sender, MAIL FROM:<>, as a report is sent
        ("<>", "", True),
        ("MAILER-DAEMON@mx.example.net", "", True),
        (None, "Return-Path: <>\n", True),  # no envelope given: the delivering server's header
        (None, "Return-Path: <postmaster@mx.example.net>\n", True),
        (None, "", False),
        ("ann@example.com", "Return-Path: <>\n", False),  # the envelope says who sent it
    ],
)
def test_a_report_comes_from_the_null_sender_or_a_daemon(envelope_from, top, is_report):
    data = from_ann(dsn(FORGED_FIELDS, top=top), envelope_from=envelope_from)
    assert (read_report(data) is not None) is is_report


def test_a_daemon_s_from_is_a_mail_system_s_whatever_the_envelope():
    report = read_report(inbound_of(dsn(FORGED_FIELDS), envelope_from="bounces@relay.example"))
    assert failures(report) == [("bob@example.com", "failed", "5.1.1", True)]


def plain_mail(subject="Re: Your order", headers="", envelope_from="ann@example.com"):
    """An ``InboundMail`` of a short plain mail with ``headers`` (lines) added."""
    data = f"From: Ann <ann@example.com>\nTo: shop@shop.example\nSubject: {subject}\n{headers}"
    data += "\nHi\n"
    return inbound_of(data.encode(), envelope_from=envelope_from)


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("Away until May 5", "Auto-Submitted: auto-replied\n"),
        ("Away", "Auto-Submitted: auto-generated (vacation)\n"),
        ("Away", "Auto-Submitted: Auto-Notified\n"),
        ("Re: Your order", "X-Autoreply: yes\n"),
        ("Re: Your order", "X-Autorespond: Your order\n"),
        ("Re: Your order", "Precedence: bulk\n"),
        ("Re: Your order", "Precedence: auto_reply\n"),
        ("Re: Your order", "X-Precedence: junk\n"),
        ("Re: Your order", "X-Autogenerated: Reply\n"),
        ("Automatic reply: Your order", ""),
        ("Out of Office: Your order", ""),
        ("Out of Office AutoReply: Your order", ""),
        ("Abwesenheitsnotiz: Ihre Bestellung", ""),
        ("Automatische Antwort: Ihre Bestellung", ""),
        ("Réponse automatique : Votre commande", ""),
        ("Respuesta automática: Su pedido", ""),
        ("AW: Autosvar: Din beställning", ""),
        ("Ann is out of the office", ""),
    ],
)
def test_an_automatic_reply_is_told(subject, headers):
    assert is_auto_reply(plain_mail(subject, headers)) is True


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("Re: Your order", ""),
        ("Re: Your order", "Auto-Submitted: no\n"),
        ("Re: Your order", "X-Auto-Response-Suppress: All\n"),  # a request to others, alone
        ("Re: Your order", "Precedence: list\nList-Id: <buyers.shop.example>\n"),
        ("Re: Autonomous cars", ""),
        ("Re: Office party", ""),
    ],
)
def test_a_person_s_mail_is_no_automatic_reply(subject, headers):
    assert is_auto_reply(plain_mail(subject, headers)) is False


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("autoreply-auto-submitted.eml", True),
        ("autoreply-outlook-subject.eml", True),
        ("postmaster-autoreply.eml", True),
        ("not-a-report.eml", False),
    ],
)
def test_real_automatic_replies(name, expected):
    assert is_auto_reply(fixture(name)) is expected
