-- What the agency knows about a place before anyone calls from it: hazards (a dog, weapons, a
-- violent occupant) and notes (gate code, entrance at the back). A point with a radius, or a
-- polygon (JSON [[lat, lon], ...]); shown at intake when a call's location matches, and sent with
-- every order and incident update to the tablet. Removed entries stay for the record.
CREATE TABLE premises (
    id          INTEGER PRIMARY KEY,
    label       TEXT NOT NULL,
    text        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'caution', 'danger')),
    lat         REAL,
    lon         REAL,
    radius_m    REAL,
    polygon     TEXT,
    -- The bounding box, for the lookup by location (a point's box holds its radius).
    min_lat     REAL NOT NULL,
    min_lon     REAL NOT NULL,
    max_lat     REAL NOT NULL,
    max_lon     REAL NOT NULL,
    expires_at  INTEGER,
    created_by  INTEGER REFERENCES operators (id),
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER,
    removed_by  INTEGER REFERENCES operators (id),
    CHECK ((polygon IS NULL) = (lat IS NOT NULL AND lon IS NOT NULL AND radius_m IS NOT NULL))
);
CREATE INDEX premises_by_box ON premises (min_lat, max_lat) WHERE removed_at IS NULL;
