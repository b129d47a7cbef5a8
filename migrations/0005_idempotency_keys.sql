-- Idempotency-Key: the first answer to each (caller, method, path, key), kept 24 hours and
-- replayed to retries (service/idempotency.py). status is NULL while the first request runs.
-- depends: 0004_event_outbox

CREATE TABLE IF NOT EXISTS idempotency_keys (
    caller       text        NOT NULL,
    method       text        NOT NULL,
    path         text        NOT NULL,
    key          text        NOT NULL,
    fingerprint  bytea       NOT NULL,
    status       integer,
    content_type text,
    body         bytea,
    locked_until timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (caller, method, path, key)
);

CREATE INDEX IF NOT EXISTS idempotency_keys_expires_at ON idempotency_keys (expires_at);
