-- Accounts and sessions to the standard of police systems: lockout after consecutive wrong
-- passwords, passwords an admin reset that must be changed at the next login, and sessions that
-- end when idle, can be listed and ended one by one (by their row id, never by the token hash).
ALTER TABLE operators ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
-- Locked until this time (ms); NULL when not locked. A lock without end is 9223372036854775807.
ALTER TABLE operators ADD COLUMN locked_until INTEGER;
ALTER TABLE operators ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operators ADD COLUMN password_changed_at INTEGER;

ALTER TABLE operator_sessions ADD COLUMN last_seen_at INTEGER;
ALTER TABLE operator_sessions ADD COLUMN source TEXT;
ALTER TABLE operator_sessions ADD COLUMN user_agent TEXT;
UPDATE operator_sessions SET last_seen_at = created_at;
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator_id);
