"""PostgreSQL script text split into statements that rules can match safely.

Comments are dropped and every string literal and dollar-quoted body is blanked (`''`, `$$`),
so neither a `;` nor a keyword inside them is mistaken for code. Quoted identifiers are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True, slots=True)
class Statement:
    line: int  # 1-based line of its first character in the script
    text: str  # one line: comments gone, literals blanked, whitespace collapsed


def split_statements(sql: str) -> list[Statement]:
    """The statements of `sql`, in order, empty ones skipped."""
    statements: list[Statement] = []
    code: list[str] = []
    start: int | None = None  # offset of the current statement's first character
    i = 0
    while i < len(sql):
        char = sql[i]
        if sql.startswith("--", i) or sql.startswith("/*", i):
            i = _comment_end(sql, i)
            code.append(" ")
            continue
        if char == ";":
            _flush(sql, start, code, statements)
            start, code = None, []
            i += 1
            continue
        if start is None and not char.isspace():
            start = i
        i, token = _token(sql, i)
        code.append(token)
    _flush(sql, start, code, statements)
    return statements


def _token(sql: str, i: int) -> tuple[int, str]:
    """(offset after the token at `i`, what stands for it in the statement text)."""
    char = sql[i]
    if char == "'":
        escapes = i > 0 and sql[i - 1] in "eE" and not _is_word(sql, i - 2)  # E'...\'...'
        return _quoted_end(sql, i, backslash_escapes=escapes), "''"
    if char == '"':
        end = _quoted_end(sql, i, backslash_escapes=False)
        return end, sql[i:end]
    if char == "$" and not _is_word(sql, i - 1):
        tag = _DOLLAR_TAG.match(sql, i)
        if tag:
            close = sql.find(tag.group(), tag.end())
            return (len(sql) if close < 0 else close + len(tag.group())), "$$"
    return i + 1, char


def _is_word(sql: str, i: int) -> bool:
    return i >= 0 and (sql[i].isalnum() or sql[i] in "_$")


def _quoted_end(sql: str, i: int, *, backslash_escapes: bool) -> int:
    """Offset just past the quoted text opening at `i` (a doubled quote is an escaped one)."""
    quote, j = sql[i], i + 1
    while j < len(sql):
        if backslash_escapes and sql[j] == "\\":
            j += 2
        elif sql[j] == quote:
            if not sql.startswith(quote, j + 1):
                return j + 1
            j += 2
        else:
            j += 1
    return len(sql)  # unterminated: the rest of the script is inside it


def _comment_end(sql: str, i: int) -> int:
    if sql.startswith("--", i):
        newline = sql.find("\n", i)
        return len(sql) if newline < 0 else newline
    depth, j = 0, i  # block comments nest in PostgreSQL
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)


def _flush(sql: str, start: int | None, code: list[str], into: list[Statement]) -> None:
    text = " ".join("".join(code).split())
    if start is not None and text:
        into.append(Statement(sql.count("\n", 0, start) + 1, text))
