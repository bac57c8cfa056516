-- Tamper-evident audit log: every event the server appends from now on carries its
-- predecessor's hash (prev_hash) and its own (hash): SHA-256, computed by the server (SQL has
-- none), over a canonical encoding of the row and prev_hash (server/src/store/audit_chain.rs), and the network
-- address the request or device connection that caused it came from (source; NULL for events
-- of the server itself). Rows recorded before this migration keep NULL in all three: the
-- chain still covers them, because their hashes are recomputed on every check and the first
-- stored prev_hash is the hash of the last of them (dispatchd appends an
-- 'audit_chain_started' event the first time it opens the database after this migration).
-- Never edit once landed.

ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
ALTER TABLE events ADD COLUMN source TEXT;
