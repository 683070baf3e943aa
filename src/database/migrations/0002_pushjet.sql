-- The embedded Pushjet API shared by every replica. Times are seconds since the Unix epoch, on
-- the clock of the replica that wrote them. Keys are compared exactly (case-sensitive).

CREATE TABLE pushjet_services (
    secret  TEXT PRIMARY KEY,
    public  TEXT NOT NULL UNIQUE,
    name    TEXT NOT NULL,
    icon    TEXT NOT NULL,
    created BIGINT NOT NULL
);

-- `ord` numbers the subscriptions in the order they were made: lists come out in that order.
-- `last_read` is the id of the last message the device has read (or skipped) of the service.
CREATE TABLE pushjet_subscriptions (
    device     TEXT NOT NULL,
    public     TEXT NOT NULL REFERENCES pushjet_services (public) ON DELETE CASCADE,
    ord        BIGSERIAL NOT NULL,
    subscribed BIGINT NOT NULL,
    checked    BIGINT NOT NULL,
    last_read  BIGINT NOT NULL,
    PRIMARY KEY (device, public)
);
CREATE INDEX pushjet_subscriptions_by_service ON pushjet_subscriptions (public);

-- Message ids, global and increasing, committed in id order: a send holds the advisory lock of
-- the stream feed from taking its id until its commit.
CREATE SEQUENCE pushjet_message_ids;

CREATE TABLE pushjet_messages (
    id     BIGINT PRIMARY KEY,
    public TEXT NOT NULL,
    text   TEXT NOT NULL,
    title  TEXT NOT NULL,
    link   TEXT NOT NULL,
    level  SMALLINT NOT NULL,
    at     BIGINT NOT NULL
);
CREATE INDEX pushjet_messages_by_service ON pushjet_messages (public, id);

-- What live streams announce (a message stored, a subscription made or removed), written in the
-- transaction of the change under the feed's advisory lock (so ids commit in order) and
-- NOTIFYed on `pushjet_bridge_stream`; every replica reads it into its hub. Rows are kept for
-- the streams' cache window: a replica that starts fills its cache from them.
CREATE TABLE pushjet_stream_events (
    id      BIGSERIAL PRIMARY KEY,
    kind    TEXT NOT NULL,
    payload JSONB NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX pushjet_stream_events_by_time ON pushjet_stream_events (at);

-- The demo route's Pushjet service and device, made once for every replica.
CREATE TABLE pushjet_demo (
    name   TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    device TEXT NOT NULL
);
