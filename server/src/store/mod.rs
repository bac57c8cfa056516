//! All SQL of the server, behind one `Store` handle that returns domain types.
//! SQLite today (WAL, `synchronous=FULL`); every write goes through one writer connection.

mod broadcasts;
mod checkpoint;
mod console;
mod devices;
mod escalation;
mod group_commit;
mod incidents;
mod operators;
mod orders;
mod outbox;
mod session_cache;
mod texts;
mod timeline;
mod units;

pub use broadcasts::{Broadcast, BroadcastCounts, MissingRecipient, NewBroadcast};
pub use console::{DeviceRecord, OperatorAccount, PositionChange, ResponseMilestones};
pub use devices::{DeviceAuth, Enrolled, PendingDelivery, ReceiptOutcome};
pub use escalation::{Alert, OverdueOrder, PendingFallback, Stage};
pub use incidents::IncidentPatch;
pub use operators::{Operator, SessionOperator};
pub use orders::{ActionOutcome, DeviceAction, QueuedOrder, Withdrawal};
pub use texts::Text;
pub use timeline::TrailPoint;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::domain::{Actor, Millis};

/// A storage failure, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts what is stored (duplicate, wrong state).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The disk is full: nothing was written; reads still work.
    #[error("storage is full")]
    StorageFull,
    #[error(transparent)]
    Other(#[from] sqlx::Error),
    /// From a statement of a group-committed write (run through rusqlite).
    #[error(transparent)]
    Batched(rusqlite::Error),
}

impl From<rusqlite::Error> for Error {
    /// Maps SQLite's "disk full" to [`Error::StorageFull`].
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Self::StorageFull;
        }
        Self::Batched(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Maps SQLite's "disk full" to [`Error::StorageFull`] and unique violations to a conflict.
    fn classify(e: sqlx::Error, unique_message: impl FnOnce() -> String) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return Self::conflict("duplicate", unique_message());
            }
            if db.code().as_deref() == Some("13") {
                return Self::StorageFull;
            }
        }
        Self::Other(e)
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    /// One connection: SQLite has one writer, and a single connection never meets a lock
    /// upgrade deadlock. The group-commit thread below shares it with the other writes.
    writer: SqlitePool,
    reader: SqlitePool,
    /// Copies the WAL back into the database file, off the write path (`checkpoint.rs`).
    checkpointer: SqlitePool,
    /// Batches the hot writes (receipts, officer actions, positions, orders, cancellations,
    /// texts to units) into shared transactions on the writer connection.
    batch: group_commit::GroupCommit,
    /// Operator sessions recently read, so that a request does not query for its cookie.
    sessions: std::sync::Arc<session_cache::SessionCache>,
}

impl Store {
    /// Opens (creating if needed) the database file, runs the embedded migrations and checks
    /// that the durability settings are really in force.
    ///
    /// # Errors
    /// When the file cannot be opened, a migration fails, or the database is not in WAL mode
    /// with `synchronous=FULL`.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Statement journals in memory: they only serve rolling back one failed statement
            // inside the open transaction (nothing durable lives there).
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", checkpoint::BACKSTOP_PAGES.to_string()),
            )
            .await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(true))
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        checkpoint::start(checkpointer.clone());
        let batch = group_commit::GroupCommit::start(writer.clone())?;
        let store = Self {
            writer,
            reader,
            checkpointer,
            batch,
            sessions: std::sync::Arc::default(),
        };
        store.assert_durable().await?;
        store.ensure_instance().await?;
        Ok(store)
    }

    async fn assert_durable(&self) -> anyhow::Result<()> {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&self.writer)
            .await?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.writer)
            .await?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal") && sync == 2,
            "database is not durable: journal_mode={mode}, synchronous={sync} (need wal and 2=FULL)"
        );
        Ok(())
    }

    async fn ensure_instance(&self) -> Result<()> {
        let id = crate::auth::random_hex(8);
        sqlx::query(
            "INSERT OR IGNORE INTO instance (id, instance_id, created_at) VALUES (1, $1, $2)",
        )
        .bind(id)
        .bind(crate::domain::now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Identity of this database, stable for its life; part of every device epoch.
    ///
    /// # Errors
    /// On a database error.
    pub async fn instance_id(&self) -> Result<String> {
        Ok(
            sqlx::query_scalar("SELECT instance_id FROM instance WHERE id = 1")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    /// Closes the pools, waiting for in-flight work.
    pub async fn close(&self) {
        self.checkpointer.close().await;
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// Runs the embedded migrations with foreign keys off on the migrating connection, as SQLite's
/// table-rebuild procedure requires, then, when a migration ran, checks that every reference
/// still resolves. (The check reads every row that holds a reference, so an ordinary restart,
/// which migrates nothing, skips it: after a crash, devices wait for the server to be back.)
async fn migrate(writer: &SqlitePool) -> anyhow::Result<()> {
    let mut conn = writer.acquire().await?;
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    let applied_before = applied_migrations(&mut conn).await?;
    let migrated = sqlx::migrate!("../migrations/sqlite").run(&mut *conn).await;
    let broken: Vec<(String, i64)> = if applied_migrations(&mut conn).await? == applied_before {
        Vec::new()
    } else {
        sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
            .fetch_all(&mut *conn)
            .await?
    };
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    migrated?;
    anyhow::ensure!(
        broken.is_empty(),
        "the migrated database has dangling references: {broken:?}"
    );
    Ok(())
}

/// How many migrations the database records as applied (none in a new file).
async fn applied_migrations(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<i64> {
    let table: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if table.is_none() {
        return Ok(0);
    }
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Appends one timeline event inside the caller's transaction.
async fn append_event(
    tx: &mut sqlx::SqliteConnection,
    at: Millis,
    kind: &str,
    actor: &Actor,
    refs: EventRefs,
    detail: serde_json::Value,
) -> Result<()> {
    sqlx::query(INSERT_EVENT)
        .bind(at)
        .bind(kind)
        .bind(actor.label())
        .bind(refs.incident)
        .bind(refs.unit)
        .bind(refs.order)
        .bind(detail.to_string())
        .execute(tx)
        .await
        .map_err(|e| Error::classify(e, String::new))?;
    Ok(())
}

/// [`append_event`] inside a group-committed write.
fn append_event_batched(
    db: &rusqlite::Connection,
    at: Millis,
    kind: &str,
    actor: &Actor,
    refs: EventRefs,
    detail: &serde_json::Value,
) -> Result<()> {
    db.prepare_cached(INSERT_EVENT)?.execute(rusqlite::params![
        at,
        kind,
        actor.label(),
        refs.incident,
        refs.unit,
        refs.order,
        detail.to_string()
    ])?;
    Ok(())
}

/// One timeline event; the parameters are numbered for both drivers.
const INSERT_EVENT: &str =
    "INSERT INTO events (at, kind, actor, incident_id, unit_id, order_id, detail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// What an event is about.
#[derive(Debug, Default, Clone, Copy)]
struct EventRefs {
    incident: Option<i64>,
    unit: Option<i64>,
    order: Option<i64>,
}

fn json_list(row: &sqlx::sqlite::SqliteRow, column: &str) -> Vec<String> {
    let text: String = row.get(column);
    serde_json::from_str(&text).unwrap_or_default()
}

/// Commits, turning "disk full" into [`Error::StorageFull`].
async fn commit(tx: sqlx::Transaction<'_, sqlx::Sqlite>) -> Result<()> {
    tx.commit()
        .await
        .map_err(|e| Error::classify(e, String::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by the foundation release (migration 1 only) keeps every order,
    /// delivery and event when the order-channel migration rebuilds `orders`.
    #[tokio::test]
    async fn upgrading_a_foundation_database_keeps_its_orders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let mut foundation = sqlx::migrate!("../migrations/sqlite");
        foundation.migrations = std::borrow::Cow::Owned(
            foundation
                .migrations
                .iter()
                .filter(|m| m.version == 1)
                .cloned()
                .collect(),
        );
        foundation.run(&pool).await.unwrap();
        sqlx::raw_sql(
            "INSERT INTO units (id, call_sign, kind, created_at) VALUES (1, 'P-1', 'car', 1);
             INSERT INTO devices (id, unit_id, token_hash, epoch, last_seq, enrolled_at)
                 VALUES (1, 1, 'h', 'e', 2, 1);
             INSERT INTO incidents (id, kind, priority, lat, lon, created_at, updated_at)
                 VALUES (1, 'theft', 2, 60.1, 24.9, 1, 1);
             INSERT INTO orders (id, incident_id, unit_id, device_id, state, created_at,
                                 delivered_at, decided_at)
                 VALUES (1, 1, 1, 1, 'accepted', 10, 11, 12),
                        (2, 1, 1, 1, 'cancelled', 20, NULL, 25);
             INSERT INTO deliveries (device_id, seq, message_id, order_id, body, queued_at)
                 VALUES (1, 1, 'order-1', 1, '{}', 10), (1, 2, 'order-2', 2, '{}', 20);
             INSERT INTO events (at, kind, actor, incident_id, unit_id, order_id)
                 VALUES (12, 'order_accepted', 'device:1', 1, 1, 1);",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open(&path).await.unwrap();
        let accepted = store.order(1).await.unwrap();
        assert_eq!(accepted.state, crate::domain::OrderState::Accepted);
        assert_eq!(
            (accepted.delivered_at_ms, accepted.decided_at_ms),
            (Some(11), Some(12))
        );
        let cancelled = store.order(2).await.unwrap();
        assert_eq!(cancelled.ended_at_ms, Some(25));
        let unit: Option<i64> =
            sqlx::query_scalar("SELECT unit_id FROM deliveries WHERE message_id = 'order-2'")
                .fetch_one(&store.reader)
                .await
                .unwrap();
        assert_eq!(unit, Some(1));
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1, "foreign keys are back on after migrating");
        assert_eq!(store.incident_timeline(1).await.unwrap().len(), 1);
    }
}
