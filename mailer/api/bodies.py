"""Request bodies read strictly: never past ``MAX_CONTENT_LENGTH``, and forms only as UTF-8.

Werkzeug enforces the size limit up front only when a body declares its Content-Length. A
chunked body has none, and its form parser then stops at the limit and keeps what it read, so
an 11 MB form was stored cut short with a 202. ``buffer_chunked_body`` reads such a body first,
up to one byte past the limit, and refuses it whole (413) when it is larger, or (400) when its
chunks cannot be read.

Werkzeug also decodes forms forgivingly: ``%FF`` stays as the text "%FF", a raw 0xFF empties
the whole urlencoded form, and multipart fields get U+FFFD. ``form_fields`` parses the same
bytes strictly and names the field that is not UTF-8.

JSON is the one way text with a lone surrogate gets in: ``"\\ud800"`` (or the bytes ED A0 80,
which ``json.loads`` decodes too) is valid JSON but no UTF-8, so PostgreSQL and the providers
cannot take it. ``parsed_json`` parses every JSON body the service reads, and the JSON objects
of form fields, and names each string that holds one.
"""

import io
import json
import re
from urllib.parse import unquote_to_bytes

from flask import current_app, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from mailer.api.errors import ApiError

READ_CHUNK = 64 * 1024  # bytes read at a time from a chunked body
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in text decoded from JSON, always lone


def buffer_chunked_body():
    """Before a request: read a body sent without Content-Length, refusing one over the limit."""
    environ = request.environ
    if environ.get("CONTENT_LENGTH") or not _has_unsized_body(environ):
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        body = _read_at_most(environ["wsgi.input"], limit + 1)
    except (OSError, ParseException) as err:
        raise _malformed_chunks() from err
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(body)
    # Now an ordinary body of known length (Werkzeug ignores Content-Length while a
    # Transfer-Encoding is present).
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)


def _malformed_chunks():
    """The 400 of a chunked body that cannot be read: a chunk size or extension that breaks
    the rules, a missing CRLF, or a body that ends before its last chunk.

    The server raises that while the app reads the body: gunicorn its ParseException
    (InvalidChunkSize, InvalidChunkExtension, ChunkMissingTerminator) or NoMoreData, an
    OSError, as Werkzeug's development server raises OSError. Where the next request would
    start is unknown, so the server closes the connection after this answer."""
    return ApiError(
        400,
        "The request body's chunked encoding is malformed or cut short",
        [{"field": "body", "message": "Malformed or incomplete chunked body"}],
    )


def _has_unsized_body(environ):
    """Whether the request carries a body of unknown length (chunked)."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or bool(environ.get("wsgi.input_terminated"))


def _read_at_most(stream, size):
    """Up to ``size`` bytes of ``stream``."""
    chunks, total = [], 0
    while total < size:
        chunk = stream.read(min(READ_CHUNK, size - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def form_fields():
    """The request's form fields and files as {name: [values]}; 400 naming a non-UTF-8 field."""
    raw = request.get_data(cache=True)  # the form parser below reads the same cached bytes
    if request.mimetype == "multipart/form-data":
        boundary = request.mimetype_params.get("boundary", "")
        _refuse(_undecodable_parts(raw, boundary.encode("latin-1")))
        fields = {**request.files.to_dict(flat=False), **request.form.to_dict(flat=False)}
        return fields
    return _parse_urlencoded(raw)


def _parse_urlencoded(raw):
    """A urlencoded body as {name: [values]}, every name and value strict UTF-8."""
    fields, bad = {}, []
    for pair in filter(None, raw.split(b"&")):
        name, _, value = pair.partition(b"=")
        name = _decoded(name)
        if name is None:
            bad.append("body")
            continue
        value = _decoded(value)
        if value is None:
            bad.append(name)
            continue
        fields.setdefault(name, []).append(value)
    _refuse(bad)
    return fields


def _decoded(encoded):
    """One urlencoded name or value as text, or None if its bytes are not UTF-8."""
    try:
        return unquote_to_bytes(encoded.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _undecodable_parts(raw, boundary):
    """The names of the multipart text fields whose content is not UTF-8; 400 if unparsable."""
    if not boundary:
        return []
    decoder = MultipartDecoder(boundary)
    try:
        decoder.receive_data(raw)
        decoder.receive_data(None)
        return _parts_not_utf8(decoder)
    except ValueError as err:  # a garbled or cut-off body: the client's fault, not a 500
        raise ApiError(
            400,
            "The multipart body cannot be parsed",
            [{"field": "body", "message": "Malformed multipart/form-data"}],
        ) from err


def _parts_not_utf8(decoder):
    """The names of the text fields, read from ``decoder``, whose content is not UTF-8."""
    bad, name, chunks = [], None, []
    event = decoder.next_event()
    while not isinstance(event, Epilogue | NeedData):
        if isinstance(event, Field | File):
            name, chunks = (event.name if isinstance(event, Field) else None), []
        elif isinstance(event, Data) and name is not None:
            chunks.append(event.data)
            if not event.more_data and not _is_utf8(b"".join(chunks)):
                bad.append(name)
        event = decoder.next_event()
    return bad


def _is_utf8(data):
    """Whether ``data`` decodes as UTF-8."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _refuse(bad_fields):
    """Raise a 400 naming each field that is not valid UTF-8, if any."""
    if bad_fields:
        raise ApiError(
            400,
            "Form fields must be valid UTF-8",
            [{"field": name, "message": "Not valid UTF-8"} for name in bad_fields],
        )


def init_app(app):
    """Read unsized bodies within the limit before any view sees them."""
    app.before_request(buffer_chunked_body)


def parsed_json(raw, path=""):
    """The JSON document ``raw`` (bytes or text), or None if it is not JSON (or nests too
    deeply to parse); a 400 naming each string in it that holds a lone surrogate.

    ``path``: where the document stands in the request (a form field's name), for the names
    of the fields at fault."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    escape = "\\u" if isinstance(raw, str) else b"\\u"
    if raw.isascii() and escape not in raw:  # most bodies: no escape, so no surrogate
        return document
    bad = lone_surrogates(document, path)
    if bad:
        indexed = isinstance(document, list) and not path  # a batch: say which item
        raise ApiError(
            400,
            "Text must be valid Unicode",
            [
                {
                    "field": field,
                    **({"index": int(field[1:].partition("]")[0])} if indexed else {}),
                    "message": "Must be valid Unicode (no lone surrogates)",
                }
                for field in bad
            ],
        )
    return document


def lone_surrogates(document, path=""):
    """The names of the strings and object keys in a decoded JSON ``document`` that hold a lone
    surrogate: ``subject``, ``metadata.note``, ``tags[1]``, ``[3].attachments[0].filename``.

    A loop rather than recursion: ``json.loads`` parses documents nested deeper than Python
    may recurse."""
    bad, pending = [], [(path, document)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if not value.isascii() and LONE_SURROGATE.search(value):
                bad.append(where or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{_shown(key)}" if where else _shown(key)
                if not key.isascii() and LONE_SURROGATE.search(key):
                    bad.append(name)
                pending.append((name, item))
        elif isinstance(value, list):
            pending += [(f"{where}[{index}]", item) for index, item in enumerate(value)]
    return sorted(set(bad))


def _shown(key):
    """An object key as a field's name can show it: a lone surrogate as its escape."""
    return key.encode("utf-8", "backslashreplace").decode("utf-8")
