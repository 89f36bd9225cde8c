"""A whole MIME message read into an ``InboundMail``: what the SMTP door receives, and what
Mailgun (``body-mime``), SendGrid (raw mode's ``email``) and Postmark (``RawEmail``) post when
asked for the raw message.

Parsed with the standard library's ``email`` package (policy ``default``): every header in
order; the text and HTML bodies (``get_body``: of a ``multipart/alternative``, or the message
itself); every other leaf part an attachment, a forwarded message (``message/rfc822``) or a
delivery report's parts included, an inline one with its ``content_id``. The raw bytes are kept.
"""

from dataclasses import replace
from email import policy
from email.parser import BytesParser

from mailer.inbound.fields import (
    Malformed,
    clean,
    content_id,
    decoded,
    filename,
    from_headers,
    header_text,
)
from mailer.inbound.message import InboundAttachment, InboundMail

PARSER = BytesParser(policy=policy.default)


def parse(raw, source, field, envelope_from=None, envelope_to=(), delivery_id=None):
    """The ``InboundMail`` of the MIME message ``raw`` (bytes) that came in by ``source``;
    ``Malformed`` naming ``field`` (where it was posted) if it is no message at all."""
    message = PARSER.parsebytes(raw)
    if not message.keys():
        raise Malformed(field, "Not a MIME message: it has no header")
    headers = tuple((clean(name), header_text(name, str(value))) for name, value in message.items())
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    return InboundMail(
        source=source,
        delivery_id=delivery_id,
        envelope_from=envelope_from,
        envelope_to=tuple(envelope_to),
        **from_headers(headers),
        text=_content(text),
        html=_content(html),
        stripped_text=None,
        headers=headers,
        attachments=_attachments(message, {id(text), id(html)}),
        raw=raw,
    )


def with_extras(mail, **extras):
    """``mail`` with what its provider posted beside the raw message (envelope, spam verdict,
    its id of the delivery): the given values that are not None."""
    return replace(mail, **{name: value for name, value in extras.items() if value is not None})


def _content(part):
    """A text part's content as text (its charset, or UTF-8 for one Python does not know), its
    lines ending in LF as a reader's text does (SMTP's CRLF is the wire's), or None."""
    if part is None:
        return None
    try:
        text = clean(part.get_content())
    except (LookupError, ValueError):
        text = decoded(part.get_payload(decode=True) or b"")
    return text.replace("\r\n", "\n")


def _leaves(part):
    """The parts that hold content, in order; a forwarded message or a delivery report's
    status is one part."""
    if part.get_content_maintype() == "multipart":
        for child in part.iter_parts():
            yield from _leaves(child)
    else:
        yield part


def _attachments(message, bodies):
    """Every leaf but the bodies (``bodies``: their ids), decoded."""
    files = []
    for part in _leaves(message):
        if id(part) in bodies:
            continue
        kind = part.get_content_type()
        files.append(
            InboundAttachment(
                filename=filename(part.get_filename(), len(files) + 1, kind),
                content_type=kind,
                content=_bytes(part),
                content_id=content_id(part.get("Content-ID")),
            )
        )
    return tuple(files)


def _bytes(part):
    """A leaf's content: decoded from its transfer encoding; a message part as its bytes."""
    if part.get_content_maintype() != "message":
        return part.get_payload(decode=True) or b""
    payload = part.get_payload()
    children = payload if isinstance(payload, list) else [payload]
    return b"".join(_message_bytes(child) for child in children)


def _message_bytes(message):
    """A message part's bytes as the generator writes them (none if it cannot)."""
    try:
        return message.as_bytes()
    except (AttributeError, LookupError, UnicodeError, ValueError):
        return b""
