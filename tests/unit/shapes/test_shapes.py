"""The machinery of ``mailer.shapes``: a shape's text writer writes what ``json.dumps`` makes of
its dict, members come in their order from their sources, and the document's schema lists
the same members."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal

import pytest
from pydantic import Field

from mailer.shapes import mail, service
from mailer.shapes.wire import AsIs, Shape, Source, openapi_schemas

ODD = 'Grüße ☃ 😀 "q" back\\slash tab\t nl\n del\x7f </script> %s %%'
NOW = datetime(2026, 11, 29, 4, 0, 0, 123456, tzinfo=UTC)


class Child(Shape):
    """A nested object, read by attribute."""

    rows_are: ClassVar[str] = "attributes"

    name: str
    at: datetime | None


class Every(Shape):
    """One member of each kind."""

    key: uuid.UUID
    always: Literal[True] = Field(True)
    never: Literal[False] = Field(False)
    word: str
    maybe: str | None
    count: int
    maybe_count: int | None
    ratio: float
    flag: bool
    when: datetime | None
    words: list[str]
    pairs: dict[str, str]
    kind: Literal["a", "b"]
    raw: Annotated[Any, AsIs]
    renamed: Annotated[str | None, Source("other")]
    joined: Annotated[str, Source("words", via=lambda words: "|".join(words or ()))]
    both: Annotated[str, Source("word", "count", via=lambda word, count: f"{word}{count}")]
    children: list[Child]
    ids: list[uuid.UUID]


class ChildRow:
    """A row read by attribute."""

    def __init__(self, name, at):
        self.name, self.at = name, at


ROWS = [
    {
        "key": uuid.uuid4(),
        "word": ODD,
        "maybe": None,
        "count": 10**30,
        "maybe_count": None,
        "ratio": 0.1,
        "flag": True,
        "when": NOW,
        "words": [ODD, "b"],
        "pairs": {ODD: ODD},
        "kind": "a",
        "raw": {"nested": [1, None, 1e300, ODD]},
        "other": ODD,
        "children": [ChildRow(ODD, NOW), ChildRow("x", None)],
        "ids": [uuid.uuid4()],
    },
    {
        "key": str(uuid.uuid4()),
        "word": "",
        "maybe": "",
        "count": -1,
        "maybe_count": 0,
        "ratio": -2.5e-7,
        "flag": False,
        "when": NOW.astimezone(timezone(timedelta(hours=-3, minutes=-30))),
        "words": None,
        "pairs": None,
        "kind": "b",
        "raw": "a JSON string",
        "other": None,
        "children": [],
        "ids": [],
    },
]


@pytest.mark.parametrize("row", ROWS)
def test_writer_writes_json_dumps_of_dump(row):
    columns = tuple(row)
    assert Every.writer(columns)(tuple(row.values())) == json.dumps(Every.dump(row))


def test_dump_reads_each_member_from_its_source():
    row = ROWS[0]
    dumped = Every.dump(row)
    assert list(dumped) == Every.members()
    assert dumped["key"] == str(row["key"])
    assert (dumped["always"], dumped["never"]) == (True, False)
    assert dumped["when"] == NOW.isoformat()
    assert dumped["renamed"] == ODD
    assert dumped["joined"] == f"{ODD}|b"
    assert dumped["both"] == f"{ODD}{10**30}"
    assert dumped["children"] == [{"name": ODD, "at": NOW.isoformat()}, {"name": "x", "at": None}]
    assert dumped["raw"] is row["raw"]
    assert (Every.dump(ROWS[1])["words"], Every.dump(ROWS[1])["pairs"]) == ([], {})


def test_sometimes_members_are_left_out_when_the_row_has_none():
    assert service.FieldError.dump({"field": "to", "message": "x"}) == {
        "field": "to",
        "message": "x",
    }
    assert list(service.FieldError.dump({"index": 2, "message": "x", "field": "[2].to"})) == [
        "field",
        "message",
        "index",
    ]
    with pytest.raises(TypeError):
        service.FieldError.writer(("field", "message"))


def test_the_schema_lists_the_members_in_order():
    shapes = [mail.Mail, mail.MailPage, service.Error, service.Readiness, service.SuppressionAdded]
    schemas = openapi_schemas(shapes)
    for shape in [*shapes, mail.ListedMail, mail.Attempt, service.ReadyProvider]:
        assert list(schemas[shape.__name__]["properties"]) == shape.members(), shape
    assert schemas["FieldError"]["required"] == ["field", "message"]
    assert schemas["Readiness"]["required"] == ["status", "database", "schema"]
    assert schemas["Mail"]["required"] == mail.Mail.members()


def test_nullable_members_are_openapi_30():
    schemas = openapi_schemas([mail.Mail, service.Health])
    properties = schemas["Mail"]["properties"]
    assert properties["reply_to"] == {**properties["reply_to"], "type": "string", "nullable": True}
    assert properties["success"]["enum"] == [True]
    severity = schemas["DeliveryEvent"]["properties"]["severity"]
    assert severity["enum"] == ["permanent", "temporary", None] and severity["nullable"]
    held = schemas["ProviderHealth"]["properties"]["opened_by_hand"]
    assert held["type"] == "object" and held["nullable"] is True and "$ref" not in json.dumps(held)
    assert "title" not in json.dumps(schemas) and "anyOf" not in json.dumps(properties)
