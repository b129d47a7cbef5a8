-- Users. Emails are stored lower-case, so the unique index makes them unique case-insensitively.

CREATE OR REPLACE FUNCTION apictl_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE IF NOT EXISTS users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    is_admin      boolean     NOT NULL DEFAULT false,
    is_active     boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_lower_case CHECK (email = lower(email)),
    CONSTRAINT users_email_shape CHECK (char_length(email) <= 254 AND email LIKE '_%@_%'),
    CONSTRAINT users_name_trimmed CHECK (name = btrim(name)),
    CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT users_password_hash_present CHECK (password_hash LIKE '$argon2%')
);

CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);
-- keyset pages of users, newest first
CREATE INDEX IF NOT EXISTS users_created_at_id ON users (created_at DESC, id DESC);

DROP TRIGGER IF EXISTS users_set_updated_at ON users;
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION apictl_set_updated_at();
