"""The files of a scaffolded resource: templates/resource/*.tmpl filled in from a Resource.

What varies with the fields (columns, pydantic fields, SQL parameters, imports, test values) is
rendered here as plain source; the checkout's ruff then sorts its imports and formats it
(apictl/scaffold/formatter.py). Only the text inside strings, which ruff leaves alone, is laid
out here: SQL and the docstring's command line are wrapped to fit the line length.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from apictl.scaffold.fields import Field, Resource, ScaffoldError
from apictl.templating import migration_files, render

MODULES = ("__init__", "schemas", "queries", "service", "routes")
LINE = 100  # the project's line length, which lines inside strings must keep too

# kind -> (the SQL column type, the type bodies are validated as, the type answered)
_TYPES = {
    "str": ("text", "Text", "str"),
    "text": ("text", "Text", "str"),
    "int": ("bigint", "BigInt", "int"),
    "bool": ("boolean", "StrictBool", "bool"),
    "datetime": ("timestamptz", "AwareDatetime", "datetime"),
    "uuid": ("uuid", "UUID", "UUID"),
    "ref": ("uuid", "UUID", "UUID"),
}
# kind -> a valid value and another one (str values are cut to the field's length)
_SAMPLES: dict[str, tuple[object, object]] = {
    "str": ("sample", "changed"),
    "text": ("sample text", "changed text"),
    "int": (42, 7),
    "bool": (True, False),
    "datetime": ("2030-01-02T03:04:05Z", "2031-02-03T04:05:06Z"),
    "uuid": ("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002"),
}
# kind -> Python source of values the API must refuse with a 422
_INVALID = {
    "int": ("2**63", "-(2**63) - 1", '"5"', "1.5", "True"),
    "bool": ('"yes"', "1"),
    "datetime": ('"2030-01-02T03:04:05"', '"tomorrow"'),
    "uuid": ('"not-a-uuid"', "5"),
    "ref": ('"not-a-uuid"', "5"),
}


class Code(str):
    """Python source, written into a literal as is."""


def _literal(value: object) -> str:
    """`value` as Python source. A non-empty dict, list or tuple ends with a trailing comma,
    which keeps it one item a line in `ruff format`: test values read (and diff) one a line."""
    if isinstance(value, Code):
        return value
    if isinstance(value, dict):
        return _items("{}", [f"{_literal(key)}: {_literal(item)}" for key, item in value.items()])
    if isinstance(value, list | tuple):
        return _items("[]" if isinstance(value, list) else "()", [_literal(v) for v in value])
    return repr(value)  # ruff format turns its single quotes into double ones


def _items(brackets: str, items: list[str]) -> str:
    return f"{brackets[0]}{', '.join(items)}{',' if items else ''}{brackets[1]}"


def _wrap(words: list[str], indent: str = "    ", more: str = "    ", sep: str = ", ") -> str:
    """`words` joined by `sep` in lines of at most LINE - 4 characters."""
    return textwrap.fill(
        sep.join(words),
        LINE - 4,
        initial_indent=indent,
        subsequent_indent=more,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _migration(r: Resource) -> dict[str, str]:
    """The CREATE TABLE body (types aligned like the hand-written migrations) and the indexes
    that let ON DELETE CASCADE find the rows of a deleted referenced row."""
    rows = [
        ("id", "uuid", "PRIMARY KEY DEFAULT gen_random_uuid()"),
        ("owner_id", "uuid", "NOT NULL REFERENCES users (id) ON DELETE CASCADE"),
        *((f.name, _TYPES[f.kind][0], "" if f.optional else "NOT NULL") for f in r.fields),
        ("created_at", "timestamptz", "NOT NULL DEFAULT now()"),
        ("updated_at", "timestamptz", "NOT NULL DEFAULT now()"),
    ]
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{name:<{width}} {kind:<11} {rest}".rstrip() for name, kind, rest in rows]
    for f in r.fields:
        if f.length is not None:
            low, high = f.length
            check = f"BETWEEN {low} AND {high}" if low else f"<= {high}"
            lines.append(
                f"CONSTRAINT {r.name}_{f.name}_length CHECK (char_length({f.name}) {check})"
            )
    for column, table in r.references.items():
        lines.append(
            f"CONSTRAINT {r.name}_{column}_fkey FOREIGN KEY ({column}) "
            f"REFERENCES {table} (id) ON DELETE CASCADE"
        )
    indexes = "".join(
        f"CREATE INDEX IF NOT EXISTS {r.name}_{column} ON {r.name} ({column});\n"
        for column in r.references
    )
    return {"table_body": ",\n".join(f"    {line}" for line in lines), "ref_indexes": indexes}


def _schemas(r: Resource) -> dict[str, str]:
    kinds = {f.kind for f in r.fields}
    pydantic = ["BaseModel"]
    pydantic += ["AwareDatetime"] if "datetime" in kinds else []
    pydantic += ["Field"] if kinds & {"str", "text"} else []
    pydantic += ["StrictBool"] if "bool" in kinds else []
    validation = ["STRICT_BODY"]
    validation += ["BigInt"] if "int" in kinds else []
    validation += ["Text"] if kinds & {"str", "text"} else []
    return {
        "pydantic_names": ", ".join(pydantic),
        "validation_names": ", ".join(validation),
        "new_fields": "\n".join(_input_field(f, f.optional) for f in r.fields),
        "change_fields": "\n".join(_input_field(f, optional=True) for f in r.fields),
        "output_fields": "\n".join(
            f"    {f.name}: {_TYPES[f.kind][2]}{' | None' if f.optional else ''}" for f in r.fields
        ),
    }


def _input_field(f: Field, optional: bool) -> str:
    """A field of New<X> or <X>Changes; `optional` ones default to None."""
    annotation = _TYPES[f.kind][1] + (" | None" if optional else "")
    if f.length is None:
        return f"    {f.name}: {annotation}{' = None' if optional else ''}"
    low, high = f.length
    limits = f"{'min_length=1, ' if low else ''}max_length={high:_}"
    return f"    {f.name}: {annotation} = Field({'None, ' if optional else ''}{limits})"


def _queries(r: Resource) -> dict[str, str]:
    assignments, n = [], 2  # $1 is the id
    for f in r.fields:
        if f.optional:  # a flag says whether it was given, so null can clear it
            assignments.append(f"    {f.name} = CASE WHEN ${n} THEN ${n + 1} ELSE {f.name} END")
            n += 2
        else:
            assignments.append(f"    {f.name} = COALESCE(${n}, {f.name})")
            n += 1
    fields = [f.name for f in r.fields]
    references = {f"{r.name}_{c}_fkey": (c, table) for c, table in r.references.items()}
    return {
        "columns": _wrap(["id", "owner_id", *fields, "created_at", "updated_at"]),
        "insert_columns": _wrap(["owner_id", *fields]),
        "insert_params": _wrap([f"${i}" for i in range(1, len(fields) + 2)]),
        "assignments": ",\n".join(assignments),
        "admin_param": f"${n}",
        "owner_param": f"${n + 1}",
        "references": _literal(references),
    }


def _values(f: Field) -> tuple[object, object]:
    valid, changed = _SAMPLES["uuid" if f.kind == "ref" else f.kind]
    if f.kind == "str" and f.length is not None:
        return str(valid)[: f.length[1]], str(changed)[: f.length[1]]
    return valid, changed


def _invalid(f: Field) -> list[str]:
    """Python source of values of `f` that must be a 422."""
    if f.length is not None:
        low, high = f.length
        bad = ['""'] if low else []
        bad += [f'"x" * {high + 1:_}', r'"nul\u0000"', "5"]
    else:
        bad = list(_INVALID[f.kind])
    return bad if f.optional else [*bad, "None", "MISSING"]


def _edge(f: Field) -> Code | None:
    """The largest value `f` accepts, if it has a largest."""
    if f.length is not None:
        return Code(f'"x" * {f.length[1]:_}')
    return Code("2**63 - 1") if f.kind == "int" else None


def _maker(r: Resource) -> tuple[str, dict[str, object], dict[str, str]]:
    valid = {f.name: _values(f)[0] for f in r.fields if f.kind != "ref"}
    return f"/api/v1/{r.name}", valid, r.references


def _tests(r: Resource, referenced: list[Resource]) -> dict[str, str]:
    """The values tests/<name>/test_api.py gives the CRUD contract, and the parts of it that
    its fields call for (References, Optional)."""
    optional = [f.name for f in r.fields if f.optional]
    bases = [*(["References"] if r.references else []), *(["Optional"] if optional else [])]
    invalid = [Code(f"({f.name!r}, {value})") for f in r.fields for value in _invalid(f)]
    crud = ["Maker", *(bases or ["CrudContract"])]
    crud += ["MISSING"] if "MISSING" in "".join(invalid) else []
    edges = {f.name: edge for f in r.fields if (edge := _edge(f)) is not None}
    return {
        "crud_names": ", ".join(crud),
        "bases": ", ".join(bases or ["CrudContract"]),
        "makers": _literal({res.name: _maker(res) for res in (r, *referenced)}),
        "changed": _literal({f.name: _values(f)[1] for f in r.fields if f.kind != "ref"}),
        "edges": _literal(edges),
        "invalid": _literal(invalid),
        "optional": (
            f"\n    optional: ClassVar[list[str]] = {_literal(optional)}" if optional else ""
        ),
    }


def resource_files(
    r: Resource,
    referenced: list[Resource],
    root: Path,
    migrations: Path,
    migration: tuple[str, str],
) -> dict[Path, str]:
    """Every file of resource `r`: the migration pair (id and dependency in `migration`),
    service/<name>/ and tests/<name>/test_api.py. `referenced` are the resources its ref fields
    lead to (users excepted), whose rows the tests make through the API."""
    values = {
        "name": r.name,
        "singular": r.singular,
        "camel": r.camel,
        "title": r.name.replace("_", " ").capitalize(),
        "noun": r.noun,
        "Noun": r.noun.capitalize(),
        "command": _wrap(["apictl scaffold resource", *r.args], indent="", sep=" "),
        **_migration(r),
        **_schemas(r),
        **_queries(r),
        **_tests(r, referenced),
    }
    files = migration_files(
        migrations,
        *migration,
        {
            ".sql": render("resource/migration.sql.tmpl", **values),
            ".rollback.sql": render("resource/migration.rollback.sql.tmpl", **values),
        },
    )
    for module in MODULES:
        files[root / "service" / r.name / f"{module}.py"] = render(
            f"resource/{module}.py.tmpl", **values
        )
    files[root / "tests" / r.name / "test_api.py"] = render("resource/test.py.tmpl", **values)
    for path, text in files.items():
        if path.suffix == ".py":
            _check_names(r, path, text)
    return files


def _check_names(r: Resource, path: Path, text: str) -> None:
    """Refuse a module binding one name twice: a class named after the singular (Page, Query,
    Text, ...) would shadow what the module imports."""
    bound: list[str] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound += [alias.asname or alias.name for alias in node.names]
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            bound.append(node.name)
    clashes = sorted({name for name in bound if bound.count(name) > 1})
    if clashes:
        raise ScaffoldError(
            f"the singular {r.singular!r} makes {', '.join(clashes)} in {path.name}, which "
            "clashes with an import there; choose another --singular"
        )
