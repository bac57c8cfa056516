//! All SQL of the server, behind one `Store` handle that returns domain types. SQLite (WAL,
//! `synchronous=FULL`): sqlx reads through a pool of read-only connections and runs the
//! migrations; every write goes through the one writer thread of `group_commit.rs`.

mod attention;
pub mod audit_chain;
mod broadcasts;
mod checkpoint;
mod console;
mod devices;
mod emergency;
mod escalation;
mod group_commit;
mod incident_entries;
mod incidents;
mod links;
mod operators;
mod orders;
mod outbox;
pub mod postgres;
mod premises;
mod presence;
mod reader;
pub mod row;
mod second_factor;
mod session_cache;
mod sessions;
pub mod source;
pub mod sql;
mod texts;
mod timeline;
mod units;
mod writer;

pub use attention::{Attention, Review};
pub use audit_chain::ChainHead;
pub use broadcasts::{Broadcast, BroadcastCounts, MissingRecipient, NewBroadcast};
pub use console::{
    response_milestones, DeviceRecord, OperatorAccount, PositionChange, ResponseMilestones,
};
pub use devices::{write_receipt, DeviceAuth, Enrolled, PendingDelivery, ReceiptOutcome};
pub use escalation::{Alert, OverdueOrder, PendingFallback, Stage};
pub use incident_entries::NewEntry;
pub use incidents::{IncidentPatch, PossibleDuplicate};
pub use operators::{
    insert_operator, write_account_change, write_login_refused, write_own_password, AccountChange,
    LockoutPolicy, LoginRefusal, Operator, LOCKED_FOR_GOOD,
};
pub use orders::{
    apply_device_action, insert_order, plan_fulfilled, write_withdrawal, ActionOutcome,
    DeviceAction, Inserted, Withdrawal,
};
pub use second_factor::{
    write_code_step, write_pending_second_factor, write_recovery_code_used,
    write_second_factor_confirmed,
};
pub use sessions::{
    delete_expired_sessions, delete_session, insert_session, write_session_touch, EndedSession,
    LoginOrigin, SessionOperator, SessionRecord,
};
pub use texts::Text;
pub use timeline::TrailPoint;

use sql::{params, Param, Sql, Statements};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use group_commit::GroupCommit;
use reader::Reader;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, SqlitePool};
use writer::Writer;

use crate::domain::{Actor, Millis, Unit};

/// A storage failure, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts what is stored (duplicate, wrong state).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The disk is full: nothing was written; reads still work.
    #[error("storage is full; nothing was saved")]
    StorageFull,
    /// The storage failed (I/O error, read-only, locked, cannot be opened), or the write shared
    /// its transaction with one that failed: nothing was written; retrying may succeed.
    #[error("the storage failed: {0}")]
    StorageFailed(String),
    #[error("database read failed: {0}")]
    Read(sqlx::Error),
    /// A statement of a write failed for another reason (a bug, not the storage).
    #[error("database write failed: {0}")]
    Write(rusqlite::Error),
    /// A statement's result was not what its code reads (no row, another type): a bug.
    #[error("database statement failed: {0}")]
    Statement(String),
    /// A statement on PostgreSQL failed for another reason than the storage or the connection.
    #[error("database statement failed: {0}")]
    Postgres(::postgres::Error),
    /// The code of a write panicked (a bug); its batch was rolled back.
    #[error("a write failed unexpectedly: {0}")]
    Panicked(String),
}

impl From<rusqlite::Error> for Error {
    /// Storage faults (full, I/O error, read-only, locked, unopenable, corrupt) by kind.
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as Code;
        match e.sqlite_error_code() {
            Some(Code::DiskFull) => Self::StorageFull,
            Some(
                Code::SystemIoFailure
                | Code::ReadOnly
                | Code::CannotOpen
                | Code::DatabaseBusy
                | Code::DatabaseLocked
                | Code::DatabaseCorrupt
                | Code::NotADatabase
                | Code::FileLockingProtocolFailed,
            ) => Self::StorageFailed(e.to_string()),
            _ => Self::Write(e),
        }
    }
}

impl From<::postgres::Error> for Error {
    /// The database, not the statement, at fault: the connection lost or never made, the
    /// server shutting down or now a standby (25006), out of disk (53100) or other resources
    /// (53), an I/O error (58) or corruption (XX001/XX002), a deadlock or serialization
    /// failure (40001/40P01).
    fn from(e: ::postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No answer from the server: the connection failed, or a value did not convert.
            let io = std::error::Error::source(&e)
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
            return if e.is_closed() || io {
                Self::StorageFailed(format!("the database connection failed: {e}"))
            } else {
                Self::Postgres(e)
            };
        };
        let code = db.code().code();
        if code == "53100" {
            return Self::StorageFull;
        }
        let fault = [
            "08", "53", "57P", "58", "XX001", "XX002", "25006", "40001", "40P01",
        ]
        .iter()
        .any(|prefix| code.starts_with(prefix));
        if fault {
            Self::StorageFailed(format!("{} ({code})", db.message()))
        } else {
            Self::Postgres(e)
        }
    }
}

impl From<sqlx::Error> for Error {
    /// A read that failed because of the storage (I/O error, cannot open) is a storage failure.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // Primary result codes: 10 I/O error, 13 full, 14 cannot open.
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            match primary {
                Some(13) => return Self::StorageFull,
                Some(10 | 14) => return Self::StorageFailed(db.message().to_owned()),
                _ => {}
            }
        }
        Self::Read(e)
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

    /// A refusal that a write decides before it changes anything: the rest of its batch is
    /// unaffected.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::NotFound(_) | Self::Conflict { .. })
    }

    /// Whether the storage, not the request, is at fault: retrying later may succeed.
    pub fn is_storage_fault(&self) -> bool {
        matches!(self, Self::StorageFull | Self::StorageFailed(_))
    }

    /// What the other writes of a batch are told when this error rolled the batch back.
    fn for_batch(&self) -> Self {
        match self {
            Self::StorageFull => Self::StorageFull,
            Self::StorageFailed(why) => Self::StorageFailed(why.clone()),
            other => Self::StorageFailed(format!(
                "not saved: another write of its transaction failed ({other})"
            )),
        }
    }
}

/// Something a committed write changed that the rest of the server must learn of.
#[derive(Debug, Clone)]
pub enum Change {
    /// An entry was committed to a device's outbox: hand it to the device's session.
    Delivery {
        device_id: i64,
        delivery: PendingDelivery,
    },
    /// A unit's status, device or details changed: the unit as it now is.
    Unit(Unit),
    /// A unit's newest fix was stored: the unit as it now is (its `device_id` is not read).
    Moved(Box<Unit>),
    /// A device's credential is no longer valid: close its connection with `code`.
    DeviceClosed {
        device_id: i64,
        code: u16,
        reason: &'static str,
    },
    /// A message was queued for the SMS gateway.
    FallbackQueued,
    /// The device connected on this node with generation `generation` (on PostgreSQL): the
    /// other nodes close their older connections of it.
    Connected { device_id: i64, generation: i64 },
}

/// The changes of one committed batch, in commit order.
#[derive(Debug, Default)]
pub struct Committed {
    pub changes: Vec<Change>,
    /// Whether the batch appended timeline events.
    pub events_appended: bool,
    /// Writes committed in the batch.
    pub writes: usize,
    /// From BEGIN to the end of COMMIT.
    pub took: std::time::Duration,
}

/// Hears every committed batch, on the writer thread, right after its COMMIT and before any of
/// its callers is answered. It must not block: it hands work on (wakes, channels) and returns.
pub trait CommitListener: Send + Sync + 'static {
    fn committed(&self, batch: Committed);
    /// A batch failed: rolled back, every caller refused.
    fn failed(&self) {}
}

/// Nobody listens (command-line tools, tests of the store alone).
impl CommitListener for () {
    fn committed(&self, _: Committed) {}
}

/// Handle to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    reader: Reader,
    /// Copies the WAL back into the database file, off the write path (`checkpoint.rs`);
    /// `None` on read-only storage.
    checkpointer: Option<SqlitePool>,
    /// The one write path.
    writer: Writer,
    /// Operator sessions recently read, so that a request does not query for its cookie.
    sessions: Arc<session_cache::SessionCache>,
    /// Identity of this database, read once at open (it never changes).
    instance_id: Arc<str>,
}

/// Reads wait this long for a lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

impl Store {
    /// Opens (creating if needed, mode 0600) the database file, runs the embedded migrations
    /// and starts the writer, whose connection must be durable (WAL, `synchronous=FULL`).
    /// `listener` hears every committed batch.
    ///
    /// On a read-only file system the store opens for reads only (every write then fails with
    /// [`Error::StorageFailed`] until a restart on writable storage), provided the database
    /// exists and is fully migrated.
    ///
    /// # Errors
    /// When the file cannot be opened, a migration fails, or the writer is not durable.
    pub async fn open(path: &Path, listener: Arc<dyn CommitListener>) -> anyhow::Result<Self> {
        let read_only = read_only_file_system(path)?;
        if read_only {
            anyhow::ensure!(
                path.exists(),
                "{} is on a read-only file system and does not exist",
                path.display()
            );
            tracing::error!(path = %path.display(), "the database is on a read-only file system: serving reads only");
        } else {
            create_private_file(path)?;
            let mut conn = SqliteConnectOptions::from_str("sqlite://")?
                .filename(path)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                .connect()
                .await?;
            let migrated = migrate(&mut conn).await;
            conn.close().await?;
            migrated?;
        }
        // On read-only storage without a write-ahead log the file is complete and cannot change:
        // read it as immutable (SQLite could not create the shared-memory file it wants).
        let immutable = read_only && !wal_path(path).exists();
        let reader_options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .immutable(immutable)
            .busy_timeout(BUSY_TIMEOUT);
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(reader_options)
            .await?;
        let checkpointer = if read_only {
            None
        } else {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(
                    SqliteConnectOptions::from_str("sqlite://")?
                        .filename(path)
                        .busy_timeout(BUSY_TIMEOUT),
                )
                .await?;
            checkpoint::start(pool.clone());
            Some(pool)
        };
        let group_commit = GroupCommit::start(path, read_only, listener)?;
        if read_only {
            ensure_migrated(&reader).await?;
        } else {
            start_audit_chain(&group_commit).await?;
        }
        let writer = Writer::Sqlite(group_commit);
        if !read_only {
            ensure_instance(&writer).await?;
        }
        Self::with(Reader::Sqlite(reader), checkpointer, writer).await
    }

    /// Opens the store on PostgreSQL: the writer connects to the host that accepts writes and
    /// migrates the schema (`postgres::PostgresWriter`), the reads go to the same primary.
    /// `listener` hears every committed batch.
    ///
    /// # Errors
    /// When no host accepts writes, its commits are not durable, or a migration fails.
    pub async fn open_postgres(
        settings: postgres::PostgresSettings,
        listener: Arc<dyn CommitListener>,
    ) -> anyhow::Result<Self> {
        let writer = postgres::PostgresWriter::start(settings.clone(), listener).await?;
        let writer = Writer::Postgres(writer);
        ensure_instance(&writer).await?;
        let reader = Reader::Postgres(postgres::PostgresReader::new(settings));
        Self::with(reader, None, writer).await
    }

    async fn with(
        reader: Reader,
        checkpointer: Option<SqlitePool>,
        writer: Writer,
    ) -> anyhow::Result<Self> {
        let instance_id: String = reader
            .value("SELECT instance_id FROM instance WHERE id = 1", &[])
            .await?
            .ok_or_else(|| anyhow::anyhow!("the database has no instance row"))?;
        Ok(Self {
            reader,
            checkpointer,
            writer,
            sessions: Arc::default(),
            instance_id: instance_id.into(),
        })
    }

    /// This node's name in a cluster on PostgreSQL; `None` on SQLite, where one node is all.
    pub fn node(&self) -> Option<&str> {
        self.reader
            .postgres_settings()
            .map(postgres::PostgresSettings::node)
    }

    /// On PostgreSQL, starts listening to the other nodes of the cluster
    /// ([`postgres::bus::listen`]); `None` on SQLite.
    ///
    /// # Errors
    /// When the listening thread cannot start.
    pub fn listen_to_cluster(&self) -> Option<anyhow::Result<postgres::bus::Listening>> {
        self.reader.postgres_settings().map(postgres::bus::listen)
    }

    /// [`Store::open`] with nobody listening for commits (command-line tools, tests).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub async fn open_standalone(path: &Path) -> anyhow::Result<Self> {
        Self::open(path, Arc::new(())).await
    }

    /// The epoch a device of enrolment epoch `device_epoch` is told: this database's identity
    /// and the enrolment's, so that a restored or replaced database or a re-enrolment forces a
    /// resync.
    pub fn device_epoch(&self, device_epoch: &str) -> String {
        format!("{}-{device_epoch}", self.instance_id)
    }

    /// On PostgreSQL, how many standbys a COMMIT waits for now (0: a confirmed write is on the
    /// primary alone, which can lose it with its disk); `None` on SQLite.
    ///
    /// # Errors
    /// When the database does not answer.
    pub async fn synchronous_standbys(&self) -> Result<Option<i64>> {
        match self.reader.dialect() {
            sql::Dialect::Sqlite => Ok(None),
            sql::Dialect::Postgres => {
                self.reader
                    .value(
                        "SELECT CASE WHEN current_setting('synchronous_commit')
                                          IN ('on', 'remote_apply', 'remote_write')
                                     THEN count(*) ELSE 0 END
                         FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')",
                        &[],
                    )
                    .await
            }
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.reader.is_ready().await
    }

    /// Whether a write reaches the disk now: a small durable write through the writer (unless
    /// the last batch committed, within the last second).
    ///
    /// # Errors
    /// Why nothing can be written: [`Error::StorageFull`] or [`Error::StorageFailed`].
    pub async fn probe_write(&self) -> Result<()> {
        if crate::domain::now_ms() - self.writer.last_commit() < 1_000 {
            return Ok(());
        }
        self.writer
            .write(|tx| {
                tx.run(
                    "UPDATE instance SET writes_probed = writes_probed + 1 WHERE id = 1",
                    &[],
                )?;
                Ok(())
            })
            .await
    }

    /// Closes the pools, waiting for in-flight reads.
    pub async fn close(&self) {
        if let Some(pool) = &self.checkpointer {
            pool.close().await;
        }
        self.reader.close().await;
    }
}

impl Store {
    /// Gives a restored database a new identity (every tablet's epoch changes, so each
    /// resynchronises) and records the restore (`restored`), naming the backup's time and the
    /// identity it had.
    ///
    /// # Errors
    /// On a storage failure (the identity is then unchanged).
    pub async fn take_new_identity(&self, backup_created_at: &str, previous: &str) -> Result<()> {
        let id = random_hex(8);
        let detail = serde_json::json!({
            "backup_created_at": backup_created_at,
            "previous_instance_id": previous,
            "instance_id": id,
        });
        self.writer
            .write(move |tx| {
                tx.run(
                    "UPDATE instance SET instance_id = ?1 WHERE id = 1",
                    params![&id],
                )?;
                append_event(
                    tx,
                    crate::domain::now_ms(),
                    "restored",
                    &Actor::System,
                    EventRefs::default(),
                    &detail,
                )
            })
            .await
    }
}

/// Gives a new database its identity (once: later opens change nothing).
async fn ensure_instance(writer: &Writer) -> Result<()> {
    let id = random_hex(8);
    writer
        .write(move |tx| {
            tx.run(
                "INSERT INTO instance (id, instance_id, created_at) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
                params![&id, crate::domain::now_ms()],
            )?;
            Ok(())
        })
        .await
}

/// On read-only storage nothing can be migrated: the database must be current already.
async fn ensure_migrated(reader: &SqlitePool) -> anyhow::Result<()> {
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(reader)
        .await?;
    let embedded = sqlx::migrate!("../migrations/sqlite").iter().count();
    anyhow::ensure!(
        usize::try_from(applied).unwrap_or_default() == embedded,
        "the database on read-only storage needs migrating ({applied} of {embedded} applied)"
    );
    Ok(())
}

/// `n` random bytes from the OS generator, hex-encoded.
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The write-ahead log next to a database file.
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// Whether the directory that holds `path` is on a file system mounted read-only.
fn read_only_file_system(path: &Path) -> anyhow::Result<bool> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let stat = rustix::fs::statvfs(dir)
        .map_err(|e| anyhow::anyhow!("cannot inspect {}: {e}", dir.display()))?;
    Ok(stat.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// Creates the database file readable by its owner only (SQLite gives the WAL and shared-memory
/// files the database file's mode), unless it exists.
fn create_private_file(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::anyhow!("creating {}: {e}", path.display())),
    }
}

/// Runs the embedded migrations with foreign keys off on the migrating connection, as SQLite's
/// table-rebuild procedure requires, then, when a migration ran, checks that every reference
/// still resolves. (The check reads every row that holds a reference, so an ordinary restart,
/// which migrates nothing, skips it: after a crash, devices wait for the server to be back.)
async fn migrate(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    let applied_before = applied_migrations(conn).await?;
    let migrated = sqlx::migrate!("../migrations/sqlite").run(&mut *conn).await;
    let broken: Vec<(String, i64)> = if applied_migrations(conn).await? == applied_before {
        Vec::new()
    } else {
        sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
            .fetch_all(&mut *conn)
            .await?
    };
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

/// Appends one timeline event inside the running write, chained to the newest event
/// (`audit_chain.rs`) and stamped with the address of the request or device connection that
/// queued the write. The event's id is the newest id plus one, so that ids have no gaps.
fn append_event(
    tx: &mut dyn Sql,
    at: Millis,
    kind: &str,
    actor: &Actor,
    refs: EventRefs,
    detail: &serde_json::Value,
) -> Result<()> {
    let (head_id, prev_hash) = chain_head(tx)?;
    let id = head_id + 1;
    let (label, detail) = (actor.label(), detail.to_string());
    let source = tx.source().map(str::to_owned);
    let row: [Param<'_>; audit_chain::HASHED] = [
        id.into(),
        at.into(),
        kind.into(),
        (&label).into(),
        refs.incident.into(),
        refs.unit.into(),
        refs.order.into(),
        (&detail).into(),
        tx.received_at().into(),
        source.as_ref().into(),
    ];
    let hash = audit_chain::event_hash(&row, &prev_hash);
    let mut params = row.to_vec();
    params.extend([Param::from(&prev_hash), Param::from(&hash)]);
    tx.run(audit_chain::INSERT_SQL, &params)?;
    tx.set_chain_head(id, hash);
    tx.events_appended();
    Ok(())
}

/// The newest event's id and hash in the running transaction: remembered once the batch has
/// appended an event, otherwise read (one index lookup). Every event since the chain started
/// stores its hash, and [`Store::open`] starts the chain (`start_audit_chain`) before any write.
fn chain_head(tx: &mut dyn Sql) -> Result<(i64, String)> {
    if let Some(head) = tx.chain_head() {
        return Ok(head.clone());
    }
    let head = audit_chain::head(tx)?;
    let hash = head.hash.ok_or_else(|| {
        Error::Statement(format!(
            "event {} was recorded before the audit chain started",
            head.id
        ))
    })?;
    Ok((head.id, hash))
}

/// The first time the database is opened after migration 0012, if it has events, records where
/// the chain starts: an `audit_chain_started` event whose `prev_hash` is the recomputed hash of all the
/// events before it (a full read, once). Later starts find the newest event chained and change
/// nothing.
async fn start_audit_chain(writer: &GroupCommit) -> Result<()> {
    writer
        .write_sqlite(|tx| {
            let head = audit_chain::head(tx)?;
            if head.hash.is_some() {
                return Ok(());
            }
            // The events before the chain, hashed as if chained: the new event follows them.
            let (id, hash) = audit_chain::recompute_head(tx)?;
            tx.set_chain_head(id, hash);
            let unchained: i64 = tx
                .select_one("SELECT COUNT(*) FROM events WHERE hash IS NULL", &[])?
                .get(0)?;
            append_event(
                tx,
                crate::domain::now_ms(),
                "audit_chain_started",
                &Actor::System,
                EventRefs::default(),
                &serde_json::json!({ "unchained_events": unchained }),
            )
        })
        .await
}

/// The tables whose rows a request with an `Idempotency-Key` creates (orders answer more than
/// an id: `orders/create.rs`).
#[derive(Debug, Clone, Copy)]
enum Keyed {
    Incidents,
    Units,
    Operators,
    Broadcasts,
    Texts,
}

/// The id of the row an earlier request with `key` created, if any.
fn created_earlier(
    db: &mut dyn Statements,
    table: Keyed,
    key: Option<&str>,
) -> Result<Option<i64>> {
    let Some(key) = key else { return Ok(None) };
    let sql = match table {
        Keyed::Incidents => "SELECT id FROM incidents WHERE idempotency_key = ?1",
        Keyed::Units => "SELECT id FROM units WHERE idempotency_key = ?1",
        Keyed::Operators => "SELECT id FROM operators WHERE idempotency_key = ?1",
        Keyed::Broadcasts => "SELECT id FROM broadcasts WHERE idempotency_key = ?1",
        Keyed::Texts => "SELECT id FROM texts WHERE idempotency_key = ?1",
    };
    db.select_opt(sql, params![key])?
        .map(|row| row.get(0))
        .transpose()
}

/// What an event is about.
#[derive(Debug, Default, Clone, Copy)]
struct EventRefs {
    incident: Option<i64>,
    unit: Option<i64>,
    order: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteJournalMode;

    /// A new database at `path` as the release with migrations up to `version` left it.
    async fn migrated_to(path: &Path, version: i64) -> sqlx::SqlitePool {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let mut migrator = sqlx::migrate!("../migrations/sqlite");
        migrator.migrations = std::borrow::Cow::Owned(
            migrator
                .migrations
                .iter()
                .filter(|m| m.version <= version)
                .cloned()
                .collect(),
        );
        migrator.run(&pool).await.unwrap();
        pool
    }

    /// A database written by the foundation release (migration 1 only) keeps every order,
    /// delivery and event when the order-channel migration rebuilds `orders`.
    #[tokio::test]
    async fn upgrading_a_foundation_database_keeps_its_orders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let pool = migrated_to(&path, 1).await;
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

        let store = Store::open_standalone(&path).await.unwrap();
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
                .fetch_one(store.reader.pool())
                .await
                .unwrap();
        assert_eq!(unit, Some(1));
        let foreign_keys: i64 = store
            .writer
            .sqlite()
            .write_sqlite(|tx| Ok(tx.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1, "the writer checks foreign keys");
        assert_eq!(store.incident_timeline(1).await.unwrap().len(), 1);

        // The event from before the chain is covered by it: the first start appended the
        // chain's first stored link, and a second start appends nothing.
        store.close().await;
        drop(store);
        let store = Store::open_standalone(&path).await.unwrap();
        let db = audit_chain::open_read_only(&path).unwrap();
        let verified = audit_chain::verify(&db).unwrap().unwrap();
        assert_eq!((verified.events, verified.unchained), (2, 1));
        let started = store.audit_log(1, 10).await.unwrap();
        assert_eq!(started.len(), 1);
        assert_eq!(started[0].kind, "audit_chain_started");
        assert_eq!(started[0].detail["unchained_events"], 1);
        let head = store.audit_head().await.unwrap();
        assert_eq!((head.id, head.hash), (2, Some(verified.head_hash)));
    }

    /// Sessions keep their ids (their row ids until migration 0017 made `id` the alias) and
    /// tokens across the migration, and new ones are numbered after them.
    #[tokio::test]
    async fn upgrading_keeps_the_session_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let pool = migrated_to(&path, 16).await;
        let far = crate::domain::now_ms() + 3_600_000;
        sqlx::raw_sql(&format!(
            "INSERT INTO operators (id, username, password_hash, role, created_at)
                 VALUES (1, 'ann', 'x', 'operator', 1);
             INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at,
                                            last_seen_at, source, user_agent)
                 VALUES ('t1', 1, 1, {far}, 1, '192.0.2.1', 'ua'), ('t2', 1, 2, {far}, 2, NULL, NULL),
                        ('t3', 1, 3, {far}, 3, NULL, NULL);
             DELETE FROM operator_sessions WHERE token_hash = 't2';"
        ))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = Store::open_standalone(&path).await.unwrap();
        let records = store.session_records(Some(1)).await.unwrap();
        let kept: Vec<_> = records
            .iter()
            .map(|r| (r.id, r.source.as_deref(), r.user_agent.as_deref()))
            .collect();
        assert_eq!(kept, [(3, None, None), (1, Some("192.0.2.1"), Some("ua"))]);
        assert_eq!(store.session_id("t3").await.unwrap(), Some(3));
        let ann = store.operator(1).await.unwrap();
        let new = store
            .create_session("t4", &ann, far, sessions::LoginOrigin::default())
            .await
            .unwrap();
        assert_eq!(new, 4);
        assert_eq!(
            store
                .end_session(1, Some(1), &ann.actor(), "logout")
                .await
                .unwrap()
                .map(|s| s.id),
            Some(1)
        );
    }
}
