"""What the ways in share: the error of a delivery that is not what its provider sends, the
form an HTTP delivery posts (read as bytes, so that each provider's charsets decide), and the
reading of headers into ``InboundMail``'s fields.

Everything read is text PostgreSQL can hold: no NUL, no lone surrogate (a header's 8-bit bytes,
which the ``email`` package keeps as surrogates, are read as UTF-8). A header that does not
parse is kept as its text; an address list that does not parse gives no addresses (the header
itself stays in ``headers``): the sender's mistakes are not the provider's, and the mail is
taken.
"""

import hashlib
import json
import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.errors import HeaderParseError
from email.parser import BytesHeaderParser
from urllib.parse import unquote_to_bytes

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

MESSAGE_ID = re.compile(r"<[^<>\s]+>")
HEADER_PARSER = BytesHeaderParser(policy=policy.default)
# What the email package's header parsers have raised on odd input, rather than a defect.
HEADER_ERRORS = (HeaderParseError, ValueError, IndexError, AttributeError, TypeError)


class Malformed(ValueError):
    """A delivery that is not what its provider sends: ``field`` names the part at fault."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Upload:
    """One file of a posted form, as posted."""

    filename: str
    content_type: str  # as its part's Content-Type gave it, parameters included
    content: bytes


@dataclass(frozen=True)
class Form:
    """A posted form: every value of each field, and of each file, as bytes, in order."""

    fields: dict = field(default_factory=dict)  # name -> [bytes]
    files: dict = field(default_factory=dict)  # name -> [Upload]

    def raw(self, name):
        """The first value of field ``name`` as bytes, or None."""
        values = self.fields.get(name)
        return values[0] if values else None

    def text(self, name, charset="utf-8"):
        """The first value of field ``name`` as text (read in ``charset``), or None."""
        value = self.raw(name)
        return None if value is None else decoded(value, charset)

    def json(self, name, kind, expected):
        """Field ``name`` as JSON of type ``kind`` (dict or list), or None if absent;
        ``Malformed`` saying ``expected`` if it is not."""
        text = self.text(name)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, kind):
            raise Malformed(name, expected)
        return value

    def file(self, name):
        """The first file of field ``name``, or None."""
        values = self.files.get(name)
        return values[0] if values else None

    def digest(self):
        """The sha256 (hex) of every name and value: the same form, however its parts were
        ordered or its boundary chosen, has the same digest."""
        parts = [(name, value) for name, values in self.fields.items() for value in values]
        parts += [
            (name, upload.filename.encode() + b"\0" + upload.content)
            for name, values in self.files.items()
            for upload in values
        ]
        total = hashlib.sha256()
        for name, value in sorted(parts):
            total.update(hashlib.sha256(name.encode()).digest())
            total.update(hashlib.sha256(value).digest())
        return total.hexdigest()


def parse_form(content_type, body):
    """The ``Form`` of a body posted as ``multipart/form-data`` or urlencoded; ``Malformed``
    (``Content-Type`` or ``body``) for anything else."""
    mimetype, options = parse_options_header(content_type or "")
    if mimetype == "application/x-www-form-urlencoded":
        return _urlencoded(body)
    if mimetype == "multipart/form-data" and options.get("boundary"):
        return _multipart(body, options["boundary"].encode("latin-1"))
    raise Malformed(
        "Content-Type", "Must be multipart/form-data or application/x-www-form-urlencoded"
    )


def _urlencoded(body):
    """A urlencoded body's fields, each value as the bytes it encodes."""
    form = Form()
    for pair in filter(None, body.split(b"&")):
        name, _, value = pair.partition(b"=")
        name = decoded(unquote_to_bytes(name.replace(b"+", b" ")))
        form.fields.setdefault(name, []).append(unquote_to_bytes(value.replace(b"+", b" ")))
    return form


def _multipart(body, boundary):
    """A multipart body's fields and files (Werkzeug's decoder, as its form parser uses)."""
    decoder = MultipartDecoder(boundary)
    form, part, chunks = Form(), None, []
    try:
        decoder.receive_data(body)
        decoder.receive_data(None)
        event = decoder.next_event()
        while not isinstance(event, Epilogue | NeedData):
            if isinstance(event, Field | File):
                part, chunks = event, []
            elif isinstance(event, Data) and part is not None:
                chunks.append(event.data)
                if not event.more_data:
                    _keep(form, part, b"".join(chunks))
            event = decoder.next_event()
    except ValueError as err:
        raise Malformed("body", "Malformed multipart/form-data") from err
    if not isinstance(event, Epilogue):
        raise Malformed("body", "The multipart/form-data body is cut short")
    return form


def _keep(form, part, content):
    """Add one decoded part to ``form``: a file if it came with a file name."""
    if isinstance(part, File):
        content_type = part.headers.get("content-type", "application/octet-stream")
        upload = Upload(part.filename, content_type, content)
        form.files.setdefault(part.name, []).append(upload)
    else:
        form.fields.setdefault(part.name, []).append(content)


# Text ---------------------------------------------------------------------------------------


def clean(text):
    """``text`` as PostgreSQL can hold it: no NUL; the surrogates that stand for undecoded
    bytes read as UTF-8, any other lone surrogate replaced."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            try:
                data = text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                data = text.encode("utf-8", "surrogatepass")
            text = data.decode("utf-8", "replace")
    return text.replace("\x00", "")


def decoded(data, charset="utf-8"):
    """Bytes as text in ``charset`` (UTF-8 for one Python does not know), bad bytes replaced."""
    try:
        text = data.decode(charset or "utf-8", "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return clean(text)


def header_text(name, value):
    """A header's value as a reader sees it: encoded words decoded, on one line."""
    try:
        text = str(policy.default.header_factory(name, value))
    except HEADER_ERRORS:
        text = value
    return clean(" ".join(text.split()))


def header_pairs(data):
    """The headers of a block of header lines (bytes), in order, as (name, text)."""
    message = HEADER_PARSER.parsebytes(data.rstrip(b"\r\n") + b"\r\n\r\n")
    return tuple((clean(name), header_text(name, str(value))) for name, value in message.items())


def every(headers, name):
    """Every value of header ``name`` (any case) in ``headers`` pairs, in order."""
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


def first(headers, name):
    """The first value of header ``name`` (any case) in ``headers`` pairs, or None."""
    return next(iter(every(headers, name)), None)


def addresses(value):
    """The addresses of an address-list header's text, ``Name <local@domain>`` where a name is
    given; none if it does not parse."""
    if not value:
        return ()
    try:
        parsed = policy.default.header_factory("To", value).addresses
    except HEADER_ERRORS:
        return ()
    return tuple(clean(str(address)) for address in parsed if address.addr_spec)


def message_ids(value):
    """The ``<id>`` tokens of a Message-ID, In-Reply-To or References header."""
    if not value:
        return ()
    found = MESSAGE_ID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [f"<{value.strip().strip('<>')}>"]  # written without its brackets
    return tuple(found)


def from_headers(headers):
    """The fields of ``InboundMail`` that its headers give: From, To, Cc, Subject and the ids
    that thread a reply."""
    message_id = message_ids(first(headers, "Message-ID"))
    in_reply_to = message_ids(first(headers, "In-Reply-To"))
    return {
        "from_address": first(headers, "From"),
        "to": tuple(found for value in every(headers, "To") for found in addresses(value)),
        "cc": tuple(found for value in every(headers, "Cc") for found in addresses(value)),
        "subject": first(headers, "Subject") or "",
        "message_id": message_id[0] if message_id else None,
        "in_reply_to": in_reply_to[0] if in_reply_to else None,
        "references": message_ids(first(headers, "References")),
    }


# Files and spam -----------------------------------------------------------------------------


def filename(name, number, content_type):
    """A file's name without a path (a sender's ``..\\mail\\x.msg`` is ``x.msg``); for a file
    without one, ``part-<number>`` with its type's extension."""
    base = clean(re.split(r"[\\/]", name or "")[-1]).strip()
    if base and base not in (".", ".."):
        return base
    return f"part-{number}{mimetypes.guess_extension(content_type) or '.bin'}"


def mimetype(content_type):
    """A Content-Type's type alone, lower case (``application/octet-stream`` if none)."""
    kind, _ = parse_options_header(content_type or "")
    return kind.lower() if "/" in kind else "application/octet-stream"


def content_id(value):
    """A Content-ID without its angle brackets, or None."""
    text = clean(value or "").strip().strip("<>").strip()
    return text or None


def spam_score(value):
    """A spam score header's number, or None if it is not one."""
    try:
        score = float((value or "").split()[0])
    except (IndexError, ValueError):
        return None
    return score if score == score and abs(score) != float("inf") else None


def digest_id(*parts):
    """``sha256:<hex>`` of ``parts`` (bytes): the id of a delivery whose provider gives none,
    which a retry of the same delivery repeats."""
    total = hashlib.sha256()
    for part in parts:
        total.update(hashlib.sha256(part).digest())
    return "sha256:" + total.hexdigest()
