-- The transactional outbox: every event is written here in the transaction of the change it
-- describes, and the relay moves it to the Redis Stream (service/events/relay.py).
-- Rows are relayed in (xid, id) order, and only once every transaction older than theirs has
-- ended, so no row can appear later below one already relayed.
-- depends: 0003_posts

CREATE TABLE IF NOT EXISTS event_outbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    type       text        NOT NULL,
    data       json        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS event_outbox_xid_id ON event_outbox (xid, id);
