-- The full order channel: delivery states up to the officer's acknowledgement, cancel and
-- expiry, escalation stamps, idempotency keys, texts, multicast broadcasts (one message, one
-- tracked delivery per recipient), the SMS fallback and operator acknowledgement of alerts.
--
-- SQLite cannot change a CHECK constraint in place, so `orders` is rebuilt (SQLite's documented
-- twelve-step procedure). The store runs migrations with foreign keys switched off on that one
-- connection and runs `PRAGMA foreign_key_check` afterwards.

CREATE TABLE orders_rebuilt (
    id                   INTEGER PRIMARY KEY,
    incident_id          INTEGER NOT NULL REFERENCES incidents (id),
    unit_id              INTEGER NOT NULL REFERENCES units (id),
    device_id            INTEGER NOT NULL REFERENCES devices (id),
    state                TEXT NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'delivered', 'displayed', 'acknowledged',
                                          'accepted', 'declined', 'completed', 'cancelled',
                                          'expired')),
    created_by           INTEGER REFERENCES operators (id),
    created_at           INTEGER NOT NULL,
    delivered_at         INTEGER,
    displayed_at         INTEGER,
    acknowledged_at      INTEGER,
    decided_at           INTEGER,
    decline_reason       TEXT,
    completed_at         INTEGER,
    ended_at             INTEGER, -- cancelled or expired
    end_reason           TEXT,
    receipt_escalated_at INTEGER, -- no receipt within T1 of its priority
    ack_escalated_at     INTEGER, -- no acknowledgement within T2 of its priority
    idempotency_key      TEXT UNIQUE
);
INSERT INTO orders_rebuilt (id, incident_id, unit_id, device_id, state, created_by, created_at,
                            delivered_at, decided_at, decline_reason, completed_at, ended_at)
SELECT id, incident_id, unit_id, device_id, state, created_by, created_at,
       delivered_at, decided_at, decline_reason, completed_at,
       CASE WHEN state = 'cancelled' THEN COALESCE(decided_at, created_at) END
FROM orders;
DROP TABLE orders;
ALTER TABLE orders_rebuilt RENAME TO orders;
CREATE INDEX orders_by_incident ON orders (incident_id);
CREATE INDEX orders_by_unit ON orders (unit_id, state);
-- The escalation sweep reads only orders still waiting for the device or the officer.
CREATE INDEX orders_waiting ON orders (created_at)
    WHERE state IN ('queued', 'delivered', 'displayed', 'acknowledged');

-- Texts between the control room and a unit, both directions.
CREATE TABLE texts (
    id              INTEGER PRIMARY KEY,
    unit_id         INTEGER NOT NULL REFERENCES units (id),
    incident_id     INTEGER REFERENCES incidents (id),
    direction       TEXT NOT NULL CHECK (direction IN ('to_unit', 'from_unit')),
    author          TEXT NOT NULL, -- 'operator:<name>' or 'device:<id>'
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE
);
CREATE INDEX texts_by_unit ON texts (unit_id, id);

-- One broadcast (CAP 1.2 shaped); its recipients are rows of `deliveries`.
CREATE TABLE broadcasts (
    id              INTEGER PRIMARY KEY,
    created_by      INTEGER REFERENCES operators (id),
    sender          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    target          TEXT NOT NULL, -- JSON of the target as requested
    urgency         TEXT NOT NULL,
    severity        TEXT NOT NULL,
    certainty       TEXT NOT NULL,
    headline        TEXT NOT NULL,
    description     TEXT,
    instruction     TEXT,
    area_desc       TEXT,
    polygon         TEXT, -- JSON [[lat, lon], ...] when sent to an area
    expires_at      INTEGER,
    idempotency_key TEXT UNIQUE
);

ALTER TABLE deliveries ADD COLUMN text_id INTEGER REFERENCES texts (id);
ALTER TABLE deliveries ADD COLUMN broadcast_id INTEGER REFERENCES broadcasts (id);
ALTER TABLE deliveries ADD COLUMN unit_id INTEGER REFERENCES units (id);
ALTER TABLE deliveries ADD COLUMN displayed_at INTEGER;
ALTER TABLE deliveries ADD COLUMN acknowledged_at INTEGER;
UPDATE deliveries SET unit_id = (SELECT unit_id FROM devices d WHERE d.id = deliveries.device_id);
CREATE UNIQUE INDEX deliveries_by_message ON deliveries (device_id, message_id);
CREATE INDEX deliveries_by_broadcast ON deliveries (broadcast_id) WHERE broadcast_id IS NOT NULL;

-- Where the SMS fallback reaches a unit (E.164 or whatever the agency's gateway takes).
ALTER TABLE units ADD COLUMN sms_number TEXT;

-- Messages handed to the SMS gateway when the private channel did not deliver in time.
CREATE TABLE fallback_messages (
    id          INTEGER PRIMARY KEY,
    order_id    INTEGER NOT NULL REFERENCES orders (id),
    unit_id     INTEGER NOT NULL REFERENCES units (id),
    recipient   TEXT NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    gateway_ref TEXT,
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX fallback_pending ON fallback_messages (id) WHERE status = 'pending';

-- Operators' acknowledgement of console alerts (escalations); the alert itself is an event.
CREATE TABLE alert_acknowledgements (
    event_id        INTEGER PRIMARY KEY REFERENCES events (id),
    operator_id     INTEGER NOT NULL REFERENCES operators (id),
    acknowledged_at INTEGER NOT NULL
);
