"""Validation of a mail request, shared by the API and the admin.

``validate_mail`` takes what a client sent (a JSON object or form fields) and returns the clean
values to store, or raises ``ValidationError`` listing every bad field at once, so a client can
fix a request in one round trip.
"""

import functools
import re
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.header import decode_header, make_header
from email.headerregistry import Address, HeaderRegistry
from typing import NamedTuple

from email_validator import EmailNotValidError, validate_email

from mailer.validation.extras import FIELDS as EXTRA_FIELDS
from mailer.validation.extras import validate_extras
from mailer.validation.headers import bidi_problem, header_problem
from mailer.validation.limits import provider_problems

ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "reply_to")
TEXT_FIELDS = ("subject", "text", "html")
KNOWN_FIELDS = frozenset(ADDRESS_FIELDS + TEXT_FIELDS)
ALL_FIELDS = KNOWN_FIELDS | frozenset(EXTRA_FIELDS)
# An entry with none of these is a bare address: no display name, quoting or comment to parse.
PLAIN_ADDRESS = re.compile(r'[^\s<>()",;:\\\[\]]+\Z')
# A local part of letters, digits and . _ + - without leading, trailing or doubled dots: always
# valid, so only its domain needs email-validator (see _checked).
SIMPLE_LOCAL = re.compile(r"[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*\Z")
# Quotes, comments, angle brackets and escapes: an entry without them splits on its commas.
NEEDS_SPLITTER = re.compile(r'["(<\\]')
MAX_ADDRESS = 254  # RFC 5321's limit on a forward path, which email-validator enforces
MAX_LOCAL = 64
MAX_SUBJECT = 998  # RFC 5322's limit on a header line
# The whitespace a list entry may have around it: other spaces (NBSP, EM SPACE, ...) are not
# RFC 5322 whitespace, and dropping them would rewrite what was sent.
AROUND = " \t"
# What an unquoted display name cannot keep: spaces or tabs around it, a tab, a run of spaces.
SPACES_A_PHRASE_LOSES = re.compile(r"\A[ \t]|[ \t]\Z|\t| {2}")
QUOTED_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"\Z', re.DOTALL)
ADDRESS_PARSER = HeaderRegistry()


class Checked(NamedTuple):
    """A valid address, normalised as email-validator does."""

    normalized: str
    local_part: str
    domain: str


class ValidationError(Exception):
    """A request with bad fields; ``errors`` is a list of {"field", "message"}.

    ``status`` is 400, or 413 when what is too large is the request's content (attachments).
    """

    def __init__(self, errors, message="Invalid mail request", status=400):
        super().__init__(message)
        self.message = message
        self.errors = errors
        self.status = status


def validate_mail(
    data,
    max_recipients=50,
    max_attachment_bytes=10 * 1024 * 1024,
    max_schedule_days=30,
    max_attachments=100,
):
    """Check a mail request and return its normalised fields, or raise ValidationError."""
    errors = []
    unknown = data.keys() - ALL_FIELDS
    if unknown:
        errors += [{"field": name, "message": "Unknown field"} for name in sorted(unknown)]
    get = data.get
    clean = {
        "from_address": _one_address(get("from"), "from", errors, required=True),
        "to": _address_list(get("to"), "to", errors, max_recipients, required=True),
        "cc": _address_list(get("cc"), "cc", errors, max_recipients) or [],
        "bcc": _address_list(get("bcc"), "bcc", errors, max_recipients) or [],
        "reply_to": _one_address(get("reply_to"), "reply_to", errors),
        "subject": _text(get("subject"), "subject", errors, required=True, header=True),
        "text": _text(get("text"), "text", errors),
        "html": _text(get("html"), "html", errors),
    }
    if not clean["text"] and not clean["html"] and not _has_error(errors, "text", "html"):
        errors.append({"field": "text", "message": "Give a text or an html body (or both)"})
    extras, too_large = validate_extras(
        data, errors, max_attachment_bytes, max_schedule_days, max_attachments=max_attachments
    )
    if errors:
        raise ValidationError(errors, status=413 if too_large else 400)
    clean.update(extras)
    errors = provider_problems(clean)
    if errors:
        raise ValidationError(errors)
    return clean


def validate_address(value, field="address"):
    """One address (the suppression list's), normalised, or raise ValidationError naming it."""
    errors = []
    address = _one_address(value, field, errors, required=True)
    if errors:
        raise ValidationError(errors, message="Invalid address")
    return address


def _has_error(errors, *fields):
    """Whether one of ``fields`` already has an error listed."""
    return any(error["field"] in fields for error in errors)


def _text(value, field, errors, required=False, header=False):
    """A string field; a header field may not hold line breaks (header injection)."""
    if value is None or value == "":
        if required:
            errors.append({"field": field, "message": "This field is required"})
        return None
    if not isinstance(value, str):
        errors.append({"field": field, "message": "Must be a string"})
        return None
    problem = _unstorable(value) or (header and (header_problem(value) or bidi_problem(value)))
    if problem:
        errors.append({"field": field, "message": problem})
        return None
    if header and len(value) > MAX_SUBJECT:
        errors.append({"field": field, "message": f"Must be at most {MAX_SUBJECT} characters"})
        return None
    return value


def _unstorable(value):
    """Why a string cannot be stored nor sent (a NUL, a lone surrogate), or None."""
    if "\x00" in value:
        return "Must not contain NUL characters"
    if value.isascii():  # no surrogate: skip encoding it
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON may carry "\ud800", which no database can store
        return "Must be valid Unicode (no lone surrogates)"
    return None


def _raw_addresses(value, field, errors):
    """The strings a client gave for an address field: a comma-separated string or a list."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    errors.append({"field": field, "message": "Must be a string or a list of strings"})
    return None


def _parse_addresses(raw, field, errors):
    """Split and check addresses; returns 'Name <addr>' or 'addr' strings.

    A character that no entry may hold (``_entry``'s ``unsafe``) is reported before any
    entry's address problem, whichever entry comes first."""
    if len(raw) == 1:  # the common case: one string
        addresses, problem, _ = _entry(raw[0])
    else:
        verdicts = [_entry(item) for item in raw]
        problem = next((problem for _, problem, unsafe in verdicts if unsafe), None) or next(
            (problem for _, problem, _ in verdicts if problem), None
        )
        addresses = [address for found, _, _ in verdicts for address in found or ()]
    if problem:
        errors.append({"field": field, "message": problem})
        return None
    if not addresses:
        errors.append({"field": field, "message": "No valid address given"})
        return None
    return list(addresses)


@functools.lru_cache(maxsize=4096)
def _entry(item):
    """The verdict on one string a client gave for an address field: (addresses, None, False),
    (None, the character it may not hold, True), or (None, its first bad address, False).

    Cached by the string: a sender, and often a recipient, comes again with every request,
    and the verdict depends on nothing else. Entries are bounded by the request size; the
    cache by its count.
    """
    problem = _unstorable(item) or header_problem(item)
    if problem:
        return None, problem, True
    parsed = []
    for piece in _split_list(item):
        address, problem = _parse_one(piece)
        if problem:
            return None, problem, False
        parsed.append(address)
    return tuple(parsed), None, False


def _parse_one(piece):
    """One list entry as (address, None), or (None, what is wrong with it)."""
    problem = _unstorable(piece)
    if problem:
        return None, problem
    if PLAIN_ADDRESS.match(piece):  # the common case: no display name, nothing to parse
        valid, problem = _checked(piece)
        return (valid.normalized, None) if valid else (None, problem)
    if bidi_problem(piece):
        return None, f"{piece!r} must not contain bidirectional controls (U+202A-E, U+2066-9)"
    # The standard library's RFC 5322 parser reports what it had to repair ("a@exa mple.com",
    # "<a@example.com"), where getaddresses would silently rewrite it: an entry must parse
    # exactly, to exactly one address, and say nothing the parse leaves out (_as_written).
    try:
        parsed = ADDRESS_PARSER("to", piece)
    except Exception:  # the parser's own errors on malformed input too (see _unparsable)
        return None, _unparsable(piece)
    defects = [d for d in parsed.defects if not isinstance(d, NonASCIILocalPartDefect)]
    if defects or len(parsed.addresses) != 1 or not parsed.addresses[0].addr_spec:
        return None, f"Invalid address {piece!r}"
    name, address = parsed.addresses[0].display_name, parsed.addresses[0].addr_spec
    if _name_problem(name):
        return None, _bad_name(piece, name)
    if not _as_written(piece, name, address):
        read = f"{name} <{address}>" if name else address
        return None, (
            f"Invalid address {piece!r}: it reads as {read!r} (comments, groups, quotes and "
            "spaces in an address are not kept); send it as it should be read"
        )
    valid, problem = _checked(address)
    if problem:
        return None, problem
    if not name:
        return valid.normalized, None
    return _with_name(name, valid), None


def _with_name(name, valid):
    """``Name <local@domain>`` for a ``Checked`` address, read back as the same name.

    ``Address`` quotes a name only for its specials, and an unquoted phrase loses spaces
    around it and runs of them inside it, so such a name is quoted here."""
    # Address(addr_spec=...) would reject the non-ASCII local parts that SMTPUTF8 allows.
    rendered = str(Address(display_name=name, username=valid.local_part, domain=valid.domain))
    if rendered.startswith('"') or not SPACES_A_PHRASE_LOSES.search(name):
        return rendered
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" {rendered[rendered.rindex("<") :]}'


def _name_problem(name):
    """Why a parsed display name cannot be stored nor sent, or None.

    The raw entry was checked already, but the parser decodes RFC 2047 encoded words
    ("=?utf-8?q?Shop=C2=85Bcc:...?="), which can hold any character at all."""
    return _unstorable(name) or header_problem(name) or bidi_problem(name)


def _unparsable(piece):
    """The error of an entry on which the parser failed.

    It raises ValueError for an encoded word that decodes to CR or LF (``Address`` refuses
    them), and its own IndexError, AttributeError, TypeError or UnboundLocalError on some
    malformed entries ("<", "\\@", "g:Ann ;a;."): each is the entry's fault."""
    written_name = piece.rpartition("<")[0].rstrip(AROUND)
    name = _decoded_words(written_name)
    if name is not None and _name_problem(name):
        return _bad_name(piece, name)
    return f"Invalid address {piece!r}"


def _bad_name(piece, name):
    """The error of an entry whose display name, decoded, is ``name`` (it has a problem)."""
    return f"The display name of {piece!r}, decoded, is {name!r}: {_name_problem(name)}"


def _as_written(piece, name, address):
    """Whether the parsed ``name`` and ``address`` are all that ``piece`` says.

    The parser drops comments and group names, and the spaces, quotes and NBSPs around and
    inside an address; storing its result would silently change what was sent. So the address
    must be the entry itself, or stand in its angle brackets character for character, and the
    name before them must be the parsed name: as it is, in one pair of quotes, or in RFC 2047
    encoded words.
    """
    if not piece.endswith(">"):
        return not name and piece == address
    written_name, _, written_address = piece[:-1].rpartition("<")
    if written_address != address:
        return False
    written_name = written_name.rstrip(AROUND)
    return name in (written_name, _unquoted(written_name), _decoded_words(written_name))


def _unquoted(text):
    """The content of the RFC 5322 quoted string that is all of ``text``, or None."""
    found = QUOTED_STRING.match(text)
    return re.sub(r"\\(.)", r"\1", found.group(1), flags=re.DOTALL) if found else None


def _decoded_words(text):
    """``text`` with its RFC 2047 encoded words decoded, or None if it has none or they are
    not decodable."""
    if "=?" not in text:
        return None
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeDecodeError):
        return None


def _checked(address):
    """email-validator's verdict on one bare address: (Checked, None) or (None, why).

    Checking a domain is two thirds of email-validator's work, and domains repeat far more than
    addresses, so an address whose local part is a simple dot-atom (valid by RFC 5322, and so
    for email-validator too) has only its domain checked, once per domain. Anything else goes
    to email-validator whole.
    """
    local, _, domain = address.rpartition("@")
    if SIMPLE_LOCAL.match(local) and len(local) <= MAX_LOCAL and len(address) <= MAX_ADDRESS:
        domain_check, problem = _checked_whole(f"postmaster@{domain}")
        if domain_check is not None:
            return Checked(f"{local}@{domain_check.domain}", local, domain_check.domain), None
        return None, problem.replace("'postmaster@", f"'{local}@")
    return _checked_whole(address)


@functools.lru_cache(maxsize=65536)
def _checked_whole(address):
    """email-validator's verdict on one address, cached."""
    try:
        valid = validate_email(address, check_deliverability=False)
        return Checked(valid.normalized, valid.local_part, valid.domain), None
    except EmailNotValidError as err:
        return None, f"Invalid address {address!r}: {err}"


def _split_list(value):
    """Split an address list on the commas outside quotes, comments and angle brackets."""
    if not NEEDS_SPLITTER.search(value):
        return [piece.strip(AROUND) for piece in value.split(",") if piece.strip(AROUND)]
    pieces, current, quoted, depth, escaped = [], [], False, 0, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in "(<":
            depth += 1
        elif not quoted and char in ")>":
            depth = max(depth - 1, 0)
        elif char == "," and not quoted and depth == 0:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [piece.strip(AROUND) for piece in pieces if piece.strip(AROUND)]


def _address_list(
    value, field, errors, max_recipients, required=False, too_many="At most {} addresses"
):
    """A field of one or more addresses, as a list, or None."""
    raw = _raw_addresses(value, field, errors)
    if raw is None:
        return None
    if not raw:
        if required:
            errors.append({"field": field, "message": "This field is required"})
        return None
    parsed = _parse_addresses(raw, field, errors)
    if parsed is None:
        return None
    if len(parsed) > max_recipients:
        errors.append({"field": field, "message": too_many.format(max_recipients)})
        return None
    return parsed


def _one_address(value, field, errors, required=False):
    """A field that takes exactly one address, as a string."""
    value = _address_list(value, field, errors, 1, required, too_many="Give exactly one address")
    return value[0] if value else None
