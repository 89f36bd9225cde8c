"""The machinery of ``mailer.shapes``: a shape's fields written as JSON, and described as
OpenAPI 3.0 schemas.

A shape is a pydantic model whose fields, in their order, are the members of a JSON object on
the wire. The API never builds instances of it: each shape's fields are read once to make

- ``Shape.dump(row)``: the object as a dict in member order, for ``json.dumps`` or ``jsonify``;
- ``Shape.writer(columns)``: a function that writes the object as JSON text straight from a row
  tuple of those columns, byte for byte what ``json.dumps(Shape.dump(row))`` gives (the bytes
  Flask-RESTful writes), without the dict (``GET /mail``'s pages);
- its schema, in ``openapi_schemas``.

A field reads its value from the row's column of the same name, or as its ``Source`` says: another
column, or what a function makes of several; a ``Literal`` of one value, with that value as its
default, is a constant. How a value is written follows from the field's type (``codec``), and
``AsIs`` marks a value written as it comes, whatever its documented type.
"""

import json
import re
import types
import typing
import uuid
from datetime import datetime
from functools import cache
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

REF_TEMPLATE = "#/components/schemas/{model}"


class Source:
    """Where a field's value comes from: the row's ``columns`` (one, by default the field's own
    name), and ``via``, the function that makes the value of them (none: the one column's)."""

    def __init__(self, *columns, via=None):
        self.columns = columns
        self.via = via


class AsIs:
    """Marks a value written as it comes, JSON already: a JSON column (the document describes
    what is put there, but rows written before may hold any JSON), or text another module made
    (a timestamp it wrote)."""


class Codec(NamedTuple):
    """How one type is written: ``python`` makes the value ``json.dumps`` writes (None: the
    value as it is), ``text`` writes it as JSON text, as ``json.dumps`` of that value would.

    ``inline`` (None: none) is ``text`` as a Python expression, which a writer puts in its
    source in place of a call: ``{first}`` stands for the value where it is read first, ``{v}``
    wherever it is read again (see ``_inlined``)."""

    python: typing.Callable | None
    text: typing.Callable
    inline: str | None = None


class Shape(BaseModel):
    """A JSON object on the wire. Its fields are the members, in order; ``rows_are`` says how a
    row is read (``mappings``: by key, ``attributes``: named tuples and ORM objects), and
    ``sometimes`` names the members left out when the row has no value for them."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    rows_are: ClassVar[str] = "mappings"
    sometimes: ClassVar[frozenset] = frozenset()

    @classmethod
    def dump(cls, row):
        """The object of ``row`` as a dict, in member order."""
        return _dumper(cls)(row)

    @classmethod
    def dump_all(cls, rows):
        """Each row's object, as ``dump`` makes it."""
        dump = _dumper(cls)
        return [dump(row) for row in rows or ()]

    @classmethod
    def writer(cls, columns, written=frozenset()):
        """A function writing a row tuple of ``columns`` as the object's JSON text; the members
        named in ``written`` are JSON text already (a list of objects written by their own
        writer)."""
        return _writer(cls, tuple(columns), frozenset(written))

    @classmethod
    def members(cls):
        """The members' names on the wire, in order."""
        return [member for member, _ in _fields(cls)]


# Writing values -------------------------------------------------------------------------------

_string = encode_basestring_ascii  # json.dumps's own encoder of a str (ensure_ascii)


def _text(value):
    """A str or None as JSON."""
    return "null" if value is None else _string(value)


def _strings(values):
    """A list of str (None: an empty list) as JSON."""
    if not values:
        return "[]"
    try:
        return "[" + ", ".join(map(_string, values)) + "]"
    except TypeError:  # a NULL in the array, which ``_string`` refuses
        return "[" + ", ".join(map(_text, values)) + "]"


def _object(value):
    """A JSON object column (None: empty) as ``dict(value or {})`` encodes."""
    return json.dumps(value) if value else "{}"


def _moment(value):
    """A datetime with its zone, or None, as ``iso`` shows it: its ISO 8601 text has nothing
    that JSON escapes."""
    return "null" if value is None else '"' + value.isoformat() + '"'


def _integer(value):
    """An int or None as JSON."""
    return "null" if value is None else int.__repr__(value)


def _raw(value):
    """Any JSON value as ``json.dumps`` writes it."""
    return "null" if value is None else json.dumps(value)


def _boolean(value):
    """A bool or None as JSON (anything else as ``json.dumps`` writes it)."""
    if value is True:
        return "true"
    return "false" if value is False else _raw(value)


def _uuid(value):
    """A UUID (or its text) or None as JSON text."""
    return "null" if value is None else _string(str(value))


def iso(moment):
    """ISO 8601 with a time zone, or None."""
    return moment.isoformat() if moment is not None else None


def _listed(values):
    """A list column as a list (None: empty)."""
    return list(values or ())


def _mapped(value):
    """A JSON object column as a dict (None: empty)."""
    return dict(value or {})


def _uuid_text(value):
    """A UUID (or its text) as text, or None."""
    return None if value is None else str(value)


TEXT = Codec(None, _text, "('null' if {first} is None else _string({v}))")
RAW = Codec(None, _raw, "('null' if {first} is None else _raw({v}))")
CODECS = {
    str: TEXT,
    int: Codec(None, _integer, "('null' if {first} is None else _int_text({v}))"),
    float: RAW,
    bool: Codec(
        None, _boolean, "('true' if {first} is True else 'false' if {v} is False else _raw({v}))"
    ),
    datetime: Codec(
        iso, _moment, """('null' if {first} is None else '"' + {v}.isoformat() + '"')"""
    ),
    uuid.UUID: Codec(_uuid_text, _uuid, "('null' if {first} is None else _string(str({v})))"),
}
# What the inline expressions call, in every writer's globals.
INLINE_NAMES = {
    "_string": _string,
    "_raw": _raw,
    "_int_text": int.__repr__,
    "_object": _object,
}


def codec(annotation, metadata=()):
    """How a field of type ``annotation`` is written."""
    if any(isinstance(item, AsIs) or item is AsIs for item in metadata):
        return RAW
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if len(present) == 1:
            return codec(present[0])
        return RAW
    if origin is typing.Annotated:
        return codec(args[0], annotation.__metadata__)
    if origin is Literal:
        return TEXT if all(isinstance(arg, str) for arg in args) else RAW
    if origin is list and args and _is_shape(args[0]):
        child = args[0]
        return Codec(child.dump_all, lambda items: json.dumps(child.dump_all(items)))
    if _is_shape(annotation):
        return Codec(
            lambda row: None if row is None else annotation.dump(row),
            lambda row: _raw(None if row is None else annotation.dump(row)),
        )
    if origin is list and args == (str,):
        return Codec(_listed, _strings)
    if origin is list:
        convert = codec(args[0]).python or (lambda item: item)
        return Codec(
            lambda items: [convert(item) for item in items or ()],
            lambda items: json.dumps([convert(item) for item in items or ()]),
        )
    if origin is dict:
        return Codec(_mapped, _object, "(_object({v}) if {first} else '{{}}')")
    if annotation is Any:
        return RAW
    return CODECS[annotation]


def _is_shape(kind):
    """Whether ``kind`` is a shape (a nested object)."""
    return isinstance(kind, type) and issubclass(kind, Shape)


# Compiling a shape ----------------------------------------------------------------------------
#
# ``dump`` and ``writer`` are written out as Python source from the members and compiled once per
# shape (as the standard library's dataclasses and namedtuple make their methods): a page of 100
# mails is 2,500 values, and a function per value, or a loop over the members, would cost more
# than writing them.


class Member(NamedTuple):
    """One member of a shape: where its value comes from and how it is written."""

    columns: tuple
    via: typing.Callable | None
    codec: Codec
    constant: Any


NOT_CONSTANT = object()
SIMPLE_VALUE = re.compile(r"row\[\d+\]")  # a column of the row, cheap to read twice


@cache
def _fields(shape):
    """``[(member name, Member)]`` of ``shape``, in order."""
    members = []
    for name, info in shape.model_fields.items():
        source = next((item for item in info.metadata if isinstance(item, Source)), None)
        member_name = info.alias or name
        columns = source.columns if source and source.columns else (member_name,)
        args = typing.get_args(info.annotation)
        literal = typing.get_origin(info.annotation) is Literal and args == (info.default,)
        member = Member(
            columns,
            source.via if source else None,
            codec(info.annotation, info.metadata),
            info.default if literal else NOT_CONSTANT,
        )
        members.append((member_name, member))
    return members


def _value(index, member, column, names, convert):
    """The source of ``member``'s value: its columns (each written by ``column``) through its
    ``via`` and then ``convert`` (a codec's function, or None); the functions it calls are put
    in ``names``."""
    expression = ", ".join(column(name) for name in member.columns)
    if member.via is not None:
        names[f"_via{index}"] = member.via
        expression = f"_via{index}({expression})"
    if convert is not None:
        names[f"_convert{index}"] = convert
        expression = f"_convert{index}({expression})"
    return expression


def _compiled(source, names, function):
    """The function named ``function`` defined by ``source``, whose globals are ``names``."""
    exec(compile(source, f"<shape {function}>", "exec"), names)
    return names[function]


@cache
def _dumper(shape):
    """``shape.dump``: a function of a row giving the object's dict."""
    if shape.rows_are == "mappings":
        column = repr  # row['column']
        access = "row[{}]"
    else:
        column = str  # row.column
        access = "row.{}"
        columns = [name for _, member in _fields(shape) for name in member.columns]
        if not all(name.isidentifier() for name in columns):
            raise TypeError(f"{shape.__name__} reads attributes that are not names: {columns}")
    names = {"_has": _has}
    lines = []
    for index, (name, member) in enumerate(_fields(shape)):
        if member.constant is not NOT_CONSTANT:
            names[f"_constant{index}"] = member.constant
            value = f"_constant{index}"
        else:
            value = _value(
                index, member, lambda c: access.format(column(c)), names, member.codec.python
            )
        condition = ""
        if name in shape.sometimes:
            condition = f"    if _has(row, {member.columns[0]!r}):\n    "
        lines.append(f"{condition}    data[{name!r}] = {value}")
    source = "def dump(row):\n    data = {}\n" + "\n".join(lines) + "\n    return data\n"
    return _compiled(source, names, "dump")


def _inlined(inline, value, index):
    """The expression ``inline`` (a ``Codec.inline``) of the value ``value`` (an expression):
    a column (``row[3]``) is read again where the value is; anything else is computed once,
    where it is read first, into a name of its own."""
    if SIMPLE_VALUE.fullmatch(value):
        return inline.format(first=value, v=value)
    return inline.format(first=f"(_value{index} := {value})", v=f"_value{index}")


def _has(row, column):
    """Whether ``row`` holds a value for ``column``."""
    return (column in row) if isinstance(row, dict) else hasattr(row, column)


@cache
def _writer(shape, columns, written):
    """``shape.writer(columns, written)``: one row tuple's JSON text, as ``json.dumps`` writes
    its dict. The constant members are in the template; each other member is its codec's
    ``text`` of its value, written out in place (``Codec.inline``) where the codec has it."""
    if shape.sometimes:
        raise TypeError(f"{shape.__name__} leaves out members: write it from its dict")
    position = {name: index for index, name in enumerate(columns)}
    names, parts, values = dict(INLINE_NAMES), [], []
    for index, (name, member) in enumerate(_fields(shape)):
        key = _string(name) + ": "
        if member.constant is not NOT_CONSTANT:
            parts.append(key + json.dumps(member.constant).replace("%", "%%"))
            continue
        parts.append(key + "%s")
        inline = None if name in written else member.codec.inline
        text = None if name in written or inline else member.codec.text
        value = _value(index, member, lambda c: f"row[{position[c]}]", names, text)
        values.append(value if inline is None else _inlined(inline, value, index))
    names["_template"] = "{" + ", ".join(parts) + "}"
    source = "def write(row):\n    return _template % (" + ", ".join([*values, ""]) + ")\n"
    return _compiled(source, names, "write")


# The OpenAPI document -------------------------------------------------------------------------


class OpenApi30(GenerateJsonSchema):
    """pydantic's JSON Schema as OpenAPI 3.0 reads it: ``nullable`` instead of a union with
    null (and null among a nullable enum's values, as OpenAPI 3.0.3 asks), ``enum`` instead of
    ``const``, no titles nor defaults (the descriptions say what a missing field means), and
    the members in their order."""

    def nullable_schema(self, schema):
        """The inner schema, nullable; a nullable reference as ``allOf`` (see ``_inline``)."""
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"allOf": [inner], "nullable": True}
        nullable = {**inner, "nullable": True}
        if "enum" in inner:
            nullable["enum"] = [*inner["enum"], None]
        return nullable

    def literal_schema(self, schema):
        """``enum`` (OpenAPI 3.0 has no ``const``) with its type."""
        generated = super().literal_schema(schema)
        if "const" in generated:
            generated["enum"] = [generated.pop("const")]
        return generated

    def default_schema(self, schema):
        """The schema without its default."""
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema):
        """No titles: the descriptions say it."""
        return False

    def model_schema(self, schema):
        """A model's schema, without the title pydantic gives it; a shape's ``sometimes``
        members are not required."""
        generated = super().model_schema(schema)
        generated.pop("title", None)
        sometimes = getattr(schema["cls"], "sometimes", ())
        if sometimes and "required" in generated:
            generated["required"] = [
                name for name in generated["required"] if name not in sometimes
            ]
        return generated

    def sort(self, value, parent_key=None):
        """Keys in the order they were made (``type`` first, the members in field order)."""
        return value


def openapi_schemas(responses, requests=()):
    """The component schemas of ``responses`` (shapes the API answers: every member always
    there, but a shape's ``sometimes``) and ``requests`` (shapes it takes: a field with a
    default is optional), by name."""
    models = [(shape, "serialization") for shape in responses]
    models += [(shape, "validation") for shape in requests]
    _, document = models_json_schema(models, ref_template=REF_TEMPLATE, schema_generator=OpenApi30)
    schemas = document.get("$defs", {})
    return {name: _inline(schema, schemas) for name, schema in schemas.items()}


def _inline(schema, schemas):
    """``schema`` with each nullable reference replaced by the schema it names, nullable:
    OpenAPI 3.0 reads ``nullable`` only beside a ``type``."""
    if isinstance(schema, list):
        return [_inline(item, schemas) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if (
        schema.get("nullable")
        and len(schema.get("allOf", ())) == 1
        and "$ref" in schema["allOf"][0]
    ):
        name = schema["allOf"][0]["$ref"].rsplit("/", 1)[-1]
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        return {**_inline(schemas[name], schemas), **rest}
    return {key: _inline(value, schemas) for key, value in schema.items()}
