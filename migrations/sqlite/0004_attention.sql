-- What needs someone now: one row per reason an incident (or a unit's text) needs an operator,
-- raised and resolved by the attention review of the escalation sweep
-- (server/src/store/attention.rs). The `attention_raised` event is the console alert an
-- operator acknowledges; `attention_resolved` records when the reason went away.
CREATE TABLE attention (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER REFERENCES incidents (id), -- NULL only for a text sent outside an incident
    reason      TEXT NOT NULL CHECK (reason IN ('order_unreplaced', 'dispatch_overdue',
                                                'welfare_check', 'all_cleared', 'unread_text')),
    subject     INTEGER NOT NULL, -- the order, unit or text it is about; 0: the incident itself
    event_id    INTEGER NOT NULL REFERENCES events (id),
    raised_at   INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE UNIQUE INDEX attention_open ON attention (COALESCE(incident_id, 0), reason, subject)
    WHERE resolved_at IS NULL;
CREATE INDEX attention_by_event ON attention (event_id);

-- When an operator read a unit's text (texts from units only). Texts written before this
-- migration count as read, so that an upgrade does not raise an alert for every old text.
ALTER TABLE texts ADD COLUMN read_at INTEGER;
ALTER TABLE texts ADD COLUMN read_by INTEGER REFERENCES operators (id);
UPDATE texts SET read_at = created_at WHERE direction = 'from_unit';
CREATE INDEX texts_unread ON texts (id) WHERE direction = 'from_unit' AND read_at IS NULL;

-- The welfare check looks for the newest officer action of each unit on scene.
CREATE INDEX events_by_unit_actor ON events (unit_id, actor, at);
