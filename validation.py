"""Validation of a mail request, shared by the API and the admin.

``validate_mail`` takes what a client sent (a JSON object or form fields) and returns the clean
values to store, or raises ``ValidationError`` listing every bad field at once, so a client can
fix a request in one round trip.
"""

from email.headerregistry import Address
from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email

ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "reply_to")
TEXT_FIELDS = ("subject", "text", "html")
KNOWN_FIELDS = frozenset(ADDRESS_FIELDS + TEXT_FIELDS)
MULTI_FIELDS = ("to", "cc", "bcc")  # fields that take several addresses
MAX_SUBJECT = 998  # RFC 5322's limit on a header line


class ValidationError(Exception):
    """A request with bad fields; ``errors`` is a list of {"field", "message"}."""

    def __init__(self, errors, message="Invalid mail request"):
        super().__init__(message)
        self.message = message
        self.errors = errors


def validate_mail(data, max_recipients=50):
    """Check a mail request and return its normalised fields, or raise ValidationError."""
    errors = []
    unknown = sorted(set(data) - KNOWN_FIELDS)
    errors += [{"field": name, "message": "Unknown field"} for name in unknown]
    clean = {
        "from_address": _one_address(data, "from", errors, required=True),
        "to": _address_list(data, "to", errors, max_recipients, required=True),
        "cc": _address_list(data, "cc", errors, max_recipients),
        "bcc": _address_list(data, "bcc", errors, max_recipients),
        "reply_to": _one_address(data, "reply_to", errors),
        "subject": _text(data, "subject", errors, required=True, header=True),
        "text": _text(data, "text", errors),
        "html": _text(data, "html", errors),
    }
    if not clean["text"] and not clean["html"] and not _has_error(errors, "text", "html"):
        errors.append({"field": "text", "message": "Give a text or an html body (or both)"})
    if errors:
        raise ValidationError(errors)
    return clean


def _has_error(errors, *fields):
    """Whether one of ``fields`` already has an error listed."""
    return any(error["field"] in fields for error in errors)


def _text(data, field, errors, required=False, header=False):
    """A string field; a header field may not hold line breaks (header injection)."""
    value = data.get(field)
    if value is None or value == "":
        if required:
            errors.append({"field": field, "message": "This field is required"})
        return None
    if not isinstance(value, str):
        errors.append({"field": field, "message": "Must be a string"})
        return None
    if header and ("\r" in value or "\n" in value):
        errors.append({"field": field, "message": "Must not contain line breaks (CR or LF)"})
        return None
    if header and len(value) > MAX_SUBJECT:
        errors.append({"field": field, "message": f"Must be at most {MAX_SUBJECT} characters"})
        return None
    if "\x00" in value:
        errors.append({"field": field, "message": "Must not contain NUL characters"})
        return None
    return value


def _raw_addresses(data, field, errors):
    """The strings a client gave for an address field: a comma-separated string or a list."""
    value = data.get(field)
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    errors.append({"field": field, "message": "Must be a string or a list of strings"})
    return None


def _parse_addresses(raw, field, errors):
    """Split and check addresses; returns 'Name <addr>' or 'addr' strings."""
    if any("\r" in item or "\n" in item for item in raw):
        errors.append({"field": field, "message": "Must not contain line breaks (CR or LF)"})
        return None
    parsed = []
    for name, address in getaddresses(raw):
        if not address:
            continue
        try:
            normal = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as err:
            errors.append({"field": field, "message": f"Invalid address {address!r}: {err}"})
            return None
        parsed.append(str(Address(display_name=name, addr_spec=normal)) if name else normal)
    if raw and not parsed:
        errors.append({"field": field, "message": "No valid address given"})
        return None
    return parsed


def _address_list(data, field, errors, max_recipients, required=False):
    """A field of one or more addresses, joined by ', ' for storage, or None."""
    raw = _raw_addresses(data, field, errors)
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
        errors.append({"field": field, "message": f"At most {max_recipients} addresses"})
        return None
    return ", ".join(parsed)


def _one_address(data, field, errors, required=False):
    """A field that takes exactly one address."""
    value = _address_list(data, field, errors, max_recipients=1, required=required)
    if value is None and field in {error["field"] for error in errors}:
        _reword_single(errors, field)
    return value


def _reword_single(errors, field):
    """Say 'exactly one address' instead of 'at most 1 addresses' for single fields."""
    for error in errors:
        if error["field"] == field and error["message"].startswith("At most"):
            error["message"] = "Give exactly one address"
