"""A message received over SMTP as the request ``POST /mail`` takes.

Parsed with the standard library's ``email`` package (policy ``default``): ``From``, ``To``,
``Cc``, ``Reply-To`` and ``Subject``; the text and HTML bodies (of a ``multipart/alternative``,
or the message itself); every other part as an attachment, an inline part (one with a
``Content-ID`` that is not ``Content-Disposition: attachment``, an image of a
``multipart/related`` beside the HTML) with its ``content_id``, so that the HTML's ``cid:``
still finds it; the custom ``X-`` headers. The
envelope decides who gets the mail: ``To`` and ``Cc`` keep the addresses the client also gave
in ``RCPT``, and the envelope's other recipients become ``bcc``.

The control headers ``X-Mail-Tags`` (comma separated), ``X-Mail-Metadata`` (a JSON object),
``X-Mail-Template`` with ``X-Mail-Variables`` (a JSON object) and ``X-Mail-Send-At`` give what
the API's fields of those names give, and are not sent on. With a template, the message's
subject and bodies are left out: the template gives them.
"""

import json
import mimetypes
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from email.parser import BytesParser
from email.policy import EmailPolicy

from mailer.idempotency import HEADER as IDEMPOTENCY_HEADER
from mailer.validation.mail import ValidationError

# Control header -> the field of POST /mail it gives.
CONTROL_HEADERS = {
    "x-mail-tags": "tags",
    "x-mail-metadata": "metadata",
    "x-mail-template": "template",
    "x-mail-variables": "variables",
    "x-mail-send-at": "send_at",
}


class _Registry(HeaderRegistry):
    """The standard library's header classes, each made once per kind of header (address,
    date, unstructured, ...): ``HeaderRegistry`` makes a new class for every header it parses.
    Kept by kind, not by name, so that the names a client makes up add nothing."""

    def __init__(self):
        super().__init__()
        self._made = {}

    def __getitem__(self, name):
        """The class of a header named ``name`` (any case)."""
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = super().__getitem__(name)
        return made


class _ParsedOnce(EmailPolicy):
    """Policy ``default``, which parses each header of a message once (``parser``).

    The ``email`` package parses a header anew each time it is read, and ``get_body`` and
    ``get_content`` read a part's ``Content-Type`` at each of their steps. Header objects do
    not change, so one message's reads share them.
    """

    parsed = None  # {(name, raw value): header object} of one message

    def header_fetch_parse(self, name, value):
        """The header object of a stored header, parsed at its first read."""
        key = (name, value)
        header = self.parsed.get(key)
        if header is None:
            header = self.parsed[key] = super().header_fetch_parse(name, value)
        return header


POLICY = _ParsedOnce(header_factory=_Registry())


def parser():
    """A parser for one message, with the policy ``default`` and its own parsed headers."""
    return BytesParser(policy=POLICY.clone(parsed={}))


@dataclass(frozen=True)
class Received:
    """A parsed message: the request for ``validate_mail`` (or the template's rendering), and
    what makes a retry the same mail (its ``Idempotency-Key``, its ``Message-ID``)."""

    request: dict
    idempotency_key: str | None
    message_id: str | None


def parse(content, mail_from, rcpt_tos):
    """The ``Received`` of a message's bytes and its envelope (the sender of ``MAIL FROM`` and
    the recipients of ``RCPT TO``); ValidationError for a control header that is not JSON."""
    message = parser().parsebytes(content)
    envelope = {address.lower(): address for address in rcpt_tos}
    to = _in_envelope(message, "To", envelope)
    cc = _in_envelope(message, "Cc", envelope)
    named = {address.lower() for address in _bare(message, "To") + _bare(message, "Cc")}
    request = {
        "from": _addresses(message, "From") or mail_from,
        "to": to,
        "cc": cc,
        "bcc": [address for key, address in envelope.items() if key not in named],
        "reply_to": _addresses(message, "Reply-To"),
        **_controls(message),
    }
    text, html = _body_parts(message)
    if "template" not in request:
        request.update(_bodies(message, text, html))
    request["attachments"] = _attachments(message, (text, html))
    request["headers"] = _custom_headers(message)
    request = {key: value for key, value in request.items() if value not in (None, "", [], {})}
    return Received(request, _header(message, IDEMPOTENCY_HEADER), _header(message, "Message-ID"))


def _header(message, name):
    """A header's value as text (encoded words decoded), or None."""
    value = message.get(name)
    return None if value is None else str(value).strip()


def _address_list(message, name):
    """The ``Address`` objects of every ``name`` header, or None if a header does not parse
    (then validation sees its text and names the problem)."""
    found = []
    for header in message.get_all(name) or ():
        addresses = getattr(header, "addresses", None)
        if not addresses and str(header).strip():
            return None
        found += addresses or ()
    return found


def _addresses(message, name):
    """A header's addresses as one string, ``Name <address>`` each, for validation."""
    found = _address_list(message, name)
    if found is None:
        return ", ".join(str(header) for header in message.get_all(name))
    return ", ".join(str(address) for address in found) or None


def _bare(message, name):
    """The bare addresses of a header (none if it does not parse)."""
    return [address.addr_spec for address in _address_list(message, name) or ()]


def _in_envelope(message, name, envelope):
    """The addresses of ``To`` or ``Cc`` that the envelope also names; the header's text if
    it does not parse (validation names the problem)."""
    found = _address_list(message, name)
    if found is None:
        return ", ".join(str(header) for header in message.get_all(name))
    return [str(address) for address in found if address.addr_spec.lower() in envelope]


def _controls(message):
    """The fields the control headers give."""
    fields, errors = {}, []
    for header, field in CONTROL_HEADERS.items():
        value = _header(message, header)
        if value is None:
            continue
        if field == "tags":
            fields[field] = [tag.strip() for tag in value.split(",") if tag.strip()]
        elif field == "metadata":
            fields[field] = _json_object(value, field, header, errors)
        else:
            fields[field] = value  # variables: JSON text, as a form field gives it
    if errors:
        raise ValidationError(errors)
    return fields


def _json_object(text, field, header, errors):
    """A control header's JSON object (checked further by validation); an error if not JSON."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        errors.append({"field": field, "message": f"Must be a JSON object ({header})"})
        return None


def _body_parts(message):
    """The parts of the text and the HTML body (each None if there is none)."""
    return message.get_body(preferencelist=("plain",)), message.get_body(preferencelist=("html",))


def _bodies(message, text, html):
    """The subject and the text and HTML bodies (of the parts ``text`` and ``html``)."""
    return {
        "subject": _header(message, "Subject"),
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
    }


def _leaves(part):
    """The parts that hold content, in order (a forwarded message is one part)."""
    if part.get_content_maintype() == "multipart":
        for child in part.iter_parts():
            yield from _leaves(child)
    else:
        yield part


def _attachments(message, body_parts):
    """Every part that is not one of ``body_parts`` (the text and HTML body), as
    ``{filename, content_type, content}`` (content: bytes), an inline part with its
    ``content_id`` too; a part without a file name gets one from its type."""
    bodies = {id(part) for part in body_parts}
    files = []
    for part in _leaves(message):
        if id(part) in bodies:
            continue
        content_type = part.get_content_type()
        if part.get_content_maintype() == "message":
            content = b"".join(child.as_bytes() for child in part.iter_parts())
        else:
            content = part.get_payload(decode=True) or b""
        name = part.get_filename() or _unnamed(len(files) + 1, content_type)
        files.append({"filename": name, "content_type": content_type, "content": content})
        content_id = _content_id(part)
        if content_id:
            files[-1]["content_id"] = content_id
    return files


def _content_id(part):
    """An inline part's Content-ID without its angle brackets (validation checks it), or None:
    for a part without one, or one sent as an attachment (some clients give every part a
    Content-ID; a file the client attached stays attached)."""
    value = _header(part, "Content-ID")
    if not value or part.get_content_disposition() == "attachment":
        return None
    return value.removeprefix("<").removesuffix(">").strip() or None


def _unnamed(number, content_type):
    """A name for the ``number``-th file, which came without one."""
    extension = mimetypes.guess_extension(content_type) or ".bin"
    return f"part-{number}{extension}"


def _custom_headers(message):
    """The ``X-`` headers but the control headers, each name once (its first value); only
    those are parsed (``raw_items``: the names and values as stored, what ``items`` parses)."""
    headers = {}
    for name, value in message.raw_items():
        lower = name.lower()
        if lower.startswith("x-") and lower not in CONTROL_HEADERS and name not in headers:
            headers[name] = str(message.policy.header_fetch_parse(name, value))
    return headers
