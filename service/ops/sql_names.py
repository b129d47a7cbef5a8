"""Names and lists in a statement's text, read as PostgreSQL reads them: identifiers, qualified
names, comma lists, with what is inside parentheses set apart."""

from __future__ import annotations

import re

IDENT = r'(?:"(?:[^"]|"")*"|[A-Za-z_][\w$]*)'
NAME = rf"{IDENT}(?: ?\. ?{IDENT})*"


def table_names(text: str) -> list[str]:
    """The tables named in a comma list such as `ONLY a, b *` (empty: none named)."""
    names = []
    for part in split_top_level(text.strip()):
        match = re.match(rf"^(?:ONLY )?(?P<name>{NAME})", part, re.IGNORECASE)
        if match:
            names.append(unqualified(match.group("name")))
    return names


def unqualified(name: str) -> str:
    """The object's own name: schema dropped; unquoted names fold to lower case, as in SQL."""
    last: str = re.findall(IDENT, name)[-1]
    return last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()


def split_top_level(text: str) -> list[str]:
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


def without_parentheses(text: str) -> str:
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
