-- Sessions named by an `id` column. They have always been named by their row id (0011), which
-- PostgreSQL does not have: with the column, the same statements name them on both databases.
-- `id INTEGER PRIMARY KEY` is the row id's alias, so every session keeps its id (copied from its
-- row id) and new ones are numbered as before. The token hash stays unique (and is now NOT NULL,
-- as on PostgreSQL). SQLite cannot change a primary key in place, so the table is rebuilt
-- (SQLite's documented procedure, foreign keys off on the migrating connection), with `id` as
-- the last column, where PostgreSQL's ALTER TABLE adds it.

CREATE TABLE operator_sessions_rebuilt (
    token_hash   TEXT NOT NULL UNIQUE,
    operator_id  INTEGER NOT NULL REFERENCES operators (id),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER,
    source       TEXT,
    user_agent   TEXT,
    id           INTEGER PRIMARY KEY
);
INSERT INTO operator_sessions_rebuilt (token_hash, operator_id, created_at, expires_at,
                                       last_seen_at, source, user_agent, id)
    SELECT token_hash, operator_id, created_at, expires_at, last_seen_at, source, user_agent,
           rowid
    FROM operator_sessions;
DROP TABLE operator_sessions;
ALTER TABLE operator_sessions_rebuilt RENAME TO operator_sessions;
CREATE INDEX operator_sessions_by_operator ON operator_sessions (operator_id);
