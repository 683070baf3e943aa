-- A kept request's body apart from its head (crate::history::kept): `request` holds the headers,
-- query, length and cut as JSON, `request_body` the body compressed by the bridge (an LZ4 block,
-- its length before it). Records written before keep the whole request, body included, in
-- `request` and have no `request_body`: both read.
ALTER TABLE history_records ADD COLUMN request_body BYTEA;
-- Already compressed: PostgreSQL need not try again.
ALTER TABLE history_records ALTER COLUMN request_body SET STORAGE EXTERNAL;
