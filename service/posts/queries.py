"""SQL for posts (asyncpg, numbered parameters); reads and pages come from `tables.Table`."""

from service.tables import Table

TABLE = Table("posts", "id, author_id, title, body, created_at, updated_at", owner="author_id")

INSERT = f"""
INSERT INTO posts (author_id, title, body) VALUES ($1, $2, $3) RETURNING {TABLE.columns}
"""

# Ownership is checked in the statement itself: $4 is true for admins.
UPDATE = f"""
UPDATE posts SET title = COALESCE($2, title), body = COALESCE($3, body)
WHERE id = $1 AND (author_id = $5 OR $4)
RETURNING {TABLE.columns}
"""
