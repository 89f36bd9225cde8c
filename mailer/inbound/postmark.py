"""Postmark's inbound mail: the JSON its inbound webhook posts, one message a request.

``FromFull``, ``ToFull`` and ``CcFull`` (``{"Email", "Name"}``), ``Subject``, ``MessageID``
(Postmark's id of the delivery, not the Message-ID header), ``TextBody``, ``HtmlBody``,
``StrippedTextReply`` (the reply without its quoted history), ``Headers`` (``[{"Name",
"Value"}]``, in order; Postmark leaves out those it gives as fields, From, To, Subject ...),
``Attachments`` (``[{"Name", "Content" (base64), "ContentType", "ContentLength",
"ContentID"}]``; the payload of Postmark's "Check" button names the content ``Data``) and
``OriginalRecipient`` (the address it was delivered to). With "Include raw email content" the
whole message is in ``RawEmail`` too, and is read instead.

Postmark puts the envelope's sender first in ``Headers``, as ``Return-Path`` (not part of the
message); its SpamAssassin adds ``X-Spam-Status`` (``Yes``/``No``) and ``X-Spam-Score``. A
delivery event (with a ``RecordType`` other than ``Inbound``) posted here is refused: its
webhook is set up wrong.
"""

import base64
import binascii
from email.headerregistry import Address

from mailer.inbound import mime
from mailer.inbound.fields import (
    Malformed,
    clean,
    content_id,
    filename,
    first,
    from_headers,
    header_text,
    mimetype,
    spam_score,
)
from mailer.inbound.message import InboundAttachment, InboundMail

POSTMARK = "postmark"


def inbound(body):
    """The ``InboundMail`` of Postmark's posted JSON ``body`` (a dict)."""
    record_type = body.get("RecordType", "Inbound")
    if record_type != "Inbound":
        raise Malformed(
            "RecordType",
            f"A {record_type!r} delivery event: set it to /webhooks/postmark, not the inbound URL",
        )
    envelope_from, headers = _return_path(_headers(body))
    extras = {
        "envelope_from": envelope_from,
        "envelope_to": (_text(body, "OriginalRecipient"),) if body.get("OriginalRecipient") else (),
        "delivery_id": _text(body, "MessageID"),
        "stripped_text": _text(body, "StrippedTextReply"),
    }
    raw = _text(body, "RawEmail")
    if raw is not None:
        mail = mime.parse(raw.encode(), POSTMARK, "RawEmail")
    else:
        mail = _parsed(body, headers)
    return mime.with_extras(mail, **extras, **_spam(mail.headers))


def _parsed(body, headers):
    """The mail of Postmark's fields."""
    fields = from_headers(headers)
    return InboundMail(
        source=POSTMARK,
        delivery_id=None,
        envelope_from=None,
        envelope_to=(),
        **{
            **fields,
            "from_address": _address(body.get("FromFull"), "FromFull")
            or _text(body, "From")
            or fields["from_address"],
            "to": _addresses(body, "ToFull") or fields["to"],
            "cc": _addresses(body, "CcFull") or fields["cc"],
            "subject": _text(body, "Subject") or fields["subject"],
        },
        text=_text(body, "TextBody"),
        html=_text(body, "HtmlBody"),
        stripped_text=None,
        headers=headers,
        attachments=_attachments(body),
    )


def _headers(body):
    """``Headers``: (name, text) in order."""
    listed = body.get("Headers", [])
    expected = 'Must be a list of {"Name": "...", "Value": "..."}'
    if not isinstance(listed, list):
        raise Malformed("Headers", expected)
    pairs = []
    for index, item in enumerate(listed):
        item = item if isinstance(item, dict) else {}
        name, value = item.get("Name"), item.get("Value")
        if not (isinstance(name, str) and name and isinstance(value, str)):
            raise Malformed(f"Headers[{index}]", expected)
        pairs.append((clean(name), header_text(name, value)))
    return tuple(pairs)


def _return_path(headers):
    """The envelope's sender (Postmark's ``Return-Path``, first), and the message's headers."""
    if headers and headers[0][0].lower() == "return-path":
        return headers[0][1].strip().strip("<>").strip(), headers[1:]  # "": the null sender
    return None, headers


def _address(full, where):
    """``{"Email", "Name"}`` as ``Name <email>`` (the address alone without a name)."""
    if full is None:
        return None
    expected = 'Must be {"Email": "...", "Name": "..."}'
    if not isinstance(full, dict):
        raise Malformed(where, expected)
    email, name = full.get("Email"), full.get("Name") or ""
    if not (isinstance(email, str) and isinstance(name, str)):
        raise Malformed(where, expected)
    if not email:
        return None
    try:
        return clean(str(Address(display_name=name, addr_spec=email)))
    except (ValueError, IndexError):  # an address the parser refuses: as Postmark wrote it
        return clean(f"{name} <{email}>" if name else email)


def _addresses(body, key):
    """``ToFull`` or ``CcFull``: each address as ``_address`` writes it."""
    listed = body.get(key)
    if listed is None:
        return ()
    if not isinstance(listed, list):
        raise Malformed(key, 'Must be a list of {"Email": "...", "Name": "..."}')
    found = (_address(item, f"{key}[{index}]") for index, item in enumerate(listed))
    return tuple(address for address in found if address)


def _attachments(body):
    """``Attachments``, each decoded from base64."""
    listed = body.get("Attachments", [])
    if not isinstance(listed, list):
        raise Malformed("Attachments", "Must be a list of attachments")
    return tuple(_attachment(item, index) for index, item in enumerate(listed))


def _attachment(item, index):
    """One of ``Attachments``: its ``Content`` (``Data`` in Postmark's check) from base64."""
    where = f"Attachments[{index}]"
    if not isinstance(item, dict):
        raise Malformed(where, "Must be an object with Name, Content and ContentType")
    encoded = item.get("Content", item.get("Data"))
    if not isinstance(encoded, str):
        raise Malformed(f"{where}.Content", "Missing: the file's content in base64")
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{where}.Content", "Not base64") from None
    kind = mimetype(_text(item, "ContentType"))
    return InboundAttachment(
        filename=filename(_text(item, "Name"), index + 1, kind),
        content_type=kind,
        content=content,
        content_id=content_id(_text(item, "ContentID")),
    )


def _spam(headers):
    """Postmark's SpamAssassin: ``X-Spam-Status`` Yes (spam) or No (ham), ``X-Spam-Score``."""
    status = (first(headers, "X-Spam-Status") or "").strip().lower()
    verdict = "spam" if status.startswith("yes") else "ham" if status.startswith("no") else None
    return {"spam_verdict": verdict, "spam_score": spam_score(first(headers, "X-Spam-Score"))}


def _text(body, key):
    """A string field of the body (text without NUL), or None if absent or empty; ``Malformed``
    naming it if it is not a string."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(key, "Must be a string")
    return clean(value) or None
