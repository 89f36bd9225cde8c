"""Inbound mail, as the providers post it: the sandbox plays Mailgun's route, SendGrid's
Inbound Parse and Postmark's inbound webhook, posting a mail it was given to the service's
``/inbound/<provider>`` in that provider's documented shape.

The mail is described in one provider-neutral dict (``MAIL_FIELDS``); each provider's module of
this file writes it out as that provider does, and the post is authenticated as that provider
authenticates it, with the event settings' credentials (``events.DEFAULTS``): Mailgun's form
signed with ``mailgun_key`` (the HMAC of ``timestamp + token``), SendGrid's with the basic auth
``sendgrid_inbound_username`` and ``sendgrid_inbound_password`` in its URL, Postmark's with
``postmark_username`` and ``postmark_password``. With ``"raw": true`` each posts its raw
variant: Mailgun's ``body-mime`` (to ``/inbound/mailgun/mime``), SendGrid's ``email``,
Postmark's ``RawEmail``. ``raw`` may also be a whole message (bytes, or text): the provider
received that very message (a bounce report a test wrote, say), and posts it byte for byte in
its raw variant, its From, To, Cc, Subject and Message-ID read from it unless given.

    sandbox.post_inbound("mailgun", to=["support@in.example.com"], subject="Re: your order")
    POST /_sandbox/inbound/postmark  {"from": "Ann <ann@example.com>", "text": "Thanks!",
                                      "attachments": [{"filename": "a.txt",
                                                       "content": "<base64>"}], "times": 2}

``times`` posts the very same bytes again (a provider retrying): each answer is returned,
``{"status": 200, "answer": {...}}`` (status None if the service did not answer).
"""

import base64
import json
import secrets
import time
import uuid
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from urllib.parse import urlencode

import requests
from urllib3 import encode_multipart_formdata

from devkit.sandbox.wire import now_iso
from mailer.events.signatures import mailgun_signature

TIMEOUT = 10.0  # seconds per post
MAIL_FIELDS = {
    "from": "Ann Example <ann@example.com>",  # the From header
    "to": ["support@in.example.com"],  # the To header (and the envelope, by default)
    "cc": [],
    "subject": "Re: Your order",
    "text": "Thanks, that works for me.\n",
    "html": None,
    "stripped_text": None,  # the reply without its quote (Mailgun, Postmark)
    "headers": {},  # more headers: {"In-Reply-To": "<id@shop.example.com>", ...}
    "message_id": None,  # the Message-ID header; a new one if None
    "attachments": [],  # {"filename", "content_type", "content" (bytes), "content_id"}
    "envelope_from": None,  # MAIL FROM; the From header's address if None
    "envelope_to": None,  # RCPT TO; the To header's first address (the provider's) if None
    "spam_score": None,  # a number, as the provider's spam filter gives it
    "spam": None,  # True or False: Mailgun's and Postmark's verdict (SendGrid gives none)
    "raw": False,  # post the raw-message variant: True, or the message itself (bytes or text)
}
# The event settings each provider's post needs.
CREDENTIALS = {
    "mailgun": ("mailgun_key",),
    "sendgrid": ("sendgrid_inbound_username", "sendgrid_inbound_password"),
    "postmark": ("postmark_username", "postmark_password"),
}


def check_mail(provider, fields):
    """``fields`` over ``MAIL_FIELDS``, checked; ValueError saying what is wrong."""
    if provider not in CREDENTIALS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {sorted(CREDENTIALS)}")
    unknown = set(fields) - set(MAIL_FIELDS)
    if unknown:
        raise ValueError(f"unknown mail fields {sorted(unknown)}; known: {sorted(MAIL_FIELDS)}")
    given = given_message(fields.get("raw"))
    mail = {**MAIL_FIELDS, **(_fields_of(given) if given is not None else {}), **fields}
    for name in ("to", "cc"):
        if isinstance(mail[name], str):
            mail[name] = [mail[name]]
    mail["message_id"] = mail["message_id"] or make_msgid(domain="example.com")
    bare = [address for _, address in getaddresses(mail["to"])]
    mail["envelope_to"] = list(mail["envelope_to"] or bare[:1])
    if mail["envelope_from"] is None:  # "" is the null sender <>, a bounce report's
        mail["envelope_from"] = parseaddr(mail["from"])[1]
    mail["attachments"] = [_attachment(item) for item in mail["attachments"]]
    return mail


def _attachment(item):
    """An attachment with its defaults; ``content`` as bytes (base64 text from JSON)."""
    content = item.get("content", b"")
    if isinstance(content, str):
        content = base64.b64decode(content)
    return {
        "filename": item.get("filename", "attachment.bin"),
        "content_type": item.get("content_type", "application/octet-stream"),
        "content": content,
        "content_id": item.get("content_id"),
    }


def post(session, settings, provider, fields, times=1):
    """Post ``fields`` (a mail, ``MAIL_FIELDS``) as ``provider`` does, ``times`` times; the
    answers. ValueError without the events URL or the provider's credentials."""
    mail = check_mail(provider, fields)
    missing = [name for name in ("url", *CREDENTIALS[provider]) if not settings[name]]
    if missing:
        raise ValueError(f"set the event settings {missing} first (PUT /_sandbox/events)")
    path, body, headers, auth = WRITERS[provider](mail, settings)
    url = settings["url"].rstrip("/") + path
    return [_answer(session, url, body, headers, auth) for _ in range(times)]


def _answer(session, url, body, headers, auth):
    """One post: its status and its JSON answer (or text)."""
    try:
        response = session.post(url, data=body, headers=headers, auth=auth, timeout=TIMEOUT)
    except requests.RequestException as err:
        return {"status": None, "answer": str(err)}
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    return {"status": response.status_code, "answer": answer}


def given_message(raw):
    """The message given as ``raw`` (bytes or text) as bytes, or None if it is a flag."""
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8")
    return None


def _fields_of(data):
    """The mail fields a given message's headers say: From, To, Cc, Subject, Message-ID."""
    parsed = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)

    def addresses(name):
        return [str(address) for address in getattr(parsed[name], "addresses", ())]

    return {
        "from": str(parsed["From"] or ""),
        "to": addresses("To"),
        "cc": addresses("Cc"),
        "subject": str(parsed["Subject"] or ""),
        "message_id": str(parsed["Message-ID"] or "") or None,
    }


def message(mail):
    """The MIME message of ``mail``, as the sender wrote it (the given one, parsed)."""
    given = given_message(mail["raw"])
    if given is not None:
        return BytesParser(policy=policy.default).parsebytes(given)
    built = EmailMessage()
    built["From"] = mail["from"]
    if mail["to"]:
        built["To"] = ", ".join(mail["to"])
    if mail["cc"]:
        built["Cc"] = ", ".join(mail["cc"])
    built["Subject"] = mail["subject"]
    built["Date"] = format_datetime(datetime.now(UTC))
    built["Message-ID"] = mail["message_id"]
    for name, value in mail["headers"].items():
        built[name] = value
    built.set_content(mail["text"] or "")
    if mail["html"]:
        built.add_alternative(mail["html"], subtype="html")
    for item in mail["attachments"]:
        maintype, _, subtype = item["content_type"].partition("/")
        built.add_attachment(
            item["content"],
            maintype,
            subtype or "octet-stream",
            filename=item["filename"],
            cid=f"<{item['content_id']}>" if item["content_id"] else None,
        )
    return built


def _raw_text(built, mail):
    """The whole message as a raw variant carries it: the given one byte for byte, else
    ``built`` written out."""
    given = given_message(mail["raw"])
    if given is not None:
        return given.decode("utf-8", "replace")
    return built.as_string()


def _header_lines(built):
    """The top-level headers of a message as (name, value) pairs."""
    return [(name, str(value)) for name, value in built.items()]


# Mailgun ------------------------------------------------------------------------------------


def mailgun_post(mail, settings):
    """A route's ``forward()`` post: fully parsed, or ``body-mime`` to the URL ending in mime.
    Multipart when it has files, else urlencoded, as Mailgun posts."""
    built = message(mail)
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    fields = {
        "recipient": ", ".join(mail["envelope_to"]),
        "sender": mail["envelope_from"],
        "from": mail["from"],
        "subject": mail["subject"],
        "timestamp": timestamp,
        "token": token,
        "signature": mailgun_signature(settings["mailgun_key"], timestamp, token),
    }
    if mail["raw"]:
        fields["body-mime"] = _raw_text(_spammed(built, mail, "mailgun"), mail)
        return _form("/inbound/mailgun/mime", fields, {}, multipart=True)
    fields.update(
        {
            "message-headers": json.dumps(_header_lines(_spammed(built, mail, "mailgun"))),
            "body-plain": mail["text"] or "",
            "stripped-text": mail["stripped_text"] or mail["text"] or "",
            **({"body-html": mail["html"]} if mail["html"] else {}),
            "attachment-count": str(len(mail["attachments"])),
        }
    )
    files = {
        f"attachment-{number}": item for number, item in enumerate(mail["attachments"], start=1)
    }
    inline = {f"<{item['content_id']}>": name for name, item in files.items() if item["content_id"]}
    if inline:
        fields["content-id-map"] = json.dumps(inline)
    return _form("/inbound/mailgun", fields, files)


def _spammed(built, mail, provider):
    """``built`` with the provider's spam filter's headers, where the mail says."""
    if provider == "mailgun":
        if mail["spam"] is not None:
            built["X-Mailgun-Sflag"] = "Yes" if mail["spam"] else "No"
        if mail["spam_score"] is not None:
            built["X-Mailgun-Sscore"] = str(mail["spam_score"])
    elif provider == "postmark":
        if mail["spam"] is not None:
            built["X-Spam-Status"] = "Yes" if mail["spam"] else "No"
        if mail["spam_score"] is not None:
            built["X-Spam-Score"] = str(mail["spam_score"])
    return built


def _form(path, fields, files, auth=None, multipart=False):
    """(path, body, headers, auth) of a form: multipart with files (or if asked), else
    urlencoded."""
    if not files and not multipart:
        body = urlencode(fields).encode()
        return path, body, {"Content-Type": "application/x-www-form-urlencoded"}, auth
    parts = list(fields.items()) + [
        (name, (item["filename"], item["content"], item["content_type"]))
        for name, item in files.items()
    ]
    body, content_type = encode_multipart_formdata(parts)
    return path, body, {"Content-Type": content_type}, auth


# SendGrid -----------------------------------------------------------------------------------


def sendgrid_post(mail, settings):
    """Inbound Parse's multipart post: the default shape, or raw with the whole message."""
    built = message(mail)
    auth = (settings["sendgrid_inbound_username"], settings["sendgrid_inbound_password"])
    fields = {
        "from": mail["from"],
        "to": ", ".join(mail["to"]),
        "subject": mail["subject"],
        "envelope": json.dumps({"to": mail["envelope_to"], "from": mail["envelope_from"]}),
        "charsets": json.dumps({name: "UTF-8" for name in ("to", "from", "subject", "text")}),
        "sender_ip": "192.0.2.1",
        "SPF": "pass",
        "dkim": "{@example.com : pass}",
    }
    if mail["cc"]:
        fields["cc"] = ", ".join(mail["cc"])
    if mail["spam_score"] is not None:
        fields["spam_score"] = str(mail["spam_score"])
        fields["spam_report"] = "Spam detection software has checked this message."
    if mail["raw"]:
        fields["email"] = _raw_text(built, mail)
        return _form("/inbound/sendgrid", fields, {}, auth, multipart=True)
    fields["headers"] = "".join(f"{name}: {value}\n" for name, value in _header_lines(built))
    fields["text"] = mail["text"] or ""
    if mail["html"]:
        fields["html"] = mail["html"]
    files = {f"attachment{n}": item for n, item in enumerate(mail["attachments"], start=1)}
    fields["attachments"] = str(len(files))
    if files:
        fields["attachment-info"] = json.dumps(
            {
                name: {
                    "filename": item["filename"],
                    "type": item["content_type"],
                    **({"content-id": item["content_id"]} if item["content_id"] else {}),
                }
                for name, item in files.items()
            }
        )
    return _form("/inbound/sendgrid", fields, files, auth, multipart=True)


# Postmark -----------------------------------------------------------------------------------


def postmark_post(mail, settings):
    """Postmark's inbound JSON (with ``RawEmail`` when the mail asks for the raw variant)."""
    built = _spammed(message(mail), mail, "postmark")
    auth = (settings["postmark_username"], settings["postmark_password"])
    skipped = {"from", "to", "cc", "subject", "date"}  # given as fields, not Headers
    listed = [{"Name": "Return-Path", "Value": f"<{mail['envelope_from']}>"}] + [
        {"Name": name, "Value": value}
        for name, value in _header_lines(built)
        if name.lower() not in skipped and not name.lower().startswith("content-")
    ]
    body = {
        "FromName": parseaddr(mail["from"])[0],
        "MessageStream": "inbound",
        "From": parseaddr(mail["from"])[1],
        "FromFull": _full(mail["from"]),
        "To": ", ".join(mail["to"]),
        "ToFull": [_full(address) for address in mail["to"]],
        "Cc": ", ".join(mail["cc"]),
        "CcFull": [_full(address) for address in mail["cc"]],
        "OriginalRecipient": mail["envelope_to"][0] if mail["envelope_to"] else "",
        "Subject": mail["subject"],
        "MessageID": str(uuid.uuid4()),
        "Date": str(built["Date"] or format_datetime(datetime.now(UTC))),
        "TextBody": mail["text"] or "",
        "HtmlBody": mail["html"] or "",
        "StrippedTextReply": mail["stripped_text"] or "",
        "Tag": "",
        "Headers": listed,
        "Attachments": [
            {
                "Name": item["filename"],
                "Content": base64.b64encode(item["content"]).decode(),
                "ContentType": item["content_type"],
                "ContentLength": len(item["content"]),
                **({"ContentID": item["content_id"]} if item["content_id"] else {}),
            }
            for item in mail["attachments"]
        ],
        "ReceivedAt": now_iso(),
    }
    if mail["raw"]:
        body["RawEmail"] = _raw_text(built, mail)
    headers = {"Content-Type": "application/json"}
    return "/inbound/postmark", json.dumps(body).encode(), headers, auth


def _full(address):
    """``{"Email", "Name", "MailboxHash"}`` of an address, as Postmark writes it."""
    name, email = parseaddr(address)
    local = email.partition("@")[0]
    return {"Email": email, "Name": name, "MailboxHash": local.partition("+")[2]}


WRITERS = {"mailgun": mailgun_post, "sendgrid": sendgrid_post, "postmark": postmark_post}
