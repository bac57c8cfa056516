-- A second factor for operator accounts: a TOTP secret (RFC 6238) confirmed by a first code,
-- the last time step used (a code is taken once), and one-time recovery codes (SHA-256 only).
-- A secret being set up is kept apart until its first code confirms it.
ALTER TABLE operators ADD COLUMN totp_secret TEXT;
ALTER TABLE operators ADD COLUMN totp_pending_secret TEXT;
ALTER TABLE operators ADD COLUMN totp_enabled_at INTEGER;
ALTER TABLE operators ADD COLUMN totp_last_step INTEGER;

CREATE TABLE operator_recovery_codes (
    operator_id INTEGER NOT NULL REFERENCES operators (id),
    code_hash   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (operator_id, code_hash)
);
