-- The delivery history every replica writes and reads (crate::history). Times are milliseconds
-- since the Unix epoch, on the clock of the replica that wrote them.

-- Every change to a record (its writing, a state change of one of its notifications) takes the
-- next number: the live streams of every replica read the changes in this order.
CREATE SEQUENCE history_changes;

CREATE TABLE history_records (
    id          BIGINT PRIMARY KEY, -- increasing with time: the writer's clock, shifted, and a counter
    at          BIGINT NOT NULL,
    route       TEXT NOT NULL,
    source      TEXT NOT NULL,
    event       TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    search      TEXT NOT NULL,      -- titles and messages, lower-cased, for `q`
    record      TEXT NOT NULL,      -- the record without its request, as JSON
    request     TEXT,               -- the kept request (redacted), as JSON
    bytes       BIGINT NOT NULL,    -- what record and request take
    created_seq BIGINT NOT NULL,
    change_seq  BIGINT NOT NULL
);
CREATE INDEX history_records_by_at ON history_records (at);
CREATE INDEX history_records_by_route ON history_records (route, id);
CREATE INDEX history_records_by_change ON history_records (change_seq);

-- A queued notification's delivery, by its outbox id. `record` is unknown until the record is
-- written (the first attempt may be written before it).
CREATE TABLE history_deliveries (
    id         BIGINT PRIMARY KEY,
    record     BIGINT,
    state      TEXT NOT NULL,
    until      BIGINT,
    reason     TEXT,
    changed_at BIGINT NOT NULL,
    attempts   JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX history_deliveries_by_record ON history_deliveries (record);

-- A record's state: the worst of its notifications' states, or its verdict when none was queued.
CREATE VIEW history_summaries AS
SELECT r.*,
       coalesce((SELECT d.state FROM history_deliveries d WHERE d.record = r.id
                 ORDER BY CASE d.state WHEN 'dead' THEN 4 WHEN 'retrying' THEN 3
                                       WHEN 'pending' THEN 2 WHEN 'purged' THEN 1 ELSE 0 END DESC
                 LIMIT 1),
                (r.record::jsonb -> 'notifications' -> 0 -> 'delivery' ->> 'state'),
                r.verdict) AS state
FROM history_records r;
