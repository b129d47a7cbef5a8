"""Python source written the way ruff formats and sorts it, so generated code passes
`ruff format --check` and ruff's isort rule as generated."""

from __future__ import annotations

import json
import re

LINE = 100  # ruff's line-length for this project


class Code(str):
    """Python source, emitted as is by `py`."""


def py(value: object, indent: int = 0) -> str:
    """`value` as Python source: non-empty dicts, lists and tuples one item a line, each with a
    trailing comma, which keeps ruff from joining the lines (tuples: two items or more)."""
    if isinstance(value, Code):
        return value
    if isinstance(value, dict | list | tuple):
        brackets = "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else "()"
        if not value:
            return brackets
        items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        pad = " " * (indent + 4)
        lines = "".join(
            f"{pad}{'' if key is None else py(key) + ': '}{py(item, indent + 4)},\n"
            for key, item in items
        )
        return f"{brackets[0]}\n{lines}{' ' * indent}{brackets[1]}"
    if isinstance(value, str):
        return json.dumps(value)  # double quotes and \u escapes: valid Python, as ruff keeps it
    return repr(value)


def _natural(text: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _member_key(name: str) -> tuple[int, list[object], str]:
    """isort's order-by-type: CONSTANTS, then Classes, then the rest."""
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[0].isupper() else 2
    return kind, _natural(name), name


def imports(modules: dict[str, list[str]]) -> str:
    """`from module import names` lines sorted, and wrapped past LINE, as ruff's isort does."""
    lines = []
    for module in sorted(modules, key=_natural):
        names = sorted(modules[module], key=_member_key)
        line = f"from {module} import {', '.join(names)}"
        if len(line) > LINE:
            line = f"from {module} import " + py(tuple(Code(n) for n in names))
        lines.append(line)
    return "\n".join(lines)
