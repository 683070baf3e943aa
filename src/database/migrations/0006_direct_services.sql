-- The service each device gets for what is published to its UUID as an ntfy topic
-- (crate::pushjet_server::direct): created the first time, remembered here so that every replica
-- sends through the same one.
CREATE TABLE pushjet_direct_services (
    device TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
