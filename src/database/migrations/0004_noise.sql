-- Noise control per route (RATE, QUIET_HOURS, COLLAPSE): each route's noise state as JSON (the
-- rate window, the collapse keys sent lately, the notifications held for a digest, by release
-- time), and when its next held notifications fall due. A replica decides a route's webhooks
-- and takes its due digest under the row's lock (SELECT ... FOR UPDATE), in the transaction
-- that queues them.
CREATE TABLE noise_routes (
    route        TEXT PRIMARY KEY,
    state        TEXT NOT NULL,
    next_release BIGINT
);
CREATE INDEX noise_routes_by_release ON noise_routes (next_release)
    WHERE next_release IS NOT NULL;
