"""SQL for webhook endpoints and deliveries (asyncpg, numbered parameters)."""

ENDPOINT = """id, url, event_types AS events, description, enabled, disabled_reason,
    failing_since, created_at"""

INSERT = f"""
INSERT INTO webhook_endpoints (url, event_types, description, secret) VALUES ($1, $2, $3, $4)
RETURNING {ENDPOINT}
"""
LIST = f"SELECT {ENDPOINT} FROM webhook_endpoints ORDER BY created_at, id"
GET = f"SELECT {ENDPOINT} FROM webhook_endpoints WHERE id = $1"

# NULL leaves a column as it is; $6: the event types change ($3 NULL then means every type).
UPDATE = f"""
UPDATE webhook_endpoints SET
    url = COALESCE($2, url),
    event_types = CASE WHEN $6 THEN $3 ELSE event_types END,
    description = COALESCE($4, description),
    enabled = COALESCE($5, enabled),
    disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason
                           WHEN $5 THEN NULL ELSE 'disabled by an admin' END,
    failing_since = CASE WHEN $5 THEN NULL ELSE failing_since END,
    updated_at = now()
WHERE id = $1
RETURNING {ENDPOINT}
"""
DELETE = "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING id"

# The old secret keeps signing beside the new one until previous_until.
ROTATE = """
UPDATE webhook_endpoints SET
    previous_secret = secret, previous_until = now() + make_interval(secs => $3),
    secret = $2, updated_at = now()
WHERE id = $1
RETURNING id, previous_until
"""

DELIVERY = """id, endpoint_id, event_id, event_type, status, attempts,
    CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at,
    last_attempt_at, last_status, last_error, created_at"""
DELIVERIES = f"""
SELECT {DELIVERY} FROM webhook_deliveries
WHERE $1::uuid IS NULL OR endpoint_id = $1
ORDER BY created_at DESC, id DESC LIMIT $2
"""

# Each event (id, type, JSON body) to every enabled endpoint subscribed to its type, once;
# the event relay runs it in the statement that takes the events out of the outbox.
FAN_OUT = """
INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, body)
SELECT w.id, e.id, e.type, e.body
FROM unnest($1::text[], $2::text[], $3::text[]) AS e (id, type, body)
JOIN webhook_endpoints w ON w.enabled AND (w.event_types IS NULL OR e.type = ANY (w.event_types))
ON CONFLICT (endpoint_id, event_id) DO NOTHING
"""

# Again to one endpoint (`webhooks replay`): delivered or failed ones start over.
REPLAY = """
INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, body)
SELECT $1, e.id, e.type, e.body
FROM unnest($2::text[], $3::text[], $4::text[]) AS e (id, type, body)
ON CONFLICT (endpoint_id, event_id) DO UPDATE SET
    status = 'pending', attempts = 0, next_attempt_at = now(), body = excluded.body
"""

# What is due, $1 at most, and per endpoint at most $2 less what this process has in flight to
# it ($3: endpoints, $5: their counts), leased for $4 seconds: a process killed mid-attempt
# leaves the row to be claimed again when the lease ends.
CLAIM = """
UPDATE webhook_deliveries d SET
    attempts = d.attempts + 1,
    last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => $4)
FROM webhook_endpoints w
WHERE d.endpoint_id = w.id AND d.id IN (
    SELECT due.id FROM webhook_endpoints e, LATERAL (
        SELECT id FROM webhook_deliveries
        WHERE endpoint_id = e.id AND status = 'pending' AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT greatest(0, $2 - coalesce(($5::int[])[array_position($3::uuid[], e.id)], 0))
        FOR UPDATE SKIP LOCKED
    ) AS due
    WHERE e.enabled
    LIMIT $1
)
RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.body, d.attempts, w.url,
    w.secret, CASE WHEN w.previous_until > now() THEN w.previous_secret END AS previous_secret
"""

# The outcome of attempts and their endpoints' health. Delivered, those that ended meanwhile in
# one statement ($1 deliveries, $2 their answers' statuses): their endpoints ($3) are no longer
# failing.
DELIVERED = """
WITH delivered AS (
    UPDATE webhook_deliveries d SET status = 'delivered', last_status = a.status, last_error = NULL
    FROM unnest($1::bigint[], $2::int[]) AS a (id, status)
    WHERE d.id = a.id
)
UPDATE webhook_endpoints SET failing_since = NULL
WHERE id = ANY($3::uuid[]) AND failing_since IS NOT NULL
"""
# Not delivered: tried again in $3 seconds (NULL: that was the last attempt); the endpoint ($5)
# is failing since now if it was not, and is disabled at once with $6 as the reason, or once it
# has failed for $7 seconds.
NOT_DELIVERED = """
WITH attempt AS (
    UPDATE webhook_deliveries SET
        status = CASE WHEN $3::float8 IS NULL THEN 'failed' ELSE 'pending' END,
        next_attempt_at = COALESCE(now() + make_interval(secs => $3::float8), next_attempt_at),
        last_status = $2, last_error = $4
    WHERE id = $1
)
UPDATE webhook_endpoints w SET
    failing_since = COALESCE(w.failing_since, now()),
    enabled = w.enabled AND $6::text IS NULL
              AND COALESCE(w.failing_since, now()) > now() - make_interval(secs => $7),
    disabled_reason = CASE
        WHEN NOT w.enabled THEN w.disabled_reason
        WHEN $6::text IS NOT NULL THEN $6
        WHEN COALESCE(w.failing_since, now()) <= now() - make_interval(secs => $7)
            THEN 'every delivery failed for ' || ($7 / 86400)::int || ' days'
    END,
    updated_at = now()
FROM webhook_endpoints before
WHERE w.id = $5 AND before.id = w.id
RETURNING before.enabled AND NOT w.enabled AS disabled, w.disabled_reason
"""

# Attempts a stopping process cut short: another instance's to make now, not when the lease ends.
RELEASE = """
UPDATE webhook_deliveries SET next_attempt_at = now()
WHERE id = ANY($1::bigint[]) AND status = 'pending'
"""

BACKLOG = "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"

# Finished deliveries are kept a while for `webhooks deliveries`; a batch at a time.
PRUNE = """
DELETE FROM webhook_deliveries WHERE id IN (
    SELECT id FROM webhook_deliveries
    WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1) LIMIT 1000
)
"""
