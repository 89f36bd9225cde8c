"""Received mail for the inbound tests: an ``InboundMail`` made from a MIME message's bytes,
as a way in that keeps the whole message fills it (``raw``), or as one that gives only the
parts (Mailgun's parsed routes, Postmark's inbound JSON): headers, text, html and attachments."""

import base64
import quopri
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import getaddresses

from mailer.inbound.message import InboundAttachment, InboundMail

BODY_PARTS = ("text/plain", "text/html")


def inbound_of(data, keep_raw=True, source="smtp", envelope_from=None):
    """The ``InboundMail`` of the MIME message ``data`` (bytes); without ``raw`` unless
    ``keep_raw``."""
    message = BytesParser(policy=policy.compat32).parsebytes(data)
    decoded = BytesParser(policy=policy.default).parsebytes(data, headersonly=True)
    headers = tuple((name, _decoded_header(value)) for name, value in decoded.raw_items())
    text, html, attachments = _parts(message)
    first = {name.lower(): value for name, value in reversed(headers)}
    return InboundMail(
        source=source,
        delivery_id=None,
        envelope_from=envelope_from,
        envelope_to=(),
        from_address=first.get("from"),
        to=tuple(address for _, address in getaddresses([first.get("to", "")]) if address),
        cc=(),
        subject=first.get("subject", ""),
        text=text,
        html=html,
        stripped_text=None,
        headers=headers,
        message_id=first.get("message-id"),
        in_reply_to=first.get("in-reply-to"),
        references=tuple(first.get("references", "").split()),
        attachments=tuple(attachments),
        raw=data if keep_raw else None,
    )


def _decoded_header(value):
    """A header's value as a way in gives it: encoded words decoded, on one line."""
    raw = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # 8-bit
    text = " ".join(raw.split())
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeDecodeError, ValueError):
        return text


def _parts(message):
    """``(text, html, attachments)``: the first text and html bodies, every other leaf part
    (a returned message and a delivery status whole, as a provider attaches them)."""
    text = html = None
    attachments = []
    for part in _leaves(message):
        kind = part.get_content_type()
        if kind in BODY_PARTS and not part.get_filename():
            content = _decoded_text(part)
            if kind == "text/plain" and text is None:
                text = content
                continue
            if kind == "text/html" and html is None:
                html = content
                continue
        attachments.append(
            InboundAttachment(
                filename=part.get_filename() or "",
                content_type=kind,
                content=_content(part),
            )
        )
    return text, html, attachments


def _leaves(part):
    """The parts that are not multipart containers; a message/* part is one leaf."""
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for sub in part.get_payload():
            yield from _leaves(sub)
    else:
        yield part


def _decoded_text(part):
    """A text part's content, decoded."""
    data = part.get_payload(decode=True) or b""
    try:
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _content(part):
    """A leaf part's content as a provider hands it over: a message/* part's text, else the
    decoded bytes."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return part.get_payload(decode=True) or b""
    # message/rfc822, message/delivery-status: parsed already; a provider decodes them
    text = b"".join(block.as_bytes() for block in payload)
    encoding = (part.get("content-transfer-encoding") or "").lower()
    if encoding == "base64":
        return base64.decodebytes(text)
    return quopri.decodestring(text) if encoding == "quoted-printable" else text
