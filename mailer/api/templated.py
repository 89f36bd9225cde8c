"""Mail from a stored template: ``POST /mail`` and each item of ``POST /mail/batch`` may give
``template`` (a name), ``template_version`` (default: the latest) and ``variables`` in place of
``subject``, ``text`` and ``html``.

The mail is rendered here, when it is submitted, and stored rendered: what the recipient gets
is fixed at the 202, the same through every provider and every failover. The versions a
request asks for are read in one statement (``templates.resolve``), however many items name
them, and each version is compiled once (``rendering.Renderer``'s cache), so a batch of a
thousand personal mails costs a look-up, a compilation and a thousand renders.
"""

import json
import re

from flask import current_app

from mailer import rendering
from mailer.database import transaction
from mailer.queue import templates
from mailer.validation.mail import TEXT_FIELDS, ValidationError, validate_mail

TEMPLATE_FIELDS = frozenset(("template", "template_version", "variables"))
NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}\Z")
MAX_VERSION = 2**31 - 1  # the database's integer
EMPTY = (None, "")  # what an optional field holds when it is not given
RENDERER = rendering.Renderer()
# The variables as JSON, to measure them: one encoder, not one made per call of json.dumps.
COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class Asked:
    """What one request asks of a template: the version (``pair``), its ``variables``, and
    the errors of these fields (then ``pair`` is None)."""

    def __init__(self, data, max_variables_bytes):
        """``max_variables_bytes``: the variables' bound, or None when they were measured
        already (``fit``)."""
        self.errors = []
        self.name = self._name(data.get("template"))
        self.version = self._version(data.get("template_version"))
        self.variables = self._variables(data.get("variables"), max_variables_bytes)
        for field in TEXT_FIELDS:
            if data.get(field) not in EMPTY:
                self.errors.append(
                    {"field": field, "message": "Give either a template or subject, text and html"}
                )
        self.pair = None if self.errors else (self.name, self.version)

    def _name(self, value):
        """The template's name, checked."""
        if not isinstance(value, str) or not NAME.match(value):
            self.errors.append(
                {"field": "template", "message": "A name of 1-100 letters, digits, _ . or -"}
            )
            return None
        return value

    def _version(self, value):
        """The version asked for (None: the latest)."""
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit():  # a form's field
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
            self.errors.append(
                {"field": "template_version", "message": f"A version number, 1 to {MAX_VERSION}"}
            )
            return None
        return value

    def _variables(self, value, max_bytes):
        """The variables, a JSON object of at most ``max_bytes`` as JSON (None: measured
        already, with the batch's others)."""
        text = value if isinstance(value, str) else None  # a form's field: the object as JSON
        if text is not None:
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                value = []
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.errors.append({"field": "variables", "message": "Must be a JSON object"})
            return {}
        if max_bytes is not None and _utf8_size(text or COMPACT.encode(value)) > max_bytes:
            self.errors.append(
                {"field": "variables", "message": f"At most {max_bytes:,} bytes as JSON"}
            )
            return {}
        return value


def _utf8_size(text):
    """The bytes of ``text`` in UTF-8."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def uses_template(data):
    """Whether a request (a dict) names a template or gives its fields (null and "" are
    "none", as for every optional field)."""
    get = data.get
    return not (
        get("template") in EMPTY and get("template_version") in EMPTY and get("variables") in EMPTY
    )


def fit(requests, max_bytes):
    """Whether every request's variables fit in ``max_bytes`` as JSON, measured at once: each
    one's JSON is a part of their list's. False means each must be measured on its own."""
    values = [data.get("variables") for data in requests]
    return _utf8_size(COMPACT.encode(values)) <= max_bytes


def without_template(data):
    """A request that uses no template without its template fields (each null or "")."""
    if TEMPLATE_FIELDS.isdisjoint(data):
        return data
    return {key: value for key, value in data.items() if key not in TEMPLATE_FIELDS}


def validate_all(items, bounds, tenant=templates.DEFAULT_TENANT):
    """Each request of ``items`` (dicts, or what a batch holds instead) validated, templated
    ones rendered first (from ``tenant``'s templates): ``[(index, clean or None, errors,
    status)]`` in order, ``errors`` as ``validate_mail`` lists them (a template's with the field
    at fault) and ``status`` the one ``validate_mail`` gives them (413 when the attachments are
    too large, else 400)."""
    config = current_app.config
    templated = {
        index: item
        for index, item in enumerate(items)
        if isinstance(item, dict) and uses_template(item)
    }
    limit = config["MAX_VARIABLES_BYTES"]
    measured = None if len(templated) > 1 and fit(templated.values(), limit) else limit
    asked = {index: Asked(item, measured) for index, item in templated.items()}
    versions = _versions({ask.pair for ask in asked.values() if ask.pair is not None}, tenant)
    max_bytes = config["MAX_RENDERED_BYTES"]
    return [
        (index, *_validated(item, asked.get(index), versions, bounds, max_bytes))
        for index, item in enumerate(items)
    ]


def _versions(wanted, tenant):
    """The versions asked for, of ``tenant``'s templates, read in one statement and each
    compiled once:
    ``{(name, version or None): (Source, rendering.Version)}`` (a pair missing was not
    found)."""
    if not wanted:
        return {}
    with transaction(single_statement=True) as conn:
        found = templates.resolve(conn, wanted, tenant)
    return {
        pair: (source, RENDERER.version(source.key, source.sources()))
        for pair, source in found.items()
    }


def _validated(item, ask, versions, bounds, max_bytes):
    """One request's (clean, errors, status): rendered from its template if it names one."""
    if not isinstance(item, dict):
        return None, [{"field": "", "message": "Must be a JSON object"}], 400
    if ask is None:
        try:
            return validate_mail(without_template(item), **bounds), [], 400
        except ValidationError as err:
            return None, err.errors, err.status
    errors, rendered, source = list(ask.errors), None, None
    if ask.pair is not None:
        source, version = versions.get(ask.pair, (None, None))
        if source is None:
            errors.append({"field": _missing_field(ask), "message": _missing(ask)})
        else:
            try:
                rendered = version.render(ask.variables, max_bytes)
            except rendering.RenderError as err:
                errors.append(err.as_error())
    data = dict(item)
    for field in TEMPLATE_FIELDS:
        data.pop(field, None)
    if rendered is not None:
        data.update(zip(rendering.FIELDS, rendered, strict=True))
    try:
        clean = validate_mail(data, **bounds)
    except ValidationError as err:
        # Without a rendering there are no subject and body to find missing.
        shown = err.errors if rendered else [e for e in err.errors if e["field"] not in TEXT_FIELDS]
        return None, errors + shown, err.status
    if errors:
        return None, errors, 400
    clean["template"], clean["template_version"] = ask.name, source.version
    return clean, [], 400


def _missing_field(ask):
    """The field that names what was not found."""
    return "template" if ask.version is None else "template_version"


def _missing(ask):
    """Why the version asked for was not found."""
    if ask.version is None:
        return f"No template named {ask.name!r}"
    return f"No version {ask.version} of a template named {ask.name!r}"
