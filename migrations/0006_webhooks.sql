-- Outgoing webhooks (service/webhooks/): the endpoints events are POSTed to, and one delivery
-- per event and endpoint, written by the event relay in the transaction that takes the event out
-- of the outbox, and claimed by any serving process whose turn it is (next_attempt_at).
-- depends: 0005_idempotency_keys

CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    url               text        NOT NULL,
    event_types       text[],
    description       text        NOT NULL DEFAULT '',
    secret            text        NOT NULL,
    previous_secret   text,
    previous_until    timestamptz,
    enabled           boolean     NOT NULL DEFAULT true,
    disabled_reason   text,
    failing_since     timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_endpoints_url_key UNIQUE (url),
    CONSTRAINT webhook_endpoints_description_length CHECK (char_length(description) <= 500)
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    body             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending',
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (endpoint_id, event_id),
    CONSTRAINT webhook_deliveries_status CHECK (status IN ('pending', 'delivered', 'failed'))
);

-- what is due: the dispatchers' claim
CREATE INDEX IF NOT EXISTS webhook_deliveries_due
    ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending';
-- an endpoint's recent deliveries (webhooks deliveries), and pruning finished ones
CREATE INDEX IF NOT EXISTS webhook_deliveries_recent ON webhook_deliveries (created_at);
