"""Files that ship with the package: the SQL migrations and the scaffolding templates.

In a wheel they live in `service/_data/`; in a source checkout (editable install) they are the
top-level `migrations/` and `templates/` folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # service/


def bundled_dir(name: str) -> Path:
    """The folder `name` (`migrations` or `templates`) as installed."""
    packaged = _PACKAGE / "_data" / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name


def checkout_root() -> Path | None:
    """The repository root when running from a source checkout (editable install); None in a
    wheel, whose service/ is not the user's to edit."""
    return None if (_PACKAGE / "_data").is_dir() else _PACKAGE.parent


def is_source_checkout() -> bool:
    """True when running from the repository (editable install) rather than a wheel."""
    return checkout_root() is not None
