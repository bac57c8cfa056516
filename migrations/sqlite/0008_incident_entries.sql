-- The number to call the first caller back on.
ALTER TABLE incidents ADD COLUMN callback TEXT;

-- What is added to an incident after it was created: a line of narrative by an operator, or
-- another caller about the same incident. Append-only, like the timeline (each is also an
-- event there).
CREATE TABLE incident_entries (
    id              INTEGER PRIMARY KEY,
    incident_id     INTEGER NOT NULL REFERENCES incidents (id),
    kind            TEXT NOT NULL CHECK (kind IN ('narrative', 'caller')),
    text            TEXT,
    caller          TEXT,
    callback        TEXT,
    author_id       INTEGER REFERENCES operators (id),
    author          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idempotency_key TEXT
);
CREATE INDEX incident_entries_by_incident ON incident_entries (incident_id, id);
CREATE UNIQUE INDEX incident_entries_by_idempotency_key ON incident_entries (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE TRIGGER incident_entries_append_only_update BEFORE UPDATE ON incident_entries
BEGIN SELECT RAISE(ABORT, 'incident entries are append-only'); END;
CREATE TRIGGER incident_entries_append_only_delete BEFORE DELETE ON incident_entries
BEGIN SELECT RAISE(ABORT, 'incident entries are append-only'); END;

-- Intake looks for possible duplicates among incidents created or closed recently.
CREATE INDEX incidents_by_created ON incidents (created_at);
CREATE INDEX incidents_by_closed ON incidents (closed_at) WHERE closed_at IS NOT NULL;
