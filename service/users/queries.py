"""SQL for users (asyncpg, numbered parameters); reads and pages come from `tables.Table`."""

from service.tables import Table

TABLE = Table("users", "id, email, name, is_admin, is_active, created_at", owner=None)
COLUMNS = TABLE.columns

INSERT = f"""
INSERT INTO users (email, name, password_hash, is_admin) VALUES ($1, $2, $3, $4)
RETURNING {COLUMNS}
"""

BY_EMAIL = f"SELECT {COLUMNS} FROM users WHERE email = $1"

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
