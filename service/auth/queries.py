"""SQL for tokens and logins (asyncpg, numbered parameters)."""

# One round trip per cache miss: find a live token, stamp its last use, and load its owner.
AUTHENTICATE = """
WITH t AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE token_hash = $1 AND expires_at > now()
    RETURNING id, user_id, expires_at
)
SELECT t.id, t.user_id, t.expires_at, u.is_admin
FROM t JOIN users u ON u.id = t.user_id
WHERE u.is_active
"""

# The same, for a token known by id (a stream ticket names its token this way).
AUTHENTICATE_ID = """
WITH t AS (
    UPDATE api_tokens SET last_used_at = now()
    WHERE id = $1 AND expires_at > now()
    RETURNING id, user_id, expires_at
)
SELECT t.id, t.user_id, t.expires_at, u.is_admin
FROM t JOIN users u ON u.id = t.user_id
WHERE u.is_active
"""

INSERT_TOKEN = """
INSERT INTO api_tokens (user_id, token_hash, kind, name, expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
RETURNING id, expires_at
"""

DELETE_TOKEN = "DELETE FROM api_tokens WHERE id = $1 RETURNING token_hash"

DELETE_USER_TOKENS = "DELETE FROM api_tokens WHERE user_id = $1"

LIST_TOKENS = """
SELECT t.id, u.email, t.kind, t.name, t.created_at, t.expires_at, t.last_used_at
FROM api_tokens t JOIN users u ON u.id = t.user_id
WHERE $1::text IS NULL OR u.email = $1
ORDER BY t.created_at DESC
"""

LOGIN_USER = "SELECT id, password_hash, is_active FROM users WHERE email = $1"

SET_PASSWORD_HASH = "UPDATE users SET password_hash = $2 WHERE id = $1"
