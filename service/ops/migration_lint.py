"""Risky PostgreSQL migration SQL, found before it locks or breaks a production database.

`lint_sql` is pure (text in, findings out); `lint_migration` adds what needs the files around
it: the rollback file beside a migration, the `-- transactional:` directive of its pair. The
rules each statement is held to are in service.ops.migration_lint_rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from service.ops.migration_lint_rules import problems
from service.ops.sql_scanner import split_statements

_TRANSACTIONAL = re.compile(r"^\s*--\s*transactional\s*:\s*(?P<value>.*)$")  # as yoyo reads it
_COMMENT_OR_BLANK = re.compile(r"^\s*(?:--.*)?$")


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
    return [
        Finding(path, line, rule, message, hint)
        for line, (rule, message, hint) in problems(
            split_statements(sql), transactional=transactional
        )
    ]
