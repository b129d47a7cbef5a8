"""SQL for users (asyncpg, numbered parameters)."""

COLUMNS = "id, email, name, is_admin, is_active, created_at"

INSERT = f"""
INSERT INTO users (email, name, password_hash, is_admin) VALUES ($1, $2, $3, $4)
RETURNING {COLUMNS}
"""

BY_ID = f"SELECT {COLUMNS} FROM users WHERE id = $1"

BY_EMAIL = f"SELECT {COLUMNS} FROM users WHERE email = $1"

# Two statements rather than one with "$1 IS NULL OR ...": each keeps its index range scan.
FIRST_PAGE = f"SELECT {COLUMNS} FROM users ORDER BY created_at DESC, id DESC LIMIT $1"

PAGE_AFTER = f"""
SELECT {COLUMNS} FROM users WHERE (created_at, id) < ($1, $2)
ORDER BY created_at DESC, id DESC LIMIT $3
"""

# NULL leaves a column as it is.
UPDATE = f"""
UPDATE users SET
    name = COALESCE($2, name),
    password_hash = COALESCE($3, password_hash),
    is_admin = COALESCE($4, is_admin),
    is_active = COALESCE($5, is_active)
WHERE id = $1
RETURNING {COLUMNS}
"""

DELETE = "DELETE FROM users WHERE id = $1 RETURNING id"

PASSWORD_HASH = "SELECT password_hash FROM users WHERE id = $1"
