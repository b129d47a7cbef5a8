"""What a source checkout already holds, so that a scaffolded resource fits in: the names taken
under service/, the tables the migrations create, and the resources scaffolded before."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from apictl.scaffold.fields import Resource, ScaffoldError, check_name, parse_resource
from apictl.scaffold.formatter import formatted
from apictl.scaffold.generate import resource_files
from apictl.templating import next_migration
from service.process.migration_state import migration_ids

# The built-in tables a ref field may point at, as the scaffold would describe them: the
# generated tests make their rows through the API (users: the caller is the row).
BUILT_IN = {"posts": ("posts", "title:str:200", "body:text")}
RECORD = "apictl scaffold resource "  # how a scaffolded package's docstring starts its record
_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Checkout:
    root: Path  # holds service/ and tests/
    migrations: Path

    def taken(self) -> set[str]:
        """The names of the modules and packages in service/."""
        return {p.name.removesuffix(".py") for p in (self.root / "service").iterdir()}

    def tables(self) -> dict[str, str]:
        """Table -> the id of the migration creating it."""
        found: dict[str, str] = {}
        for mid in migration_ids(self.migrations):
            sql = (self.migrations / f"{mid}.sql").read_text()
            for table in _CREATE_TABLE.findall(sql):
                found.setdefault(table.lower(), mid)
        return found

    def scaffolded(self, name: str) -> Resource | None:
        """The resource service/<name>/ was made as, from the record in its docstring."""
        init = self.root / "service" / name / "__init__.py"
        text = init.read_text() if init.is_file() else ""
        if RECORD not in text:
            return None
        args = text.split(RECORD, 1)[1].split('"""', 1)[0].split()
        try:
            return replay(args)
        except (ScaffoldError, IndexError) as exc:
            raise ScaffoldError(f"{init}: the scaffold record does not parse: {exc}") from None

    def describe(self, table: str) -> Resource | None:
        """`table` as a resource, if it is a built-in one or was scaffolded."""
        return replay(list(BUILT_IN[table])) if table in BUILT_IN else self.scaffolded(table)


def replay(args: list[str]) -> Resource:
    """The Resource of a recorded command line: NAME [--singular S] FIELD..."""
    name, *rest = args
    singular = None
    if rest[:1] == ["--singular"]:
        singular, rest = rest[1], rest[2:]
    return parse_resource(name, rest, singular)


def _own_migration(checkout: Checkout, name: str) -> tuple[str, str] | None:
    """The id and dependency of the migration a previous scaffold of `name` wrote, if any."""
    ids = migration_ids(checkout.migrations)
    pattern = re.compile(rf"^\d{{4}}_create_{name}$")
    for index, mid in enumerate(ids):
        if pattern.match(mid):
            return mid, ids[index - 1] if index else ""
    return None


def _check_free(name: str, checkout: Checkout, tables: dict[str, str], own: str | None) -> None:
    """Refuse a name taken by something the scaffold did not make."""
    if name in checkout.taken() and checkout.scaffolded(name) is None:
        raise ScaffoldError(f"{name!r} is taken: service/{name} exists (not scaffolded)")
    creator = tables.get(name)
    if creator is not None and creator != own:
        raise ScaffoldError(f"table {name!r} already exists (migration {creator})")


def _referenced(r: Resource, checkout: Checkout, tables: dict[str, str]) -> list[Resource]:
    """The resources the ref fields of `r` lead to, directly or not (users excepted)."""
    found: dict[str, Resource] = {}
    pending = list(r.references.values())
    while pending:
        table = pending.pop()
        if table == "users" or table in found:
            continue
        if table == r.name:
            raise ScaffoldError(f"ref:{table}: a resource cannot reference itself")
        if table not in tables:
            raise ScaffoldError(f"ref:{table}: no migration creates a table {table!r}")
        target = checkout.describe(table)
        if target is None:
            raise ScaffoldError(
                f"ref:{table}: only users, posts and scaffolded resources can be referenced"
            )
        found[table] = target
        pending += target.references.values()
    return sorted(found.values(), key=lambda target: target.name)


def plan_resource(
    checkout: Checkout, name: str, specs: list[str], singular: str | None = None
) -> dict[Path, str]:
    """Every file `scaffold resource NAME SPECS...` writes, and its text as the checkout's ruff
    formats it; nothing is written.

    ScaffoldError when the request is invalid or the name is taken; FormatError when ruff is
    missing. A previous scaffold of NAME is not a clash: its migration keeps its id, so --force
    rewrites the same files.
    """
    tables = checkout.tables()
    own = _own_migration(checkout, check_name(name, "resource name"))
    _check_free(name, checkout, tables, own[0] if own else None)
    resource = parse_resource(name, specs, singular)
    referenced = _referenced(resource, checkout, tables)
    migration = own or next_migration(checkout.migrations, f"create_{name}")
    files = resource_files(resource, referenced, checkout.root, checkout.migrations, migration)
    return formatted(files, checkout.root)
