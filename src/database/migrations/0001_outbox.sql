-- The outbox shared by every replica. Times are milliseconds since the Unix epoch: those of the
-- records on the clock of the replica that wrote them, those of the leases on the database's.

-- Ids of notifications, global and increasing; a route's ids follow the order they were accepted
-- in (an enqueue holds the route's advisory lock from taking its ids until its commit).
CREATE SEQUENCE outbox_ids;

CREATE TABLE outbox_pending (
    id              BIGINT PRIMARY KEY,
    route           TEXT NOT NULL,
    message         TEXT NOT NULL, -- the notification, as JSON
    attempts        INTEGER NOT NULL,
    queued_at       BIGINT NOT NULL,
    retrying_since  BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT
);
CREATE INDEX outbox_pending_by_route ON outbox_pending (route, id);

CREATE TABLE outbox_dead_letters (
    id        BIGINT PRIMARY KEY, -- kept from outbox_pending
    route     TEXT NOT NULL,
    message   TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    queued_at BIGINT NOT NULL,
    dead_at   BIGINT NOT NULL,
    reason    TEXT NOT NULL
);

-- Dedup keys, prefixed with their route: `route/key`.
CREATE TABLE outbox_dedup (
    key        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX outbox_dedup_by_expiry ON outbox_dedup (expires_at);

-- One row per route a replica is sending: who, under which lease number (a fencing token from
-- route_lease_numbers), until when (the database's clock).
CREATE SEQUENCE route_lease_numbers;

CREATE TABLE route_leases (
    route      TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    lease      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE FUNCTION pushjet_bridge_now_ms() RETURNS BIGINT
    LANGUAGE sql VOLATILE
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;
