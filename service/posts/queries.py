"""SQL for posts (asyncpg, numbered parameters)."""

COLUMNS = "id, author_id, title, body, created_at, updated_at"

INSERT = f"INSERT INTO posts (author_id, title, body) VALUES ($1, $2, $3) RETURNING {COLUMNS}"

BY_ID = f"SELECT {COLUMNS} FROM posts WHERE id = $1"

# Keyset pages, newest first; one statement per shape so each keeps its index range scan.
FIRST_PAGE = f"SELECT {COLUMNS} FROM posts ORDER BY created_at DESC, id DESC LIMIT $1"
PAGE_AFTER = f"""
SELECT {COLUMNS} FROM posts WHERE (created_at, id) < ($1, $2)
ORDER BY created_at DESC, id DESC LIMIT $3
"""
AUTHOR_FIRST_PAGE = f"""
SELECT {COLUMNS} FROM posts WHERE author_id = $1
ORDER BY created_at DESC, id DESC LIMIT $2
"""
AUTHOR_PAGE_AFTER = f"""
SELECT {COLUMNS} FROM posts WHERE author_id = $1 AND (created_at, id) < ($2, $3)
ORDER BY created_at DESC, id DESC LIMIT $4
"""

# Ownership is checked in the statement itself: $4 is true for admins.
UPDATE = f"""
UPDATE posts SET title = COALESCE($2, title), body = COALESCE($3, body)
WHERE id = $1 AND (author_id = $5 OR $4)
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM posts WHERE id = $1 AND (author_id = $3 OR $2) RETURNING author_id"

EXISTS = "SELECT EXISTS (SELECT 1 FROM posts WHERE id = $1)"
