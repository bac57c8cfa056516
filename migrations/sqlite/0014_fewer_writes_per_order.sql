-- Less work on every write of an order.
--
-- The state conditions that run on every write of an order, a unit or an incident, written as
-- comparisons joined by OR instead of `IN (…)`: for an `IN` list of more than two constants
-- SQLite builds a temporary b-tree each time a statement evaluates it, and a CHECK constraint or
-- the condition of a partial index is evaluated on every insert and on every update of the
-- column it reads (a partial index's twice: for the old row and the new). That was a fifth of
-- the writer thread's time at saturation. Same rules, same rows; only the form changes.
--
-- The partial indexes' conditions are exactly `OrderState::sql_in("state", …)` of their state
-- sets (SQLite uses a partial index only for a query that repeats its condition; the queries
-- use the same function). SQLite cannot change a CHECK constraint in place, so the three tables
-- are rebuilt (SQLite's documented procedure, foreign keys off on the migrating connection,
-- columns in their existing order).

CREATE TABLE orders_rebuilt (
    id                   INTEGER PRIMARY KEY,
    incident_id          INTEGER NOT NULL REFERENCES incidents (id),
    unit_id              INTEGER NOT NULL REFERENCES units (id),
    device_id            INTEGER NOT NULL REFERENCES devices (id),
    state                TEXT NOT NULL DEFAULT 'queued'
                         CHECK (state = 'queued' OR state = 'delivered' OR state = 'displayed'
                                OR state = 'acknowledged' OR state = 'accepted'
                                OR state = 'declined' OR state = 'completed'
                                OR state = 'cancelled' OR state = 'expired'),
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
    idempotency_key      TEXT UNIQUE,
    decline_detail       TEXT
);
INSERT INTO orders_rebuilt SELECT * FROM orders;
DROP TABLE orders;
ALTER TABLE orders_rebuilt RENAME TO orders;
CREATE INDEX orders_by_incident ON orders (incident_id);
CREATE INDEX orders_by_unit ON orders (unit_id, state);
-- The escalation sweep reads only orders still waiting for the device or the officer
-- (`OrderState::UNDECIDED`).
CREATE INDEX orders_waiting ON orders (created_at)
    WHERE (state = 'queued' OR state = 'delivered' OR state = 'displayed' OR state = 'acknowledged');
-- The attention review asks, for every open incident, whether any order still holds a unit
-- (`OrderState::ACTIVE`).
CREATE INDEX orders_active_by_incident ON orders (incident_id)
    WHERE (state = 'queued' OR state = 'delivered' OR state = 'displayed' OR state = 'acknowledged' OR state = 'accepted');

CREATE TABLE units_rebuilt (
    id           INTEGER PRIMARY KEY,
    call_sign    TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    capabilities TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
    home_station TEXT,
    status       TEXT NOT NULL DEFAULT 'available'
                 CHECK (status = 'available' OR status = 'assigned' OR status = 'en_route'
                        OR status = 'on_scene' OR status = 'out_of_service'),
    lat          REAL,
    lon          REAL,
    accuracy_m   REAL,
    fix_time     INTEGER, -- device clock of the last fix
    fix_received INTEGER, -- server clock when the last fix arrived
    created_at   INTEGER NOT NULL,
    sms_number   TEXT,
    idempotency_key TEXT,
    link_lost_at INTEGER
);
INSERT INTO units_rebuilt SELECT * FROM units;
DROP TABLE units;
ALTER TABLE units_rebuilt RENAME TO units;
CREATE UNIQUE INDEX units_by_idempotency_key ON units (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE incidents_rebuilt (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    priority   INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 4),
    status     TEXT NOT NULL DEFAULT 'open'
               CHECK (status = 'open' OR status = 'dispatched' OR status = 'closed'),
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
    disposition TEXT,
    idempotency_key TEXT,
    emergency_unit_id INTEGER REFERENCES units (id),
    callback   TEXT
);
INSERT INTO incidents_rebuilt SELECT * FROM incidents;
DROP TABLE incidents;
ALTER TABLE incidents_rebuilt RENAME TO incidents;
CREATE INDEX incidents_by_status ON incidents (status, created_at);
CREATE UNIQUE INDEX incidents_by_idempotency_key ON incidents (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX incidents_by_created ON incidents (created_at);
CREATE INDEX incidents_by_closed ON incidents (closed_at) WHERE closed_at IS NOT NULL;

-- No query reads a unit's events in id order: the welfare check, the one query by unit, uses
-- `events_by_unit_actor`. Every event (four per order) paid for this index with a write to a
-- page at a random place, and the group commit writes each such page to the log again.
DROP INDEX events_by_unit;
