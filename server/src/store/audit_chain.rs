//! The hash chain over the append-only `events` table: each event stores the SHA-256 of a
//! canonical encoding of its columns and of its predecessor's hash, so that editing, inserting
//! or deleting a stored event breaks the chain where it happened. Computed by the writer as it
//! appends (`append_event`), checked by `dispatchd audit verify` on a read-only connection.
//!
//! Events recorded before migration 0012 store no hashes; they are chained all the same, with
//! hashes recomputed on every check, and the first stored `prev_hash` is the hash of the last
//! of them. The chain cannot show that events were cut off its end: an outside witness who
//! keeps copies of the head (`dispatchd audit head`, `GET /api/audit/head`) can.

use std::fmt;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::sql::{Param, Statements};
use super::Result as StoreResult;

/// The `prev_hash` of the first event: it has no predecessor.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hashed columns, in the order they are encoded (and inserted), before `prev_hash`.
pub(super) const HASHED_COLUMNS: &str =
    "id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source";

/// Appends an event: the [`HASHED_COLUMNS`], then `prev_hash` and `hash`.
pub(super) const INSERT_SQL: &str = "INSERT INTO events
    (id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source,
     prev_hash, hash)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// Number of columns in [`HASHED_COLUMNS`].
pub(super) const HASHED: usize = 10;

/// Starts every hashed encoding, so that no other hash of this program can collide with it;
/// the version changes if the encoding ever does.
const DOMAIN: &[u8] = b"dispatch-audit-event-v1\0";

/// The newest event and its hash: what the next event's `prev_hash` is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ChainHead {
    /// The newest event's id; 0 when there is none.
    pub id: i64,
    /// Its stored hash ([`GENESIS`] when there is no event); `None` when the newest event was
    /// recorded before the chain started (the server has not run on this database since
    /// migration 0012).
    pub hash: Option<String>,
}

/// The hash of an event whose [`HASHED_COLUMNS`] are `values` and whose predecessor's hash is
/// `prev_hash`: SHA-256, hex, over [`DOMAIN`], then each value and `prev_hash` (as text), each
/// encoded as a type byte (0 NULL, 1 integer, 2 real, 3 text, 4 blob) followed by nothing for
/// NULL, 8 big-endian bytes for an integer or a real (its IEEE 754 bits), and for text or a
/// blob its length in 8 big-endian bytes and then its bytes. Every value says how long it is,
/// so no two different rows share an encoding.
pub fn event_hash(values: &[Param<'_>; HASHED], prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    for value in values.iter().chain([&Param::Text(prev_hash)]) {
        match *value {
            Param::Null => h.update([0]),
            Param::Int(i) => {
                h.update([1]);
                h.update(i.to_be_bytes());
            }
            Param::Real(f) => {
                h.update([2]);
                h.update(f.to_bits().to_be_bytes());
            }
            Param::Text(text) => {
                h.update([3]);
                h.update((text.len() as u64).to_be_bytes());
                h.update(text);
            }
            Param::Blob(bytes) => {
                h.update([4]);
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(bytes);
            }
        }
    }
    hex::encode(h.finalize())
}

/// The stored head: the newest event and its stored hash.
///
/// # Errors
/// On a database error.
pub fn head(db: &mut dyn Statements) -> StoreResult<ChainHead> {
    Ok(match db.select_opt(HEAD_SQL, &[])? {
        Some(row) => ChainHead {
            id: row.get(0)?,
            hash: row.get(1)?,
        },
        None => ChainHead {
            id: 0,
            hash: Some(GENESIS.to_owned()),
        },
    })
}

/// Opens the database at `path` for reading only (nothing is migrated or written), and checks
/// that it has the chain's columns.
///
/// # Errors
/// When it cannot be opened, or its `events` table has no hash columns (migration 0012 has not
/// run: start dispatchd on it once).
pub fn open_read_only(path: &std::path::Path) -> anyhow::Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| anyhow::anyhow!("opening {} read-only: {e}", path.display()))?;
    let columns: i64 = db.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('events') WHERE name IN ('prev_hash', 'hash')",
        [],
        |r| r.get(0),
    )?;
    anyhow::ensure!(
        columns == 2,
        "{} has no audit chain: its events table lacks prev_hash and hash (start dispatchd on it once to migrate it)",
        path.display()
    );
    Ok(db)
}

/// Whether event `id` is stored with `hash`, as a witness recorded it: after [`verify`] passed,
/// this shows that no event up to `id` changed or went missing since. Id 0 is the empty
/// chain's head ([`GENESIS`]).
///
/// # Errors
/// On a database error (the outer `Result`); why the witness does not match (the inner one).
pub fn check_witness(db: &Connection, id: i64, hash: &str) -> rusqlite::Result<Result<(), String>> {
    if id == 0 {
        return Ok(if hash == GENESIS {
            Ok(())
        } else {
            Err("the head of the empty chain is the genesis hash".to_owned())
        });
    }
    let stored: Option<Option<String>> = db
        .prepare_cached("SELECT hash FROM events WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(match stored {
        None => Err(format!(
            "event {id} is missing (cut off the end of the log?)"
        )),
        Some(None) => Err(format!("event {id} stores no hash")),
        Some(Some(stored)) if stored != hash => Err(format!("event {id} has hash {stored}")),
        Some(Some(_)) => Ok(()),
    })
}

/// The newest event's id and stored hash (an index lookup, not a scan).
pub(super) const HEAD_SQL: &str = "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1";

/// The head as the chain defines it, recomputing every hash from the first event: for a
/// database whose newest events were recorded before the chain started. Reads the whole table.
///
/// # Errors
/// On a database error.
pub(super) fn recompute_head(db: &Connection) -> rusqlite::Result<(i64, String)> {
    let mut head = (0, GENESIS.to_owned());
    each_event(db, |row| {
        head = (row.id, event_hash(&row.hashed(), &head.1));
        Ok(())
    })?;
    Ok(head)
}

/// A whole chain that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events checked.
    pub events: u64,
    /// Of those, the events recorded before the chain started (no stored hash).
    pub unchained: u64,
    /// The newest event's id (0 when there is none).
    pub head_id: i64,
    /// Its hash ([`GENESIS`] when there is no event).
    pub head_hash: String,
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Event `id` follows `previous` (0: it is the first), but `previous + 1` is missing.
    Gap { id: i64, previous: i64 },
    /// Event `id` names another predecessor hash than its predecessor's recomputed one.
    PrevHash {
        id: i64,
        stored: String,
        expected: String,
    },
    /// Event `id`'s stored hash is not the hash of its columns.
    Hash {
        id: i64,
        stored: String,
        computed: String,
    },
    /// Event `id` stores no hash (or only one of the two) although events before it do.
    Unchained { id: i64 },
}

impl Broken {
    /// The event at which the chain breaks.
    pub fn event_id(&self) -> i64 {
        match self {
            Self::Gap { id, .. }
            | Self::PrevHash { id, .. }
            | Self::Hash { id, .. }
            | Self::Unchained { id } => *id,
        }
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gap { id, previous } => write!(
                f,
                "event {id}: gap: events {} to {} are missing (the event before it is {})",
                previous + 1,
                id - 1,
                if *previous == 0 {
                    "none".to_owned()
                } else {
                    previous.to_string()
                }
            ),
            Self::PrevHash {
                id,
                stored,
                expected,
            } => write!(
                f,
                "event {id}: prev_hash mismatch: stored {stored}, its predecessor hashes to {expected}"
            ),
            Self::Hash {
                id,
                stored,
                computed,
            } => write!(
                f,
                "event {id}: hash mismatch: stored {stored}, its columns hash to {computed}"
            ),
            Self::Unchained { id } => write!(
                f,
                "event {id}: no stored hash although earlier events are chained"
            ),
        }
    }
}

/// Recomputes the whole chain, oldest event first, and checks every link: ids follow one
/// another from 1, every stored `prev_hash` is its predecessor's hash, every stored `hash` is
/// the hash of its row. Events without stored hashes are accepted only before the first event
/// with them.
///
/// # Errors
/// On a database error (the outer `Result`); the first broken link (the inner one).
pub fn verify(db: &Connection) -> rusqlite::Result<Result<Verified, Broken>> {
    let mut done = Verified {
        events: 0,
        unchained: 0,
        head_id: 0,
        head_hash: GENESIS.to_owned(),
    };
    let mut broken = None;
    let mut chained = false;
    each_event(db, |row| {
        if broken.is_some() {
            return Ok(());
        }
        let computed = event_hash(&row.hashed(), &done.head_hash);
        let id = row.id;
        broken = if id != done.head_id + 1 {
            Some(Broken::Gap {
                id,
                previous: done.head_id,
            })
        } else {
            match (row.prev_hash, row.hash) {
                (None, None) if !chained => {
                    done.unchained += 1;
                    None
                }
                (Some(stored), Some(_)) if stored != done.head_hash => Some(Broken::PrevHash {
                    id,
                    stored,
                    expected: done.head_hash.clone(),
                }),
                (Some(_), Some(stored)) if stored != computed => Some(Broken::Hash {
                    id,
                    stored,
                    computed: computed.clone(),
                }),
                (Some(_), Some(_)) => {
                    chained = true;
                    None
                }
                _ => Some(Broken::Unchained { id }),
            }
        };
        done.events += 1;
        done.head_id = id;
        done.head_hash = computed;
        Ok(())
    })?;
    Ok(broken.map_or(Ok(done), Err))
}

/// One stored event as the chain sees it.
struct EventRow {
    id: i64,
    /// The [`HASHED_COLUMNS`], as stored.
    values: [Value; HASHED],
    prev_hash: Option<String>,
    hash: Option<String>,
}

impl EventRow {
    fn hashed(&self) -> [Param<'_>; HASHED] {
        std::array::from_fn(|i| Param::from(ValueRef::from(&self.values[i])))
    }
}

/// Calls `visit` with every event, oldest first, reading them one at a time.
fn each_event(
    db: &Connection,
    mut visit: impl FnMut(EventRow) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut statement = db.prepare(&format!(
        "SELECT {HASHED_COLUMNS}, prev_hash, hash FROM events ORDER BY id"
    ))?;
    let mut rows = statement.query([])?;
    while let Some(r) = rows.next()? {
        let mut values: [Value; HASHED] = std::array::from_fn(|_| Value::Null);
        for (i, value) in values.iter_mut().enumerate() {
            *value = r.get(i)?;
        }
        visit(EventRow {
            id: r.get(0)?,
            values,
            prev_hash: r.get(HASHED)?,
            hash: r.get(HASHED + 1)?,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(detail: &'a str, source: Option<&'a str>) -> [Param<'a>; HASHED] {
        [
            Param::Int(7),
            Param::Int(1_700_000_000_000),
            Param::Text("order_queued"),
            Param::Text("operator:ann"),
            Param::Int(3),
            Param::Null,
            Param::Int(9),
            Param::Text(detail),
            Param::Null,
            source.map_or(Param::Null, Param::Text),
        ]
    }

    /// The hash is fixed by the documented encoding: a change to it would orphan every stored
    /// chain, so it must be deliberate (and bump [`DOMAIN`]).
    #[test]
    fn the_hash_follows_the_documented_encoding() {
        let mut expected = Sha256::new();
        expected.update(DOMAIN);
        for field in [
            [&[1u8][..], &7i64.to_be_bytes()].concat(),
            [&[1u8][..], &1_700_000_000_000i64.to_be_bytes()].concat(),
            [&[3u8][..], &12u64.to_be_bytes(), b"order_queued"].concat(),
            [&[3u8][..], &12u64.to_be_bytes(), b"operator:ann"].concat(),
            [&[1u8][..], &3i64.to_be_bytes()].concat(),
            vec![0],
            [&[1u8][..], &9i64.to_be_bytes()].concat(),
            [&[3u8][..], &2u64.to_be_bytes(), b"{}"].concat(),
            vec![0],
            [&[3u8][..], &9u64.to_be_bytes(), b"127.0.0.1"].concat(),
            [&[3u8][..], &64u64.to_be_bytes(), GENESIS.as_bytes()].concat(),
        ] {
            expected.update(field);
        }
        assert_eq!(
            event_hash(&values("{}", Some("127.0.0.1")), GENESIS),
            hex::encode(expected.finalize())
        );
    }

    /// Every column and the predecessor change the hash, and NULL differs from the empty text
    /// (the encoding is unambiguous).
    #[test]
    fn the_insert_names_the_hashed_columns_in_order() {
        let named: String = INSERT_SQL.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            named.contains(&format!("({HASHED_COLUMNS}, prev_hash, hash)")),
            "{named}"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = event_hash(&values("{}", None), GENESIS);
        assert_ne!(base, event_hash(&values("{} ", None), GENESIS));
        assert_ne!(base, event_hash(&values("{}", Some("")), GENESIS));
        assert_ne!(base, event_hash(&values("{}", None), &"1".repeat(64)));
        for i in 0..HASHED {
            let mut changed = values("{}", None);
            changed[i] = match changed[i] {
                Param::Int(n) => Param::Int(n + 1),
                Param::Null => Param::Int(0),
                _ => Param::Text("x"),
            };
            assert_ne!(base, event_hash(&changed, GENESIS), "column {i}");
        }
    }

    /// A table shaped like `events`, without the append-only triggers, to break on purpose.
    fn events_table() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL,
                actor TEXT NOT NULL, incident_id INTEGER, unit_id INTEGER, order_id INTEGER,
                detail TEXT NOT NULL DEFAULT '{}', received_at INTEGER, prev_hash TEXT,
                hash TEXT, source TEXT)",
        )
        .unwrap();
        db
    }

    /// Appends event `id` as the writer does (chained) or as before the chain (`chained` false).
    fn append(db: &Connection, id: i64, chained: bool) {
        let detail = format!("{{\"n\":{id}}}");
        let row = [
            Value::Integer(id),
            Value::Integer(1000 + id),
            Value::Text("note".into()),
            Value::Text("system".into()),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Text(detail),
            Value::Null,
            Value::Text("10.0.0.1".into()),
        ];
        let (prev, hash) = if chained {
            let (_, prev) = recompute_head(db).unwrap();
            let hash = event_hash(
                &std::array::from_fn(|i| ValueRef::from(&row[i]).into()),
                &prev,
            );
            (Some(prev), Some(hash))
        } else {
            (None, None)
        };
        let mut params: Vec<Value> = row.to_vec();
        params.extend([prev.into(), hash.into()]);
        db.execute(INSERT_SQL, rusqlite::params_from_iter(params))
            .unwrap();
    }

    #[test]
    fn an_intact_chain_verifies_and_its_head_is_the_newest_hash() {
        let db = events_table();
        assert_eq!(
            verify(&db).unwrap().unwrap().head_hash,
            GENESIS,
            "an empty chain"
        );
        for id in 1..=3 {
            append(&db, id, false);
        }
        for id in 4..=6 {
            append(&db, id, true);
        }
        let verified = verify(&db).unwrap().unwrap();
        assert_eq!((verified.events, verified.unchained), (6, 3));
        let mut db = db;
        let stored = head(&mut db).unwrap();
        assert_eq!(stored.id, 6);
        assert_eq!(stored.hash.as_deref(), Some(verified.head_hash.as_str()));
        assert_eq!(recompute_head(&db).unwrap(), (6, verified.head_hash));
    }

    /// Each way of tampering is named at the event where it happened, also in the events
    /// recorded before the chain started.
    #[test]
    fn tampering_is_named_at_its_event() {
        let fresh = || {
            let db = events_table();
            for id in 1..=5 {
                append(&db, id, id > 2);
            }
            db
        };
        let broken = |db: &Connection| verify(db).unwrap().unwrap_err();

        let db = fresh();
        db.execute("UPDATE events SET detail = '{}' WHERE id = 4", [])
            .unwrap();
        assert!(matches!(broken(&db), Broken::Hash { id: 4, .. }));

        let db = fresh();
        db.execute("UPDATE events SET source = NULL WHERE id = 3", [])
            .unwrap();
        assert!(matches!(broken(&db), Broken::Hash { id: 3, .. }));

        // Rewriting an event's hash to match its new content moves the break to the next one.
        let db = fresh();
        db.execute("UPDATE events SET detail = '{}' WHERE id = 4", [])
            .unwrap();
        let rehashed = db
            .query_row(
                &format!("SELECT {HASHED_COLUMNS}, prev_hash FROM events WHERE id = 4"),
                [],
                |r| {
                    let row: [Value; HASHED] = std::array::from_fn(|i| r.get(i).unwrap());
                    let prev: String = r.get(HASHED)?;
                    Ok(event_hash(
                        &std::array::from_fn(|i| ValueRef::from(&row[i]).into()),
                        &prev,
                    ))
                },
            )
            .unwrap();
        db.execute("UPDATE events SET hash = ?1 WHERE id = 4", [rehashed])
            .unwrap();
        assert!(matches!(broken(&db), Broken::PrevHash { id: 5, .. }));

        let db = fresh();
        db.execute("DELETE FROM events WHERE id = 4", []).unwrap();
        assert_eq!(broken(&db), Broken::Gap { id: 5, previous: 3 });
        assert!(broken(&db).to_string().starts_with("event 5: gap"));

        let db = fresh();
        db.execute("DELETE FROM events WHERE id = 1", []).unwrap();
        assert_eq!(broken(&db), Broken::Gap { id: 2, previous: 0 });

        // A changed event from before the chain breaks the first stored link.
        let db = fresh();
        db.execute("UPDATE events SET kind = 'other' WHERE id = 2", [])
            .unwrap();
        assert!(matches!(broken(&db), Broken::PrevHash { id: 3, .. }));

        let db = fresh();
        db.execute(
            "UPDATE events SET hash = NULL, prev_hash = NULL WHERE id = 5",
            [],
        )
        .unwrap();
        assert_eq!(broken(&db), Broken::Unchained { id: 5 });
    }
}
