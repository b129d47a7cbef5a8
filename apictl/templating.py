"""Files generated from templates/ (string.Template, `$name` placeholders): `migrate new` and
`scaffold` render and write through here."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from string import Template

from apictl.output import console, fail, shown_path
from service.process.bundled import bundled_dir
from service.process.migration_state import migration_ids

MIGRATION_SUFFIXES = (".sql", ".rollback.sql")


def render(template: str, /, **values: str) -> str:
    """templates/`template` with every placeholder replaced (a missing value is a KeyError)."""
    return Template((bundled_dir("templates") / template).read_text()).substitute(values)


def next_migration(directory: Path, name: str) -> tuple[str, str]:
    """The id of a new migration `name` in `directory` (NNNN_name) and the id it depends on."""
    existing = migration_ids(directory)
    number = max((int(i.split("_", 1)[0]) for i in existing if i[:4].isdigit()), default=0) + 1
    return f"{number:04d}_{name}", existing[-1] if existing else ""


def migration_files(
    directory: Path, migration_id: str, depends: str, bodies: Mapping[str, str] | None = None
) -> dict[Path, str]:
    """The pair `migration_id`.sql / .rollback.sql from templates/migration/, each followed by
    its body in `bodies` (by suffix)."""
    name = migration_id.split("_", 1)[1]
    return {
        directory / f"{migration_id}{suffix}": render(
            f"migration/migration{suffix}.tmpl", id=migration_id, name=name, depends=depends
        )
        + (bodies or {}).get(suffix, "")
        for suffix in MIGRATION_SUFFIXES
    }


def write_files(files: Mapping[Path, str], *, force: bool = False) -> None:
    """Write every file (folders as needed) and say so. When any exists, write nothing and
    exit 1, unless `force`."""
    existing = [path for path in files if path.exists()]
    if existing and not force:
        fail(
            f"{len(existing)} file(s) already exist; nothing written:\n  "
            + "\n  ".join(map(shown_path, existing)),
            hint="run again with --force to overwrite them",
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        verb = "overwrote" if path in existing else "created"
        console.print(f"{verb} {shown_path(path)}", soft_wrap=True)
