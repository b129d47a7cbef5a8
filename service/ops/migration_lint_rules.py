"""The rules of `apictl migrate lint`: what each statement risks on a populated table, and what
to write instead. A table the migration creates is empty: nothing on it is flagged."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from service.ops.sql_names import (
    IDENT,
    NAME,
    split_top_level,
    table_names,
    unqualified,
    without_parentheses,
)
from service.ops.sql_scanner import Statement, split_statements

_CREATE_TABLE = re.compile(
    r"^CREATE (?:(?:GLOBAL|LOCAL) )?(?:(?:TEMP|TEMPORARY|UNLOGGED) )?"
    rf"(?:TABLE|MATERIALIZED VIEW) (?:IF NOT EXISTS )?(?P<table>{NAME})",
    re.IGNORECASE,
)
_CREATE_INDEX = re.compile(
    r"^CREATE (?:UNIQUE )?INDEX (?P<concurrently>CONCURRENTLY )?(?:IF NOT EXISTS )?"
    rf"(?:(?!ON\b){IDENT} )?ON (?:ONLY )?(?P<table>{NAME})",
    re.IGNORECASE,
)
_CONCURRENTLY = re.compile(
    r"^(?:(?:CREATE (?:UNIQUE )?INDEX|DROP INDEX|REINDEX (?:\([^)]*\) )?\w+) CONCURRENTLY\b"
    r"|REINDEX \((?:[^)]*,)? ?CONCURRENTLY\b)",  # PostgreSQL 14's REINDEX (CONCURRENTLY) form
    re.IGNORECASE,
)
_ALTER_TABLE = re.compile(
    rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?(?P<table>{NAME}) (?:\* )?(?P<actions>.+)$",
    re.IGNORECASE,
)
_ADD_COLUMN = re.compile(
    r"^ADD (?:COLUMN )?(?:IF NOT EXISTS )?"
    rf"(?!(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN|EXCLUDE)\b)(?P<column>{IDENT}) (?P<rest>.*)$",
    re.IGNORECASE,
)
_NOT_NULL = re.compile(r"\bNOT NULL\b", re.IGNORECASE)
_FILLED = re.compile(r"\b(?:DEFAULT|GENERATED)\b", re.IGNORECASE)  # existing rows get a value
# what makes ADD COLUMN compute a value per existing row, rewriting the table (PostgreSQL 11+
# stores a constant or stable default, such as now(), without touching the rows)
_REWRITING_COLUMN = {
    "a volatile DEFAULT": re.compile(
        r"\bDEFAULT\b.*\b(?:gen_random_uuid|uuid_generate_v[14]\w*|random|clock_timestamp"
        r"|timeofday|nextval|txid_current)\b",
        re.IGNORECASE,
    ),
    "a serial type": re.compile(r"^(?:small|big)?serial[248]?\b", re.IGNORECASE),
    "IDENTITY": re.compile(r"\bGENERATED\b.*\bAS IDENTITY\b", re.IGNORECASE),
    "a STORED generated value": re.compile(r"\bGENERATED\b.*\bSTORED\b", re.IGNORECASE),
}
_ALTER_TYPE = re.compile(
    rf"^ALTER (?:COLUMN )?(?P<column>{IDENT}) (?:SET DATA )?TYPE (?P<type>.*)$", re.IGNORECASE
)
# from varchar(n), the usual source, these are changed in place (no rewrite, no scan)
_IN_PLACE_TYPE = re.compile(r"^(?:text|varchar|character varying)$", re.IGNORECASE)
_SET_NOT_NULL = re.compile(rf"^ALTER (?:COLUMN )?(?P<column>{IDENT}) SET NOT NULL\b", re.I)
_ADD_CONSTRAINT = re.compile(
    rf"^ADD (?:CONSTRAINT (?P<name>{IDENT}) )?(?P<kind>FOREIGN KEY|CHECK|UNIQUE|PRIMARY KEY)\b"
    r"(?P<rest>.*)$",
    re.IGNORECASE,
)
_NOT_VALID = re.compile(r"\bNOT VALID\b", re.IGNORECASE)
_USING_INDEX = re.compile(r"^ USING INDEX (?!TABLESPACE\b)", re.IGNORECASE)
_VALIDATE = re.compile(rf"^VALIDATE CONSTRAINT (?P<name>{IDENT})", re.IGNORECASE)
_VACUUM_FULL = re.compile(
    r"^VACUUM (?:\((?=[^)]*\bFULL\b(?! (?:FALSE|OFF|0)\b))[^)]*\)|FULL\b)"
    r"(?: (?:FREEZE|VERBOSE|ANALYZE|ANALYSE)\b)*(?P<tables>.*)$",
    re.IGNORECASE,
)
_CLUSTER = re.compile(
    rf"^CLUSTER\b(?: VERBOSE)?(?: \([^)]*\))?(?: (?P<first>{NAME}))?"
    rf"(?: (?P<keyword>USING|ON) (?P<second>{NAME}))?",
    re.IGNORECASE,
)
_REINDEX = re.compile(
    r"^REINDEX (?:\((?P<options>[^)]*)\) )?(?P<kind>INDEX|TABLE|SCHEMA|DATABASE|SYSTEM)\b"
    rf"(?P<concurrently> CONCURRENTLY\b)?(?: (?P<name>{NAME}))?",
    re.IGNORECASE,
)
_CONCURRENT_OPTION = re.compile(r"\bCONCURRENTLY\b(?! (?:FALSE|OFF|0)\b)", re.IGNORECASE)
_LOCK = re.compile(
    r"^LOCK (?:TABLE )?(?P<tables>.+?)(?: IN (?P<mode>[A-Z ]+?) MODE)?(?: NOWAIT)?$", re.I
)
_HARMLESS_LOCKS = {"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE"}
_ADD_ENUM_VALUE = re.compile(rf"^ALTER TYPE (?P<type>{NAME}) ADD VALUE\b", re.IGNORECASE)
_OWN_MIGRATION = "in a migration of its own with `-- transactional: false` in its leading comment"


Problem = tuple[str, str, str]  # (rule, message, hint)


@dataclass(slots=True)
class _Migration:
    """What the statements of one migration tell about the ones after them."""

    transactional: bool
    created: set[str]  # tables it creates: empty, so nothing on them is worth avoiding
    validated: set[str] = field(default_factory=set)  # tables with a VALIDATE CONSTRAINT so far
    not_valid: set[str] = field(default_factory=set)  # constraints it added NOT VALID so far


def problems(
    statements: Sequence[Statement], *, transactional: bool
) -> Iterator[tuple[int, Problem]]:
    """(line, problem) for each problem of a migration's statements, run in a transaction or not,
    in order."""
    created = {
        unqualified(match.group("table"))
        for match in (_CREATE_TABLE.match(s.text) for s in statements)
        if match
    }
    migration = _Migration(transactional, created)
    for statement in statements:
        for problem in _problems(statement.text, migration):
            yield statement.line, problem


def runs_concurrently(statement: str) -> bool:
    """True for one statement that builds, rebuilds or drops an index CONCURRENTLY."""
    return any(_CONCURRENTLY.match(s.text) for s in split_statements(statement))


def _problems(text: str, migration: _Migration) -> Iterator[Problem]:
    """(rule, message, hint) for each problem of one statement."""
    created, transactional = migration.created, migration.transactional
    index = _CREATE_INDEX.match(text)
    if index and not index.group("concurrently"):
        table = unqualified(index.group("table"))
        if table not in created:
            yield (
                "index-not-concurrent",
                f"CREATE INDEX on existing table {table} blocks writes to it until the index "
                "is built",
                f"use CREATE INDEX CONCURRENTLY, {_OWN_MIGRATION}",
            )
    if transactional and _CONCURRENTLY.match(text):
        yield (
            "concurrently-in-transaction",
            "CONCURRENTLY cannot run inside a transaction block: this migration fails when applied",
            f"run it {_OWN_MIGRATION}",
        )
    enum = _ADD_ENUM_VALUE.match(text)
    if transactional and enum:
        yield (
            "enum-value-in-transaction",
            f"ALTER TYPE {enum.group('type')} ADD VALUE in a transaction: the new value cannot "
            "be used before it commits (and PostgreSQL < 12 refuses it)",
            f"run it {_OWN_MIGRATION}",
        )
    yield from _rewrites_or_locks(text, created)
    alter = _ALTER_TABLE.match(text)
    if alter and unqualified(alter.group("table")) not in created:
        table = unqualified(alter.group("table"))
        for action in split_top_level(alter.group("actions")):
            yield from _action_problems(table, action, migration)


def _action_problems(table: str, action: str, migration: _Migration) -> Iterator[Problem]:
    """The problems of one action of ALTER TABLE on an existing table."""
    column = _ADD_COLUMN.match(action)
    if column:
        yield from _added_column_problems(table, column.group("column"), column.group("rest"))
    retyped = _ALTER_TYPE.match(action)
    if retyped and not _IN_PLACE_TYPE.match(retyped.group("type")):
        yield (
            "column-type-change",
            f"ALTER COLUMN {retyped.group('column')} TYPE rewrites {table} and its indexes under "
            "an ACCESS EXCLUSIVE lock: its reads and writes wait",
            "add a column of the new type, backfill it in batches, then swap the two",
        )
    not_null = _SET_NOT_NULL.match(action)
    if not_null and table not in migration.validated:
        name = not_null.group("column")
        yield (
            "set-not-null-without-check",
            f"SET NOT NULL on {name} scans all of {table} under an ACCESS EXCLUSIVE lock",
            f"ADD CONSTRAINT ... CHECK ({name} IS NOT NULL) NOT VALID; in a later migration, "
            "VALIDATE CONSTRAINT it, then SET NOT NULL (PostgreSQL 12+ skips the scan)",
        )
    constraint = _ADD_CONSTRAINT.match(action)
    if constraint:
        yield from _added_constraint_problems(table, constraint, migration)
    validate = _VALIDATE.match(action)
    if validate:
        migration.validated.add(table)
        if migration.transactional and unqualified(validate.group("name")) in migration.not_valid:
            yield (
                "validate-in-same-transaction",
                f"VALIDATE CONSTRAINT {validate.group('name')} in the transaction that added it:"
                f" the scan holds the lock the ADD took on {table}",
                "validate it in a later migration",
            )


def _added_column_problems(table: str, column: str, rest: str) -> Iterator[Problem]:
    definition = without_parentheses(rest)
    if _NOT_NULL.search(definition) and not _FILLED.search(definition):
        yield (
            "not-null-without-default",
            f"ADD COLUMN {column} NOT NULL without a DEFAULT fails once {table} has rows",
            "give it a DEFAULT, or add it nullable, backfill, then SET NOT NULL behind a "
            "validated CHECK",
        )
    rewriting = [what for what, pattern in _REWRITING_COLUMN.items() if pattern.search(rest)]
    if rewriting:
        yield (
            "add-column-rewrite",
            f"ADD COLUMN {column} with {rewriting[0]} computes it for every row: {table} is "
            "rewritten under an ACCESS EXCLUSIVE lock",
            "add it nullable with no default (or a constant one), backfill it in batches, "
            "then SET DEFAULT for new rows",
        )


def _added_constraint_problems(
    table: str, constraint: re.Match[str], migration: _Migration
) -> Iterator[Problem]:
    kind = constraint.group("kind").upper()
    rest = constraint.group("rest")
    if kind in ("FOREIGN KEY", "CHECK") and _NOT_VALID.search(without_parentheses(rest)):
        if constraint.group("name"):
            migration.not_valid.add(unqualified(constraint.group("name")))
    elif kind in ("FOREIGN KEY", "CHECK"):
        blocked = (
            "while blocking writes to it and to the table it references"
            if kind == "FOREIGN KEY"
            else "under an ACCESS EXCLUSIVE lock: its reads and writes wait"
        )
        yield (
            "constraint-without-not-valid",
            f"ADD {kind} checks every row of {table} {blocked}",
            "add it NOT VALID (new rows are checked at once), then VALIDATE CONSTRAINT in a later "
            "migration: validation blocks no reads or writes",
        )
    elif not _USING_INDEX.match(rest):
        yield (
            "constraint-builds-index",
            f"ADD {kind} builds its index on {table} under an ACCESS EXCLUSIVE lock",
            f"CREATE UNIQUE INDEX CONCURRENTLY {_OWN_MIGRATION}, then ADD CONSTRAINT name "
            f"{kind} USING INDEX that index",
        )


def _rewrites_or_locks(text: str, created: set[str]) -> Iterator[Problem]:
    """Statements other than ALTER TABLE that hold a long lock on an existing table."""
    vacuum = _VACUUM_FULL.match(text)
    if vacuum and not _only_created(vacuum.group("tables"), created):
        yield (
            "vacuum-full",
            f"VACUUM FULL rewrites {_tables(vacuum.group('tables'))} under an ACCESS EXCLUSIVE "
            "lock: reads and writes wait",
            "use pg_repack, which rebuilds a table online (or plain VACUUM)",
        )
    cluster = _CLUSTER.match(text)
    if cluster:
        on_keyword = (cluster.group("keyword") or "").upper() == "ON"  # CLUSTER index ON table
        on = cluster.group("second" if on_keyword else "first") or ""
        if not _only_created(on, created):
            yield (
                "cluster",
                f"CLUSTER rewrites {_tables(on)} under an ACCESS EXCLUSIVE lock: reads and "
                "writes wait",
                "use pg_repack --order-by, which reorders a table online",
            )
    reindex = _REINDEX.match(text)
    if reindex and not (
        reindex.group("concurrently") or _CONCURRENT_OPTION.search(reindex.group("options") or "")
    ):
        kind, name = reindex.group("kind").upper(), reindex.group("name") or ""
        if not (kind == "TABLE" and _only_created(name, created)):
            yield (
                "reindex-not-concurrent",
                f"REINDEX {f'{kind} {name}'.strip()} blocks writes, and reads that use the "
                "indexes, until they are rebuilt",
                f"use REINDEX {kind} CONCURRENTLY (PostgreSQL 12+), {_OWN_MIGRATION}",
            )
    lock = _LOCK.match(text)
    mode = " ".join((lock.group("mode") or "ACCESS EXCLUSIVE").upper().split()) if lock else ""
    if lock and mode not in _HARMLESS_LOCKS and not _only_created(lock.group("tables"), created):
        blocked = "reads and writes" if mode == "ACCESS EXCLUSIVE" else "writes"
        yield (
            "lock-table",
            f"LOCK {_tables(lock.group('tables'))} IN {mode} MODE blocks {blocked} until the "
            "migration commits",
            "drop it: each statement takes the lock it needs, for no longer than the migration's "
            "lock timeout; if it orders locks, keep the rest of the migration short",
        )


def _only_created(text: str, created: set[str]) -> bool:
    """True when `text` names tables and the migration created every one."""
    names = table_names(text)
    return bool(names) and set(names) <= created


def _tables(text: str) -> str:
    return ", ".join(table_names(text)) or "every table"
