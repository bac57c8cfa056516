-- Tamper-evident audit log: every event the server appends from now on carries the SHA-256 of
-- its predecessor (prev_hash) and its own (hash), computed by the server (SQL has no SHA-256)
-- over a canonical encoding of the row (server/src/store/audit_chain.rs), and the network
-- address the request or device connection that caused it came from (source; NULL for events
-- of the server itself). Rows recorded before this migration keep NULL in all three: the
-- chain still covers them, because their hashes are recomputed on every check and the first
-- stored prev_hash is the hash of the last of them (the server appends an
-- 'audit_chain_started' event at its first start after this migration). Never edit once landed.

ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
ALTER TABLE events ADD COLUMN source TEXT;
