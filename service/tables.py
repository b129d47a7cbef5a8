"""A table's standard statements, derived once from its name, columns and owner column.

Every resource reads one row, checks existence, pages newest first and deletes with an
ownership guard in the same words; only INSERT and UPDATE depend on its fields and stay in its
own `queries.py`. Plain SQL for asyncpg, built at import, never from input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"


@dataclass(frozen=True)
class Table:
    """A table of rows with `id`, `created_at` and (when owned) an owner column.

    `references` maps the name of each foreign-key constraint of a client-given id to
    (field, table): an id naming no row is then a 422 that names the field, not a 500.
    """

    name: str
    columns: str
    owner: str | None = "owner_id"
    references: dict[str, tuple[str, str]] = field(default_factory=dict)

    def select(self, where: str = "", limit_param: int = 0) -> str:
        """SELECT of every column; newest first, LIMIT $limit_param, when that is given."""
        sql = f"SELECT {self.columns} FROM {self.name}"
        sql += f" WHERE {where}" if where else ""
        return sql + (f" {NEWEST_FIRST} LIMIT ${limit_param}" if limit_param else "")

    @property
    def by_id(self) -> str:
        return self.select("id = $1")

    @property
    def exists(self) -> str:
        return f"SELECT EXISTS (SELECT 1 FROM {self.name} WHERE id = $1)"

    # One statement per page shape, so each keeps its index range scan.
    @property
    def first_page(self) -> str:
        return self.select(limit_param=1)

    @property
    def page_after(self) -> str:
        return self.select("(created_at, id) < ($1, $2)", limit_param=3)

    @property
    def owner_first_page(self) -> str:
        return self.select(f"{self.owner} = $1", limit_param=2)

    @property
    def owner_page_after(self) -> str:
        return self.select(f"{self.owner} = $1 AND (created_at, id) < ($2, $3)", limit_param=4)

    @property
    def delete(self) -> str:
        """Delete row $1 if $3 owns it or $2 (is admin) is true; returns the owner, then the id."""
        return (
            f"DELETE FROM {self.name} WHERE id = $1 AND ({self.owner} = $3 OR $2)"
            f" RETURNING {self.owner}, id"
        )
