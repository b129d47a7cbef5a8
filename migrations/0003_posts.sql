-- Posts, paged newest first by (created_at, id), optionally per author.
-- depends: 0001_users

CREATE TABLE IF NOT EXISTS posts (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id  uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      text        NOT NULL,
    body       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT posts_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT posts_title_not_blank CHECK (btrim(title) <> ''),
    CONSTRAINT posts_body_length CHECK (char_length(body) <= 50000)
);

CREATE INDEX IF NOT EXISTS posts_created_at_id ON posts (created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS posts_author_created_at_id ON posts (author_id, created_at DESC, id DESC);

DROP TRIGGER IF EXISTS posts_set_updated_at ON posts;
CREATE TRIGGER posts_set_updated_at BEFORE UPDATE ON posts
    FOR EACH ROW EXECUTE FUNCTION apictl_set_updated_at();
