-- Never a false success: what a device action asked for, idempotency keys on the console's
-- other creating requests, and the instance row's write counter (the readiness probe and the
-- fence written after a failed commit, see server/src/store/group_commit.rs).

-- A digest of what the action asked for, so that an `action_id` resent for a different action
-- is refused (`action_id_reused`) instead of answered `done`. NULL on rows written before.
ALTER TABLE device_actions ADD COLUMN fingerprint TEXT;

-- `Idempotency-Key` of the request that created the row (NULL when it sent none).
ALTER TABLE incidents ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX incidents_by_idempotency_key ON incidents (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE units ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX units_by_idempotency_key ON units (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
ALTER TABLE operators ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX operators_by_idempotency_key ON operators (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A retried request for an enrolment code withdraws the code it issued first and issues another
-- (only hashes are stored, so the first code cannot be answered again).
ALTER TABLE enrolment_codes ADD COLUMN idempotency_key TEXT;
CREATE INDEX enrolment_codes_by_idempotency_key ON enrolment_codes (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Bumped by every readiness probe and every fence: a write that must reach the disk.
ALTER TABLE instance ADD COLUMN writes_probed INTEGER NOT NULL DEFAULT 0;
