"""What `apictl scaffold resource NAME FIELD:TYPE...` asks for, parsed and checked (no I/O).

NAME is the plural, snake_case: the table, the package `service/NAME/` and the URL
`/api/v1/NAME`. The singular (class and function names, events) is derived by English rules for
the common cases (notes -> note, categories -> category, boxes -> box) or given with
--singular. A field is `name:type`, `name:type?` for an optional (nullable) one; types:
str[:N] (1..N characters, N defaults to 200), text (<= 50,000), int (64-bit), bool,
datetime (ISO 8601 with offset), uuid, ref:<table> (a row of users, posts or another scaffolded
resource; the field `post` of `post:ref:posts` is stored and sent as `post_id`).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from pydantic import BaseModel

KINDS = ("str", "text", "int", "bool", "datetime", "uuid", "ref")
DEFAULT_STR_LENGTH, TEXT_LENGTH = 200, 50_000
MAX_NAME = 24  # every identifier derived from names stays within PostgreSQL's 63 characters
RESERVED_COLUMNS = ("id", "owner_id", "created_at", "updated_at")  # every resource has them
INTERNAL_PREFIXES = ("apictl", "yoyo")  # tables of the migration machinery

# PostgreSQL's reserved key words (also those allowed only as function or type names): none can
# name a table or a column without quoting.
_SQL_RESERVED_WORDS = """
all analyse analyze and any array as asc asymmetric authorization binary both case cast
check collate collation column concurrently constraint create cross current_catalog
current_date current_role current_schema current_time current_timestamp current_user default
deferrable desc distinct do else end except false fetch for foreign freeze from full grant
group having ilike in initially inner intersect into is isnull join lateral leading left like
limit localtime localtimestamp natural not notnull null offset on only or order outer
overlaps placing primary references returning right select session_user similar some
symmetric system_user table tablesample then to trailing true union unique user using
variadic verbose when where window with
"""
SQL_RESERVED = frozenset(_SQL_RESERVED_WORDS.split())

_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
_FIELD = re.compile(r"^(?P<name>[^:]*):(?P<kind>[^:?]*)(?::(?P<arg>[^:?]*))?(?P<optional>\?)?$")
_SINGULAR_RULES = (("ies", "y"), ("sses", "ss"), ("xes", "x"), ("ches", "ch"), ("shes", "sh"))


class ScaffoldError(ValueError):
    """The command line asks for something that cannot be generated (exit 2)."""


@dataclass(frozen=True)
class Field:
    name: str  # the column and the JSON key
    kind: str  # one of KINDS
    optional: bool = False
    length: tuple[int, int] | None = None  # str and text: the least and most characters
    table: str | None = None  # ref: the table referenced


@dataclass(frozen=True)
class Resource:
    name: str  # plural: the table, the package, the URL
    singular: str
    fields: tuple[Field, ...]
    args: tuple[str, ...]  # the command line after `scaffold resource`, to record and replay

    @property
    def camel(self) -> str:
        """The class name: BookReview."""
        return "".join(part.capitalize() for part in self.singular.split("_"))

    @property
    def noun(self) -> str:
        """The singular in prose: book review."""
        return self.singular.replace("_", " ")

    @property
    def references(self) -> dict[str, str]:
        """Ref field -> the table it points at."""
        return {f.name: f.table for f in self.fields if f.table is not None}


def _check_snake_case(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise ScaffoldError(f"{what} {name!r} is not snake_case (a-z, 0-9, single _)")
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"{what} {name!r} is longer than {MAX_NAME} characters")


def check_name(name: str, what: str) -> str:
    """`name` if it can name a table, a column and a Python identifier; else ScaffoldError."""
    _check_snake_case(name, what)
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"{what} {name!r} is a Python keyword")
    if name in SQL_RESERVED:
        raise ScaffoldError(f"{what} {name!r} is a reserved word in SQL")
    return name


def singular_of(plural: str) -> str:
    """notes -> note, categories -> category, boxes -> box, address -> address."""
    for suffix, replacement in _SINGULAR_RULES:
        if plural.endswith(suffix):
            return plural.removesuffix(suffix) + replacement
    if plural.endswith("s") and not plural.endswith("ss"):
        return plural.removesuffix("s")
    return plural


def parse_field(spec: str) -> Field:
    """`title:str:120`, `body:text`, `due:datetime?`, `post:ref:posts`, ... as a Field."""
    match = _FIELD.match(spec)
    if match is None:
        raise ScaffoldError(f"field {spec!r} is not NAME:TYPE (e.g. title:str:120, due:datetime?)")
    name, kind, arg = match["name"], match["kind"], match["arg"]
    check_name(name, "field")
    if kind not in KINDS:
        raise ScaffoldError(
            f"field {spec!r}: unknown type {kind!r} "
            "(use str[:N], text, int, bool, datetime, uuid or ref:<table>)"
        )
    if arg is not None and kind not in ("str", "ref"):
        raise ScaffoldError(f"field {spec!r}: type {kind} takes no argument")
    optional = match["optional"] is not None
    if kind == "ref":
        if arg is None:
            raise ScaffoldError(f"field {spec!r}: ref needs a table, e.g. {name}:ref:posts")
        column = name if name.endswith("_id") else f"{name}_id"
        return Field(column, kind, optional, table=check_name(arg, "table"))
    if kind == "str":
        if arg is not None and not (arg.isdigit() and 1 <= int(arg) <= TEXT_LENGTH):
            raise ScaffoldError(f"field {spec!r}: the length must be 1..{TEXT_LENGTH}")
        return Field(name, kind, optional, length=(1, int(arg or DEFAULT_STR_LENGTH)))
    if kind == "text":
        return Field(name, kind, optional, length=(0, TEXT_LENGTH))
    return Field(name, kind, optional)


def _check_fields(fields: list[Field]) -> None:
    seen: set[str] = set()
    for field in fields:
        if field.name in RESERVED_COLUMNS:
            every = ", ".join(RESERVED_COLUMNS)
            raise ScaffoldError(f"field {field.name!r} is reserved: every resource has {every}")
        if field.name.startswith("model_") or hasattr(BaseModel, field.name):
            raise ScaffoldError(f"field {field.name!r} would shadow a pydantic BaseModel attribute")
        if field.name in seen:
            raise ScaffoldError(f"field {field.name!r} is given twice")
        seen.add(field.name)


def parse_resource(name: str, specs: list[str], singular: str | None = None) -> Resource:
    """The resource the command line describes; ScaffoldError says what is wrong with it."""
    check_name(name, "resource name")
    if name.startswith(INTERNAL_PREFIXES):
        raise ScaffoldError(f"resource name {name!r}: {name.split('_')[0]}* tables are internal")
    derived = singular_of(name)
    _check_snake_case(singular or derived, "singular")  # only ever part of a name
    if not specs:
        raise ScaffoldError("give at least one field, e.g. title:str:120")
    fields = [parse_field(spec) for spec in specs]
    _check_fields(fields)
    args = (name, *(("--singular", singular) if singular else ()), *specs)
    return Resource(name, singular or derived, tuple(fields), args)
