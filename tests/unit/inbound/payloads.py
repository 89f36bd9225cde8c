"""The providers' inbound payloads as their documentation shows them, taken from django-anymail's
tests (tests/test_mailgun_inbound.py, test_sendgrid_inbound.py, test_postmark_inbound.py and
tests/test_files/postmark-inbound-test-payload*.json; BSD-3-Clause, Anymail Contributors), and
the forms they are posted as."""

import json
from textwrap import dedent
from urllib.parse import urlencode

from urllib3 import encode_multipart_formdata

from mailer.inbound.fields import parse_form

# A PNG's first bytes, then bytes a form must carry untouched (CR, LF, NUL, a boundary-like line).
IMAGE = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\r\n--notaboundary\r\n\xff\xfe" + bytes(range(256))
# A mail forwarded as an attachment (django-anymail's tests/test_files/sample_email.txt, cut).
FORWARDED = (
    b"Content-Type: text/plain\r\nMime-Version: 1.0\r\nSubject: Test email\r\n"
    b"From: Someone <someone@example.com>\r\nTo: someoneelse@example.com\r\n"
    b"Message-Id: <20130503182626.18666.16540@example.com>\r\n\r\nHi Bob, This is a message.\r\n"
)

MAILGUN_HEADERS = [
    ["X-Mailgun-Spam-Rules", "DKIM_SIGNED, DKIM_VALID, DKIM_VALID_AU, ..."],
    ["X-Mailgun-Dkim-Check-Result", "Pass"],
    ["X-Mailgun-Spf", "Pass"],
    ["X-Mailgun-Sscore", "1.7"],
    ["X-Mailgun-Sflag", "No"],
    ["X-Mailgun-Incoming", "Yes"],
    ["X-Envelope-From", "<envelope-from@example.org>"],
    ["Received", "from mail.example.org by mxa.mailgun.org ..."],
    ["Received", "by mail.example.org for <test@inbound.example.com> ..."],
    ["Dkim-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; ..."],
    ["Mime-Version", "1.0"],
    ["Received", "by 10.10.1.71 with HTTP; Wed, 11 Oct 2017 18:31:04 -0700 (PDT)"],
    ["From", '"Displayed From" <from+test@example.org>'],
    ["Date", "Wed, 11 Oct 2017 18:31:04 -0700"],
    ["Message-Id", "<CAEPk3R+4Zr@mail.example.org>"],
    ["Subject", "Test subject"],
    ["To", '"Test Inbound" <test@inbound.example.com>, other@example.com'],
    ["Cc", "cc@example.com"],
    ["Content-Type", 'multipart/mixed; boundary="089e0825ccf874a0bb055b4f7e23"'],
]
MAILGUN_PARSED = {
    "token": "06c96bafc3f42a66b9edd546347a2fe18dc23461fe80dc52f0",
    "timestamp": "1461261330",
    "signature": "(the endpoint checks it)",
    "recipient": "test@inbound.example.com",
    "sender": "envelope-from@example.org",
    "message-headers": json.dumps(MAILGUN_HEADERS),
    "body-plain": "Test body plain",
    "body-html": "<div>Test body html</div>",
    "stripped-html": "stripped html body",
    "stripped-text": "stripped plaintext body",
}
RAW_MIME = dedent("""\
    From: A tester <test@example.org>
    Date: Thu, 12 Oct 2017 18:03:30 -0700
    Message-ID: <CAEPk3RKEx@mail.example.org>
    Subject: Raw MIME test
    To: test@inbound.example.com
    MIME-Version: 1.0
    Content-Type: multipart/alternative; boundary="94eb2c05e174adb140055b6339c5"

    --94eb2c05e174adb140055b6339c5
    Content-Type: text/plain; charset="UTF-8"
    Content-Transfer-Encoding: quoted-printable

    It's a body=E2=80=A6

    --94eb2c05e174adb140055b6339c5
    Content-Type: text/html; charset="UTF-8"
    Content-Transfer-Encoding: quoted-printable

    <div dir=3D"ltr">It's a body=E2=80=A6</div>

    --94eb2c05e174adb140055b6339c5--
    """)
MAILGUN_MIME = {
    "token": "06c96bafc3f42a66b9edd546347a2fe18dc23461fe80dc52f0",
    "timestamp": "1461261330",
    "signature": "(the endpoint checks it)",
    "recipient": "test@inbound.example.com",
    "sender": "envelope-from@example.org",
    "body-mime": RAW_MIME,
}

SENDGRID_PARSED = {
    "headers": dedent("""\
        Received: from mail.example.org by mx987654321.sendgrid.net ...
        Received: by mail.example.org for <test@inbound.example.com> ...
        DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; ...
        MIME-Version: 1.0
        Received: by 10.10.1.71 with HTTP; Wed, 11 Oct 2017 18:31:04 -0700 (PDT)
        From: "Displayed From" <from+test@example.org>
        Date: Wed, 11 Oct 2017 18:31:04 -0700
        Message-ID: <CAEPk3R+4Zr@mail.example.org>
        Subject: Test subject
        To: "Test Inbound" <test@inbound.example.com>, other@example.com
        Cc: cc@example.com
        Content-Type: multipart/mixed; boundary="94eb2c115edcf35387055b61f849"
        """),
    "from": "Displayed From <from+test@example.org>",
    "to": "Test Inbound <test@inbound.example.com>, other@example.com",
    "subject": "Test subject",
    "text": "Test body plain",
    "html": "<div>Test body html</div>",
    "attachments": "0",
    "charsets": '{"to":"UTF-8","html":"UTF-8","subject":"UTF-8","from":"UTF-8","text":"UTF-8"}',
    "envelope": '{"to":["test@inbound.example.com"],"from":"envelope-from@example.org"}',
    "sender_ip": "10.10.1.71",
    "dkim": "{@example.org : pass}",  # not quite JSON, as SendGrid writes it
    "SPF": "pass",
    "spam_score": "1.7",
    "spam_report": 'Spam detection software, running on the system "mx987654321.sendgrid.net", '
    "has identified this incoming email as possible spam...",
}
# SendGrid's post of a message in several charsets, as captured by django-anymail (7/2020).
SENDGRID_CHARSETS = (
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="headers"\r\n\r\n'
    b"Date: Fri, 24 Jul 2020 16:43:46 UTC\r\n"
    b"To: =?utf-8?q?R=C3=A9cipiendaire_pr=C3=A9cieux?= <inbound@sg.example.com>\r\n"
    b"From: =?utf-8?q?Op=C3=A9rateur?= de test <sender@example.com>\r\n"
    b"Subject: =?cp850?q?Como_usted_pidi=A2?=\r\n\r\n"
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="subject"\r\n\r\n'
    b"Como usted pidi\xa2\r\n"
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="to"\r\n\r\n'
    b"R\xc3\xa9cipiendaire pr\xc3\xa9cieux <inbound@sg.example.com>\r\n"
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="html"\r\n\r\n'
    b"<p>\xbfEsto se ve como esperabas?</p>\r\n"
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="from"\r\n\r\n'
    b"Op\xc3\xa9rateur de test <sender@example.com>\r\n"
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="text"\r\n\r\n'
    b"Test the ESP\x92s inbound charset handling\x85\r\n"
    b"--xYzZY\r\n"
    b'Content-Disposition: form-data; name="charsets"\r\n\r\n'
    b'{"to":"UTF-8","cc":"UTF-8","html":"iso-8859-1","subject":"cp850","from":"UTF-8",'
    b'"text":"windows-1252"}\r\n'
    b"--xYzZY--\r\n"
)
SENDGRID_RAW = {
    "email": RAW_MIME,
    "from": "A tester <test@example.org>",
    "to": "test@inbound.example.com",
    "subject": "Raw MIME test",
    "charsets": '{"to":"UTF-8","subject":"UTF-8","from":"UTF-8"}',
    "envelope": '{"to":["test@inbound.example.com"],"from":"envelope-from@example.org"}',
    "sender_ip": "10.10.1.71",
    "dkim": "{@example.org : pass}",
    "SPF": "pass",
    "spam_score": "1.7",
    "spam_report": "...",
}

POSTMARK = {
    "FromFull": {"Email": "from+test@example.org", "Name": "Displayed From", "MailboxHash": "test"},
    "ToFull": [
        {"Email": "test@inbound.example.com", "Name": "Test Inbound", "MailboxHash": ""},
        {"Email": "other@example.com", "Name": "", "MailboxHash": ""},
    ],
    "CcFull": [{"Email": "cc@example.com", "Name": "", "MailboxHash": ""}],
    "BccFull": [{"Email": "test@inbound.example.com", "Name": "", "MailboxHash": ""}],
    "OriginalRecipient": "test@inbound.example.com",
    "ReplyTo": "from+test@milter.example.org",
    "Subject": "Test subject",
    "MessageID": "22c74902-a0c1-4511-804f2-341342852c90",
    "Date": "Wed, 11 Oct 2017 18:31:04 -0700",
    "TextBody": "Test body plain",
    "HtmlBody": "<div>Test body html</div>",
    "StrippedTextReply": "stripped plaintext body",
    "Tag": "",
    "Headers": [
        {"Name": "Return-Path", "Value": "<envelope-from@example.org>"},
        {"Name": "Received", "Value": "from mail.example.org by inbound.postmarkapp.com ..."},
        {
            "Name": "X-Spam-Checker-Version",
            "Value": "SpamAssassin 3.4.0 (2014-02-07) on p-pm-smtp-inbound01b-aws-useast2b",
        },
        {"Name": "X-Spam-Status", "Value": "No"},
        {"Name": "X-Spam-Score", "Value": "1.7"},
        {"Name": "X-Spam-Tests", "Value": "SPF_PASS"},
        {"Name": "Received", "Value": "by mail.example.org for <test@inbound.example.com> ..."},
        {
            "Name": "Received",
            "Value": "by 10.10.1.71 with HTTP; Wed, 11 Oct 2017 18:31:04 -0700 (PDT)",
        },
        {"Name": "Return-Path", "Value": "<fake-return-path@postmark-should-have-removed>"},
        {"Name": "MIME-Version", "Value": "1.0"},
        {"Name": "Message-ID", "Value": "<CAEPk3R+4Zr@mail.example.org>"},
    ],
}
# What Postmark's "Check" button posts (2023-05-05): its attachments name their content "Data".
POSTMARK_CHECK = {
    "FromName": "Postmarkapp Support",
    "MessageStream": "inbound",
    "From": "support@postmarkapp.com",
    "FromFull": {"Email": "support@postmarkapp.com", "Name": "Postmarkapp Support"},
    "To": '"Firstname Lastname" <mailbox+SampleHash@inbound.postmarkapp.com>',
    "ToFull": [
        {
            "Email": "mailbox+SampleHash@inbound.postmarkapp.com",
            "Name": "Firstname Lastname",
            "MailboxHash": "SampleHash",
        }
    ],
    "Cc": '"First Cc" <firstcc@postmarkapp.com>, secondCc@postmarkapp.com',
    "CcFull": [
        {"Email": "firstcc@postmarkapp.com", "Name": "First Cc", "MailboxHash": ""},
        {"Email": "secondCc@postmarkapp.com", "Name": "", "MailboxHash": ""},
    ],
    "OriginalRecipient": "mailbox+SampleHash@inbound.postmarkapp.com",
    "Subject": "Test subject",
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "ReplyTo": "replyto@example.com",
    "MailboxHash": "SampleHash",
    "Date": "Fri, 5 May 2023 17:44:33 -0400",
    "TextBody": "This is a test text body.",
    "HtmlBody": "<html><body><p>This is a test html body.</p></body></html>",
    "StrippedTextReply": "This is the reply text",
    "Tag": "TestTag",
    "Headers": [{"Name": "X-Header-Test", "Value": ""}],
    "Attachments": [
        {
            "Name": "test.txt",
            "ContentType": "text/plain",
            "Data": "VGhpcyBpcyBhdHRhY2htZW50IGNvbnRlbnRzLCBiYXNlLTY0IGVuY29kZWQu",
            "ContentLength": 45,
        }
    ],
}
POSTMARK_CHECK_RAW = {
    **POSTMARK_CHECK,
    "RawEmail": "From: Postmarkapp Support <support@postmarkapp.com>\r\nTo: Firstname Lastname "
    "<mailbox+SampleHash@inbound.postmarkapp.com>\r\nSubject: Test subject\r\n\r\n"
    "This is a test text body.\r\n",
}


def posted(fields, urlencoded=False):
    """The ``Form`` of ``fields`` posted as multipart (or urlencoded), read as the endpoints
    read it; a file is ``(filename, content, content type)``."""
    if urlencoded:
        return parse_form("application/x-www-form-urlencoded", urlencode(fields).encode())
    body, content_type = encode_multipart_formdata(list(fields.items()))
    return parse_form(content_type, body)
