"""Risky PostgreSQL migration SQL, found before it locks or breaks a production database.

`lint_sql` is pure (text in, findings out); `lint_migration` adds what needs the files around
it: the rollback file beside a migration, the `-- transactional:` directive of its pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
    r"^(?:CREATE (?:UNIQUE )?INDEX|DROP INDEX|REINDEX (?:\([^)]*\) )?\w+) CONCURRENTLY\b",
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


def is_transactional(sql: str) -> bool:
    """False when the leading comment says `-- transactional: false` (yoyo's directive)."""
    for line in sql.splitlines():
        directive = _TRANSACTIONAL.match(line)
        if directive:
            return directive.group("value").strip().lower() != "false"
        if not _COMMENT_OR_BLANK.match(line):
            break
    return True


def lint_sql(sql: str, path: Path, *, transactional: bool) -> list[Finding]:
    """The findings of the SQL text of one migration, run in a transaction or not."""
    statements = split_statements(sql)
    created = {
        _unqualified(match.group("table"))
        for match in (_CREATE_TABLE.match(s.text) for s in statements)
        if match
    }
    findings: list[Finding] = []
    for statement in statements:
        for rule, message, hint in _problems(statement.text, created, transactional):
            findings.append(Finding(path, statement.line, rule, message, hint))
    return findings


def _problems(text: str, created: set[str], transactional: bool) -> Iterator[tuple[str, str, str]]:
    """(rule, message, hint) for each problem of one statement."""
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
    alter = _ALTER_TABLE.match(text)
    if alter and _unqualified(alter.group("table")) not in created:
        yield from _not_null_without_default(alter.group("table"), alter.group("actions"))


def _not_null_without_default(table: str, actions: str) -> Iterator[tuple[str, str, str]]:
    for action in _split_top_level(actions):
        column = _ADD_COLUMN.match(action)
        if column is None:
            continue
        definition = _without_parentheses(column.group("rest"))
        if _NOT_NULL.search(definition) and not _FILLED.search(definition):
            yield (
                "not-null-without-default",
                f"ADD COLUMN {column.group('column')} NOT NULL without a DEFAULT fails once "
                f"{_unqualified(table)} has rows",
                "give it a DEFAULT, or add it nullable, backfill, then SET NOT NULL",
            )


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
