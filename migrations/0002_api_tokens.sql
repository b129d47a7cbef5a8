-- Bearer tokens: only the SHA-256 of the token is stored. Login tokens and API tokens share it.
-- depends: 0001_users

CREATE TABLE IF NOT EXISTS api_tokens (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea       NOT NULL,
    kind         text        NOT NULL,
    name         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    CONSTRAINT api_tokens_hash_is_sha256 CHECK (octet_length(token_hash) = 32),
    CONSTRAINT api_tokens_kind CHECK (kind IN ('login', 'api')),
    CONSTRAINT api_tokens_name_length CHECK (char_length(btrim(name)) BETWEEN 1 AND 100),
    CONSTRAINT api_tokens_expire_after_creation CHECK (expires_at > created_at)
);

-- the lookup on every authenticated request
CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_token_hash_key ON api_tokens (token_hash);
-- a user's tokens (token list, revocation of all tokens of a user)
CREATE INDEX IF NOT EXISTS api_tokens_user_id ON api_tokens (user_id, created_at DESC);
