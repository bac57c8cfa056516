-- Foundation schema: operators, devices, units, incidents, orders, per-device outbox, timeline.
-- Timestamps are INTEGER milliseconds since the Unix epoch (UTC). Never edit once landed.

-- One row: identity of this database, part of every device epoch so that a restored or
-- replaced database forces devices to resynchronise.
CREATE TABLE instance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE operators (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'supervisor', 'admin')),
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

-- Operator login sessions; only the SHA-256 of the cookie value is stored.
CREATE TABLE operator_sessions (
    token_hash  TEXT PRIMARY KEY,
    operator_id INTEGER NOT NULL REFERENCES operators (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE units (
    id           INTEGER PRIMARY KEY,
    call_sign    TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    home_station TEXT,
    status       TEXT NOT NULL DEFAULT 'available'
                 CHECK (status IN ('available', 'assigned', 'en_route', 'on_scene', 'out_of_service')),
    lat          REAL,
    lon          REAL,
    accuracy_m   REAL,
    fix_time     INTEGER, -- device clock of the last fix
    fix_received INTEGER, -- server clock when the last fix arrived
    created_at   INTEGER NOT NULL
);

-- One-time enrolment codes; only the SHA-256 of the normalised code is stored.
CREATE TABLE enrolment_codes (
    code_hash  TEXT PRIMARY KEY,
    unit_id    INTEGER NOT NULL REFERENCES units (id),
    created_by INTEGER NOT NULL REFERENCES operators (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    unit_id     INTEGER NOT NULL REFERENCES units (id),
    name        TEXT,
    token_hash  TEXT NOT NULL,
    epoch       TEXT NOT NULL,
    last_seq    INTEGER NOT NULL DEFAULT 0, -- highest seq allocated in this device's outbox
    ack_floor   INTEGER NOT NULL DEFAULT 0, -- highest seq the device has acknowledged
    enrolled_at INTEGER NOT NULL,
    revoked_at  INTEGER,
    last_seen   INTEGER
);
CREATE UNIQUE INDEX devices_one_active_per_unit ON devices (unit_id) WHERE revoked_at IS NULL;

CREATE TABLE incidents (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    priority   INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 4),
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'dispatched', 'closed')),
    lat        REAL NOT NULL,
    lon        REAL NOT NULL,
    address    TEXT,
    caller     TEXT,
    notes      TEXT,
    required_capabilities TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    created_by INTEGER REFERENCES operators (id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    closed_at  INTEGER,
    disposition TEXT
);
CREATE INDEX incidents_by_status ON incidents (status, created_at);

CREATE TABLE orders (
    id             INTEGER PRIMARY KEY,
    incident_id    INTEGER NOT NULL REFERENCES incidents (id),
    unit_id        INTEGER NOT NULL REFERENCES units (id),
    device_id      INTEGER NOT NULL REFERENCES devices (id),
    state          TEXT NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'delivered', 'accepted', 'declined', 'completed', 'cancelled')),
    created_by     INTEGER REFERENCES operators (id),
    created_at     INTEGER NOT NULL,
    delivered_at   INTEGER,
    decided_at     INTEGER,
    decline_reason TEXT,
    completed_at   INTEGER
);
CREATE INDEX orders_by_incident ON orders (incident_id);
CREATE INDEX orders_by_unit ON orders (unit_id, state);

-- The per-device outbox: what the channel pushes, in seq order, until acknowledged.
CREATE TABLE deliveries (
    device_id    INTEGER NOT NULL REFERENCES devices (id),
    seq          INTEGER NOT NULL,
    message_id   TEXT NOT NULL,
    order_id     INTEGER REFERENCES orders (id),
    body         TEXT NOT NULL, -- JSON of dispatch_protocol::Message
    queued_at    INTEGER NOT NULL,
    delivered_at INTEGER,
    PRIMARY KEY (device_id, seq)
);

-- Device actions already applied, so a resent action is answered without applying it twice.
-- Refused actions are not recorded: a refusal changes nothing.
CREATE TABLE device_actions (
    device_id  INTEGER NOT NULL REFERENCES devices (id),
    action_id  TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome = 'done'),
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, action_id)
);

-- Sampled position trail of every unit, for the timeline's map replay.
CREATE TABLE unit_positions (
    unit_id    INTEGER NOT NULL REFERENCES units (id),
    at         INTEGER NOT NULL,
    lat        REAL NOT NULL,
    lon        REAL NOT NULL,
    accuracy_m REAL
);
CREATE INDEX unit_positions_by_unit ON unit_positions (unit_id, at);

-- Append-only timeline and audit log: every state change, who did it and when (server clock).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL, -- 'operator:<name>', 'device:<id>' or 'system'
    incident_id INTEGER REFERENCES incidents (id),
    unit_id     INTEGER REFERENCES units (id),
    order_id    INTEGER REFERENCES orders (id),
    detail      TEXT NOT NULL DEFAULT '{}' -- JSON object
);
CREATE INDEX events_by_incident ON events (incident_id, id);
CREATE INDEX events_by_unit ON events (unit_id, id);

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
