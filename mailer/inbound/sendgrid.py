"""SendGrid's inbound mail: what its Inbound Parse webhook posts (``multipart/form-data``).

Two shapes, by the Parse setting "POST the raw, full MIME message":

- **default**: ``headers`` (the header lines as received), ``text``, ``html``, ``from``, ``to``,
  ``cc``, ``subject``, the files ``attachment1`` ... with ``attachments`` (their number) and
  ``attachment-info`` (a JSON object, ``{"attachment1": {"filename", "type", "content-id"}}``),
  and ``charsets`` (a JSON object naming the charset of each text field: SendGrid posts the
  bodies in the sender's charset, not always UTF-8);
- **raw**: the whole message in ``email``.

Both carry ``envelope`` (JSON: ``{"to": [...], "from": "..."}``) and, with the spam check on,
``spam_score`` and ``spam_report``. SendGrid gives no verdict, only the score, and no id of
the delivery: its id here is the digest of the posted form, which a retry repeats.
"""

import re

from mailer.inbound import mime
from mailer.inbound.fields import (
    Malformed,
    addresses,
    content_id,
    filename,
    from_headers,
    header_pairs,
    mimetype,
)
from mailer.inbound.message import InboundAttachment, InboundMail

SENDGRID = "sendgrid"
ATTACHMENT = re.compile(r"attachment(\d+)")


def inbound(form):
    """The ``InboundMail`` of SendGrid's posted ``form`` (``fields.Form``)."""
    extras = {
        **_envelope(form),
        "delivery_id": "sha256:" + form.digest(),
        "spam_score": _score(form),
    }
    raw = form.raw("email")
    if raw is not None:
        return mime.with_extras(mime.parse(raw, SENDGRID, "email"), **extras)
    if form.raw("headers") is None:
        raise Malformed("headers", "Missing: SendGrid posts headers (or email, in raw mode)")
    return _parsed(form, extras)


def _envelope(form):
    """``envelope``: the SMTP sender and recipients."""
    expected = 'Must be a JSON object {"to": ["address", ...], "from": "address"}'
    envelope = form.json("envelope", dict, expected)
    if envelope is None:
        return {"envelope_from": None, "envelope_to": ()}
    to, sender = envelope.get("to", []), envelope.get("from")
    if isinstance(to, str):
        to = [to]
    if not (isinstance(to, list) and all(isinstance(a, str) for a in to)):
        raise Malformed("envelope", expected)
    if sender is not None and not isinstance(sender, str):
        raise Malformed("envelope", expected)
    return {"envelope_from": sender, "envelope_to": tuple(to)}  # "": the null sender, <>


def _score(form):
    """``spam_score``, a number, or None without the spam check."""
    text = (form.text("spam_score") or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise Malformed("spam_score", "Must be a number") from None


def _parsed(form, extras):
    """The mail of the default shape: the headers as received, the bodies in their charsets."""
    charsets = form.json("charsets", dict, "Must be a JSON object of field: charset") or {}
    headers = header_pairs(form.raw("headers"))
    fields = from_headers(headers)
    return InboundMail(
        source=SENDGRID,
        **extras,
        **{
            **fields,
            "from_address": fields["from_address"] or _field(form, "from", charsets),
            "to": fields["to"] or addresses(_field(form, "to", charsets)),
            "cc": fields["cc"] or addresses(_field(form, "cc", charsets)),
            "subject": fields["subject"] or _field(form, "subject", charsets) or "",
        },
        text=_field(form, "text", charsets),
        html=_field(form, "html", charsets),
        stripped_text=None,
        headers=headers,
        attachments=_attachments(form),
    )


def _field(form, name, charsets):
    """A text field in the charset ``charsets`` gives it (UTF-8 if none)."""
    charset = charsets.get(name)
    return form.text(name, charset if isinstance(charset, str) else "utf-8")


def _attachments(form):
    """The files ``attachment1`` ..., described by ``attachment-info``."""
    info = form.json("attachment-info", dict, "Must be a JSON object of attachmentN: {...}")
    names = sorted(info or _posted(form), key=_number)
    files = []
    for name in names:
        upload = form.file(name)
        if upload is None:
            raise Malformed(name, "Missing: attachment-info names it")
        described = (info or {}).get(name)
        described = described if isinstance(described, dict) else {}
        kind = mimetype(_text(described.get("type")) or upload.content_type)
        files.append(
            InboundAttachment(
                filename=filename(
                    _text(described.get("filename")) or upload.filename, len(files) + 1, kind
                ),
                content_type=kind,
                content=upload.content,
                content_id=content_id(_text(described.get("content-id"))),
            )
        )
    return tuple(files)


def _posted(form):
    """The attachment files posted (without ``attachment-info``)."""
    return [name for name in form.files if ATTACHMENT.fullmatch(name)]


def _number(name):
    """The number of ``attachmentN`` (others last, by name)."""
    match = ATTACHMENT.fullmatch(name)
    return (0, int(match.group(1)), "") if match else (1, 0, name)


def _text(value):
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None
