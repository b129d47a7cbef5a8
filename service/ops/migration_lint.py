"""Risky PostgreSQL migration SQL, found before it locks or breaks a production database.

`lint_sql` is pure (text in, findings out); `lint_migration` adds what needs the files around
it: the rollback file beside a migration, the `-- transactional:` directive of its pair.
A table the migration creates is empty: what would lock or rewrite an existing one is fine there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from service.ops.sql_scanner import split_statements

_IDENT = r'(?:"(?:[^"]|"")*"|[A-Za-z_][\w$]*)'
_NAME = rf"{_IDENT}(?: ?\. ?{_IDENT})*"
_CREATE_TABLE = re.compile(
    r"^CREATE (?:(?:GLOBAL|LOCAL) )?(?:(?:TEMP|TEMPORARY|UNLOGGED) )?"
    rf"(?:TABLE|MATERIALIZED VIEW) (?:IF NOT EXISTS )?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_CREATE_INDEX = re.compile(
    r"^CREATE (?:UNIQUE )?INDEX (?P<concurrently>CONCURRENTLY )?(?:IF NOT EXISTS )?"
    rf"(?:(?!ON\b){_IDENT} )?ON (?:ONLY )?(?P<table>{_NAME})",
    re.IGNORECASE,
)
_CONCURRENTLY = re.compile(
    r"^(?:(?:CREATE (?:UNIQUE )?INDEX|DROP INDEX|REINDEX (?:\([^)]*\) )?\w+) CONCURRENTLY\b"
    r"|REINDEX \((?:[^)]*,)? ?CONCURRENTLY\b)",  # PostgreSQL 14's REINDEX (CONCURRENTLY) form
    re.IGNORECASE,
)
_ALTER_TABLE = re.compile(
    rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?(?P<table>{_NAME}) (?:\* )?(?P<actions>.+)$",
    re.IGNORECASE,
)
_ADD_COLUMN = re.compile(
    r"^ADD (?:COLUMN )?(?:IF NOT EXISTS )?"
    rf"(?!(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN|EXCLUDE)\b)(?P<column>{_IDENT}) (?P<rest>.*)$",
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
    rf"^ALTER (?:COLUMN )?(?P<column>{_IDENT}) (?:SET DATA )?TYPE (?P<type>.*)$", re.IGNORECASE
)
# from varchar(n), the usual source, these are changed in place (no rewrite, no scan)
_IN_PLACE_TYPE = re.compile(r"^(?:text|varchar|character varying)$", re.IGNORECASE)
_SET_NOT_NULL = re.compile(rf"^ALTER (?:COLUMN )?(?P<column>{_IDENT}) SET NOT NULL\b", re.I)
_ADD_CONSTRAINT = re.compile(
    rf"^ADD (?:CONSTRAINT (?P<name>{_IDENT}) )?(?P<kind>FOREIGN KEY|CHECK|UNIQUE|PRIMARY KEY)\b"
    r"(?P<rest>.*)$",
    re.IGNORECASE,
)
_NOT_VALID = re.compile(r"\bNOT VALID\b", re.IGNORECASE)
_USING_INDEX = re.compile(r"^ USING INDEX (?!TABLESPACE\b)", re.IGNORECASE)
_VALIDATE = re.compile(rf"^VALIDATE CONSTRAINT (?P<name>{_IDENT})", re.IGNORECASE)
_VACUUM_FULL = re.compile(
    r"^VACUUM (?:\((?=[^)]*\bFULL\b(?! (?:FALSE|OFF|0)\b))[^)]*\)|FULL\b)"
    r"(?: (?:FREEZE|VERBOSE|ANALYZE|ANALYSE)\b)*(?P<tables>.*)$",
    re.IGNORECASE,
)
_CLUSTER = re.compile(
    rf"^CLUSTER\b(?: VERBOSE)?(?: \([^)]*\))?(?: (?P<first>{_NAME}))?"
    rf"(?: (?P<keyword>USING|ON) (?P<second>{_NAME}))?",
    re.IGNORECASE,
)
_REINDEX = re.compile(
    r"^REINDEX (?:\((?P<options>[^)]*)\) )?(?P<kind>INDEX|TABLE|SCHEMA|DATABASE|SYSTEM)\b"
    rf"(?P<concurrently> CONCURRENTLY\b)?(?: (?P<name>{_NAME}))?",
    re.IGNORECASE,
)
_CONCURRENT_OPTION = re.compile(r"\bCONCURRENTLY\b(?! (?:FALSE|OFF|0)\b)", re.IGNORECASE)
_LOCK = re.compile(
    r"^LOCK (?:TABLE )?(?P<tables>.+?)(?: IN (?P<mode>[A-Z ]+?) MODE)?(?: NOWAIT)?$", re.I
)
_HARMLESS_LOCKS = {"ACCESS SHARE", "ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE"}
_ADD_ENUM_VALUE = re.compile(rf"^ALTER TYPE (?P<type>{_NAME}) ADD VALUE\b", re.IGNORECASE)
_TRANSACTIONAL = re.compile(r"^\s*--\s*transactional\s*:\s*(?P<value>.*)$")  # as yoyo reads it
_COMMENT_OR_BLANK = re.compile(r"^\s*(?:--.*)?$")
_OWN_MIGRATION = "in a migration of its own with `-- transactional: false` in its leading comment"


@dataclass(frozen=True, slots=True)
class Finding:
    path: Path
    line: int
    rule: str  # e.g. index-not-concurrent (see `apictl migrate lint --help`)
    message: str
    hint: str


def sql_files(paths: Iterable[Path]) -> list[Path]:
    """The .sql files among `paths`, folders expanded to the .sql files in them, sorted."""
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.sql")) if path.is_dir() else [path]
    return files


def lint_migration(path: Path) -> list[Finding]:
    """The findings of one migration (or rollback) file."""
    rollback = path.name.endswith(".rollback.sql")
    migration = path.with_name(path.name.removesuffix(".rollback.sql") + ".sql")
    # yoyo runs a rollback under the directives of its migration
    directives_from = migration if rollback and migration.is_file() else path
    transactional = is_transactional(directives_from.read_text())
    findings = []
    expected_rollback = path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")
    if not rollback and not expected_rollback.is_file():
        findings.append(
            Finding(
                path,
                1,
                "missing-rollback",
                f"no {expected_rollback.name}: `apictl migrate down` cannot undo this migration",
                f"write {expected_rollback.name} to leave the schema as it was before",
            )
        )
    return findings + lint_sql(path.read_text(), path, transactional=transactional)


def runs_concurrently(statement: str) -> bool:
    """True for one statement that builds, rebuilds or drops an index CONCURRENTLY."""
    return any(_CONCURRENTLY.match(s.text) for s in split_statements(statement))


def is_transactional(sql: str) -> bool:
    """False when the leading comment says `-- transactional: false` (yoyo's directive)."""
    for line in sql.splitlines():
        directive = _TRANSACTIONAL.match(line)
        if directive:
            return directive.group("value").strip().lower() != "false"
        if not _COMMENT_OR_BLANK.match(line):
            break
    return True


@dataclass(slots=True)
class _Migration:
    """What the statements of one migration tell about the ones after them."""

    transactional: bool
    created: set[str]  # tables it creates: empty, so nothing on them is worth avoiding
    validated: set[str] = field(default_factory=set)  # tables with a VALIDATE CONSTRAINT so far
    not_valid: set[str] = field(default_factory=set)  # constraints it added NOT VALID so far


Problem = tuple[str, str, str]  # (rule, message, hint)


def lint_sql(sql: str, path: Path, *, transactional: bool) -> list[Finding]:
    """The findings of the SQL text of one migration, run in a transaction or not."""
    statements = split_statements(sql)
    created = {
        _unqualified(match.group("table"))
        for match in (_CREATE_TABLE.match(s.text) for s in statements)
        if match
    }
    migration = _Migration(transactional, created)
    findings: list[Finding] = []
    for statement in statements:
        for rule, message, hint in _problems(statement.text, migration):
            findings.append(Finding(path, statement.line, rule, message, hint))
    return findings


def _problems(text: str, migration: _Migration) -> Iterator[Problem]:
    """(rule, message, hint) for each problem of one statement."""
    created, transactional = migration.created, migration.transactional
    index = _CREATE_INDEX.match(text)
    if index and not index.group("concurrently"):
        table = _unqualified(index.group("table"))
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
    if alter and _unqualified(alter.group("table")) not in created:
        table = _unqualified(alter.group("table"))
        for action in _split_top_level(alter.group("actions")):
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
        if migration.transactional and _unqualified(validate.group("name")) in migration.not_valid:
            yield (
                "validate-in-same-transaction",
                f"VALIDATE CONSTRAINT {validate.group('name')} in the transaction that added it:"
                f" the scan holds the lock the ADD took on {table}",
                "validate it in a later migration",
            )


def _added_column_problems(table: str, column: str, rest: str) -> Iterator[Problem]:
    definition = _without_parentheses(rest)
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
    if kind in ("FOREIGN KEY", "CHECK") and _NOT_VALID.search(_without_parentheses(rest)):
        if constraint.group("name"):
            migration.not_valid.add(_unqualified(constraint.group("name")))
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


def _table_names(text: str) -> list[str]:
    """The tables named in a comma list such as `ONLY a, b *` (empty: none named)."""
    names = []
    for part in _split_top_level(text.strip()):
        match = re.match(rf"^(?:ONLY )?(?P<name>{_NAME})", part, re.IGNORECASE)
        if match:
            names.append(_unqualified(match.group("name")))
    return names


def _only_created(text: str, created: set[str]) -> bool:
    """True when `text` names tables and the migration created every one."""
    names = _table_names(text)
    return bool(names) and set(names) <= created


def _tables(text: str) -> str:
    return ", ".join(_table_names(text)) or "every table"


def _unqualified(name: str) -> str:
    """The object's own name: schema dropped; unquoted names fold to lower case, as in SQL."""
    last: str = re.findall(_IDENT, name)[-1]
    return last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()


def _split_top_level(text: str) -> list[str]:
    """`text` split at the commas outside parentheses, each part stripped."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def _without_parentheses(text: str) -> str:
    """`text` minus everything inside parentheses (CHECK (x IS NOT NULL) adds no NOT NULL)."""
    kept, depth = [], 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif depth == 0:
            kept.append(char)
    return "".join(kept)
