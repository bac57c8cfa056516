//! The one write path: every write to the database is a job queued here, and one thread runs
//! the jobs that are waiting back to back inside a single transaction on a connection it owns,
//! then commits once. Every caller gets its answer only after that commit, so "acknowledged
//! means durable" holds while one fsync covers the whole batch. Right after the commit, before
//! anyone is answered, the batch's changes go to the [`CommitListener`] in commit order: the
//! one place that wakes device sessions, the live index and the console feed.
//!
//! A job decides any refusal (not found, conflict) before it changes a row, and a refusal
//! leaves the rest of its batch alone. Any other error (a statement, BEGIN or COMMIT failing:
//! disk full, I/O error, read-only storage) rolls the whole batch back and every caller of the
//! batch gets an error, never a confirmation. The connection is then brought back to a clean
//! state (rolled back, or closed and opened again) before the next batch.
//!
//! A COMMIT whose fsync failed may have left its frames in the write-ahead log, where a restart
//! would find them and revive writes whose callers were told they failed. So after a failed
//! COMMIT the thread writes a small "fence" transaction over the same place in the log (and
//! keeps trying before each later batch until one lands); from then on those frames can never be
//! read back. The failed batch's callers are answered only after that first attempt, so a crash
//! right after the answer finds the fence in place. For the same reason the thread holds a second, read-only connection for as long
//! as it runs: when the writer connection has to be closed and opened again after a failure, the
//! database is still open in this process, so SQLite keeps its index of the log instead of
//! rebuilding it from the log file, where it would find the failed COMMIT's frames intact.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::BACKSTOP_PAGES;
use super::sql::{
    sqlite_insert, sqlite_run, sqlite_select, Dialect, Param, Sql, SqlRow, Statements, WriteContext,
};
use super::{CommitListener, Committed, Error, Result};
use crate::domain::{now_ms, Millis};

/// Most writes in one transaction; bounds how long the first of them waits for the commit.
const MAX_BATCH: usize = 256;

/// Writes waiting for the batching thread; callers beyond this wait for room.
pub(super) const QUEUE: usize = 4096;

/// Prepared statements kept by the writer connection: more than all the distinct statements of
/// the writes (about 70), so none is evicted and prepared again mid-batch (rusqlite keeps 16 by
/// default).
const CACHED_STATEMENTS: usize = 128;

/// How long a write waits for another connection's lock (the checkpointer's) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why every write fails on a store opened on read-only storage.
const READ_ONLY: &str =
    "the database was opened on a read-only file system; restart dispatchd once it is writable";

pub(super) type Erased = Box<dyn Any + Send>;
type Work = Box<dyn FnOnce(&mut Tx<'_>) -> Result<Erased> + Send>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Erased>>,
    /// The address of the request or device connection that queued the job.
    source: Option<String>,
}

/// The transaction a job runs in: the writer connection (through `Deref`) and the changes the
/// job reports for the listener.
pub(super) struct Tx<'c> {
    db: &'c Connection,
    context: WriteContext,
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.db
    }
}

impl Statements for Tx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn run(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        sqlite_run(self.db, sql, params)
    }

    fn select(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqlRow>> {
        sqlite_select(self.db, sql, params)
    }

    fn insert(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        sqlite_insert(self.db, sql, params)
    }
}

impl Sql for Tx<'_> {
    fn context(&self) -> &WriteContext {
        &self.context
    }

    fn context_mut(&mut self) -> &mut WriteContext {
        &mut self.context
    }
}

/// Handle to the batching thread. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    /// When the last batch committed (server clock); 0 when it failed, or before the first.
    last_commit: Arc<AtomicI64>,
}

impl GroupCommit {
    /// Opens the writer connection on `path` and starts the batching thread. When `read_only`
    /// (the database is on a read-only file system) every write is refused until a restart.
    /// It ends when every handle is dropped.
    ///
    /// # Errors
    /// When the connection cannot be opened or is not durable (WAL, `synchronous=FULL`), or the
    /// thread cannot be started.
    pub(super) fn start(
        path: &Path,
        read_only: bool,
        listener: Arc<dyn CommitListener>,
    ) -> anyhow::Result<Self> {
        let (connection, keeper) = if read_only {
            (None, None)
        } else {
            (Some(open_writer(path)?), Some(open_keeper(path)?))
        };
        let (jobs, queue) = mpsc::channel(QUEUE);
        let last_commit = Arc::new(AtomicI64::new(0));
        let mut writer = Writer {
            path: path.to_owned(),
            read_only,
            connection,
            _keeper: keeper,
            fence_pending: false,
            listener,
            last_commit: last_commit.clone(),
        };
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || writer.run(queue))?;
        Ok(Self { jobs, last_commit })
    }

    /// Runs `work` inside the next batch's transaction and returns its result once the batch
    /// has committed. `work` must decide any refusal ([`Error::is_refusal`]) before it changes a
    /// row: any other error, or a refusal after a change, rolls back the whole batch. The
    /// events it appends record the address the calling task serves
    /// ([`super::source::current_source`]).
    ///
    /// # Errors
    /// The refusal of `work`; [`Error::StorageFull`] or [`Error::StorageFailed`] when the batch
    /// was not committed (then nothing of it was saved).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        self.write_sqlite(move |tx| work(tx)).await
    }

    /// [`GroupCommit::write`] for work that needs SQLite itself (the connection, through the
    /// transaction's `Deref`): what only a SQLite database has or does.
    pub(super) async fn write_sqlite<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |tx| work(tx).map(|t| Box::new(t) as Erased));
        let gone = || Error::StorageFailed("the writer has stopped".into());
        let source = super::source::current_source().map(super::source::stored);
        self.jobs
            .send(Job {
                work,
                reply,
                source,
            })
            .await
            .map_err(|_| gone())?;
        let erased = answer.await.map_err(|_| gone())??;
        Ok(*erased
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("a job answers with its own type")))
    }

    /// When the last batch committed (server clock); 0 when it failed, or before the first.
    pub(super) fn last_commit(&self) -> Millis {
        self.last_commit.load(Ordering::Relaxed)
    }
}

/// The batching thread's state.
struct Writer {
    path: PathBuf,
    /// Opened on read-only storage: nothing can be written (readers may hold the file as
    /// immutable, so writing later would not be seen by them).
    read_only: bool,
    /// `None` while the database cannot be opened for writing.
    connection: Option<Connection>,
    /// Keeps the database, and SQLite's index of its log, open while `connection` is reopened.
    _keeper: Option<Connection>,
    /// A COMMIT failed and no transaction has committed since.
    fence_pending: bool,
    listener: Arc<dyn CommitListener>,
    last_commit: Arc<AtomicI64>,
}

impl Writer {
    fn run(&mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(batch) = next_batch(&mut queue) {
            let committed_at = if self.commit_batch(batch) {
                now_ms()
            } else {
                self.listener.failed();
                0
            };
            self.last_commit.store(committed_at, Ordering::Relaxed);
        }
    }

    /// One transaction for all `jobs`; answers each after the commit (refusals at once).
    /// Returns whether the batch committed.
    fn commit_batch(&mut self, jobs: Vec<Job>) -> bool {
        let replies = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.reply);
        if self.read_only {
            fail_all(replies(jobs), Error::StorageFailed(READ_ONLY.into()));
            return false;
        }
        if let Err(e) = self.fence_if_pending() {
            self.reset();
            fail_all(replies(jobs), e);
            return false;
        }
        let db = match open_if_closed(&mut self.connection, &self.path) {
            Ok(db) => db,
            Err(e) => {
                fail_all(replies(jobs), e);
                return false;
            }
        };
        match run_batch(db, jobs, &*self.listener) {
            Ok(()) => true,
            Err(BatchFailed::Answered) => {
                self.reset();
                false
            }
            Err(BatchFailed::Commit(replies, error)) => {
                self.reset();
                // The log may hold the transaction's frames: fence them off (and, if that fails
                // too, before the next batch) before anyone is told, so that a crash right after
                // the answer cannot revive the write.
                self.fence_pending = true;
                let _ = self.fence_if_pending();
                fail_all(replies.into_iter(), error);
                false
            }
        }
    }

    /// Writes the fence a failed COMMIT left pending, if any.
    fn fence_if_pending(&mut self) -> Result<()> {
        if self.fence_pending {
            fence(open_if_closed(&mut self.connection, &self.path)?)?;
            self.fence_pending = false;
        }
        Ok(())
    }

    /// Brings the connection back to a clean state after a failure: rolled back and in
    /// autocommit mode, or closed (the next batch opens it again).
    fn reset(&mut self) {
        let clean = self.connection.as_ref().is_some_and(|db| {
            if !db.is_autocommit() {
                let _ = control(db, "ROLLBACK");
            }
            db.is_autocommit() && !db.is_readonly(rusqlite::DatabaseName::Main).unwrap_or(true)
        });
        if !clean {
            self.connection = None;
        }
    }
}

/// Waits for a job, then takes the others already waiting, up to [`MAX_BATCH`]; `None` once
/// every sender is gone.
pub(super) fn next_batch<J>(queue: &mut mpsc::Receiver<J>) -> Option<Vec<J>> {
    let first = queue.blocking_recv()?;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    batch.push(first);
    while batch.len() < MAX_BATCH {
        let Ok(job) = queue.try_recv() else { break };
        batch.push(job);
    }
    Some(batch)
}

/// The writer connection, opening it again if it was closed after a failure.
fn open_if_closed<'c>(slot: &'c mut Option<Connection>, path: &Path) -> Result<&'c Connection> {
    if slot.is_none() {
        *slot = Some(open_writer(path).map_err(|e| {
            Error::StorageFailed(format!("the database cannot be opened for writing: {e:#}"))
        })?);
    }
    Ok(slot
        .as_ref()
        .unwrap_or_else(|| unreachable!("opened above")))
}

/// Runs `jobs` in one transaction and commits it, then hands the changes to `listener` and
/// answers every caller. A failure before COMMIT answers every caller with an error; a failed
/// COMMIT hands the callers back, to be answered once the log is fenced.
fn run_batch(
    db: &Connection,
    jobs: Vec<Job>,
    listener: &dyn CommitListener,
) -> std::result::Result<(), BatchFailed> {
    let began = std::time::Instant::now();
    if let Err(e) = control(db, "BEGIN IMMEDIATE") {
        fail_all(jobs.into_iter().map(|j| j.reply), e.into());
        return Err(BatchFailed::Answered);
    }
    let mut answers = Vec::with_capacity(jobs.len());
    let mut committed = Committed::default();
    let mut chain_head = None;
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        let changes_before = db.total_changes();
        let mut tx = Tx {
            db,
            context: WriteContext {
                source: job.source,
                chain_head: chain_head.take(),
                ..WriteContext::default()
            },
        };
        // A panicking job (a bug) must not take the writer thread, and every later write,
        // down with it: it fails its batch like any other error.
        let work = job.work;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut tx)))
            .unwrap_or_else(|panic| Err(Error::Panicked(panic_message(&*panic))));
        chain_head = tx.context.chain_head.take();
        match outcome {
            Ok(answer) => {
                committed.changes.append(&mut tx.context.changes);
                committed.events_appended |= tx.context.events_appended;
                answers.push((job.reply, answer));
            }
            Err(e)
                if e.is_refusal()
                    && db.total_changes() == changes_before
                    && !db.is_autocommit() =>
            {
                let _ = job.reply.send(Err(e));
            }
            Err(e) => {
                // A statement failed (or a refusal came after a write): nothing of the batch
                // may stay.
                let _ = control(db, "ROLLBACK");
                let cause = e.for_batch();
                let others = answers.into_iter().map(|(reply, _)| reply);
                let _ = job.reply.send(Err(e));
                fail_all(others.chain(jobs.map(|j| j.reply)), cause);
                return Err(BatchFailed::Answered);
            }
        }
    }
    if let Err(e) = control(db, "COMMIT") {
        let _ = control(db, "ROLLBACK");
        let replies = answers.into_iter().map(|(reply, _)| reply).collect();
        return Err(BatchFailed::Commit(replies, e.into()));
    }
    committed.writes = answers.len();
    committed.took = began.elapsed();
    listener.committed(committed);
    for (reply, answer) in answers {
        let _ = reply.send(Ok(answer));
    }
    Ok(())
}

/// How a batch failed.
enum BatchFailed {
    /// Before COMMIT: rolled back, every caller answered; nothing reached the log.
    Answered,
    /// COMMIT failed: the log may hold the batch's frames. The callers are answered only after
    /// the fence (see the module's header).
    Commit(Vec<oneshot::Sender<Result<Erased>>>, Error),
}

/// A read-only connection that has read the database once, so it holds the log's index open.
fn open_keeper(path: &Path) -> anyhow::Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.busy_timeout(BUSY_TIMEOUT)?;
    db.query_row("SELECT COUNT(*) FROM instance", [], |r| r.get::<_, i64>(0))?;
    Ok(db)
}

/// Opens the writer connection and checks that its writes are durable.
fn open_writer(path: &Path) -> anyhow::Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    anyhow::ensure!(
        !db.is_readonly(rusqlite::DatabaseName::Main)?,
        "the database file or its directory is read-only"
    );
    db.busy_timeout(BUSY_TIMEOUT)?;
    db.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    db.execute_batch(&format!(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES};"
    ))?;
    let sync: i64 = db.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal") && sync == 2,
        "the database is not durable: journal_mode={mode}, synchronous={sync} (need wal and 2=FULL)"
    );
    Ok(db)
}

/// A transaction that only bumps the write counter: it lands where a failed COMMIT may have
/// left frames in the log, so that they can never be read back.
fn fence(db: &Connection) -> Result<()> {
    control(db, "BEGIN IMMEDIATE")?;
    let bumped = db
        .prepare_cached("UPDATE instance SET writes_probed = writes_probed + 1 WHERE id = 1")
        .and_then(|mut s| s.execute([]))
        .and_then(|_| control(db, "COMMIT"));
    if let Err(e) = bumped {
        let _ = control(db, "ROLLBACK");
        return Err(e.into());
    }
    Ok(())
}

/// Runs a transaction-control statement, prepared once per connection.
fn control(db: &Connection, sql: &str) -> rusqlite::Result<()> {
    db.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The message of a panic's payload.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a write panicked".to_owned())
}

/// Answers every job of a batch that was not saved with (a copy of) `error`.
pub(super) fn fail_all(
    replies: impl Iterator<Item = oneshot::Sender<Result<Erased>>>,
    error: Error,
) {
    for reply in replies {
        let _ = reply.send(Err(error.for_batch()));
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sql::Sql;
    use crate::store::{Error, Store};

    /// Inserts unit `U-{base + n}` for n in 0..64; `refuse` decides whether the job then errs
    /// after writing, errs before writing, or succeeds.
    async fn insert_units(
        store: &Store,
        base: i64,
        refuse: fn(i64) -> Option<bool>,
    ) -> Vec<(i64, std::result::Result<i64, Error>)> {
        let writes = (base..base + 64).map(|n: i64| {
            let batch = store.writer.sqlite().clone();
            tokio::spawn(async move {
                let result = batch
                    .write_sqlite(move |tx| {
                        if refuse(n) == Some(false) {
                            return Err(Error::conflict("test", "refused before writing"));
                        }
                        tx.execute(
                            "INSERT INTO units (call_sign, kind, created_at) VALUES (?1, 'car', 0)",
                            [format!("U-{n}")],
                        )?;
                        if refuse(n) == Some(true) {
                            return Err(Error::conflict("test", "refused after writing"));
                        }
                        Ok(n)
                    })
                    .await;
                (n, result)
            })
        });
        futures_util::future::join_all(writes)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect()
    }

    async fn stored_units(store: &Store) -> Vec<i64> {
        let names: Vec<String> = sqlx::query_scalar("SELECT call_sign FROM units ORDER BY id")
            .fetch_all(store.reader.pool())
            .await
            .unwrap();
        let mut ns: Vec<i64> = names.iter().map(|c| c[2..].parse().unwrap()).collect();
        ns.sort_unstable();
        ns
    }

    /// Many concurrent writers share batches; a job that refuses before writing does not
    /// disturb the others in its batch.
    #[tokio::test]
    async fn a_refusal_before_writing_leaves_the_batch_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_standalone(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let results = insert_units(&store, 0, |n| (n % 10 == 3).then_some(false)).await;
        for (n, result) in &results {
            assert_eq!(result.is_err(), n % 10 == 3, "write {n}: {result:?}");
        }
        let expected: Vec<i64> = (0..64).filter(|n| n % 10 != 3).collect();
        assert_eq!(stored_units(&store).await, expected);
    }

    /// A job that fails after writing takes its batch down with it: however the writes fall
    /// into batches, exactly the writes answered `Ok` are stored, and never the failed one's
    /// rows; the batch after a failed one starts afresh. (Each round uses call signs of its
    /// own: a second round repeating the first's would collide with whatever of it committed.)
    #[tokio::test]
    async fn exactly_the_writes_answered_ok_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_standalone(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let results = insert_units(&store, 0, |n| match n % 10 {
            3 => Some(true),
            7 => Some(false),
            _ => None,
        })
        .await;
        let mut answered_ok = Vec::new();
        for (n, result) in &results {
            match result {
                Ok(_) => answered_ok.push(*n),
                Err(Error::Conflict { .. }) => assert!(n % 10 == 3 || n % 10 == 7, "write {n}"),
                Err(e @ Error::StorageFailed(_)) => {
                    assert!(e.to_string().contains("not saved"), "write {n}: {e}")
                }
                Err(e) => panic!("write {n}: {e}"),
            }
            assert!(n % 10 != 3 && n % 10 != 7 || result.is_err(), "write {n}");
        }
        let later = insert_units(&store, 100, |_| None).await;
        assert!(later.iter().all(|(_, r)| r.is_ok()), "{later:?}");
        answered_ok.extend(later.iter().map(|(n, _)| *n));
        answered_ok.sort_unstable();
        assert_eq!(stored_units(&store).await, answered_ok);
    }

    /// A job that panics fails its batch, and the writer goes on with the next one.
    #[tokio::test]
    async fn a_panicking_write_fails_its_batch_and_the_writer_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_standalone(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let panicked = store
            .writer
            .sqlite()
            .write_sqlite(|tx| -> crate::store::Result<()> {
                tx.execute(
                    "INSERT INTO units (call_sign, kind, created_at) VALUES ('X', 'car', 0)",
                    [],
                )?;
                panic!("a bug")
            })
            .await;
        assert!(
            matches!(panicked, Err(Error::Panicked(ref m)) if m == "a bug"),
            "{panicked:?}"
        );
        let later = insert_units(&store, 0, |_| None).await;
        assert!(later.iter().all(|(_, r)| r.is_ok()), "{later:?}");
        assert_eq!(
            stored_units(&store).await.len(),
            64,
            "the panicked row is not stored"
        );
    }

    /// Events appended by batches that were rolled back leave no trace in the chain: the
    /// writes answered `Ok` are exactly the stored events, chained without a gap, each with the
    /// address its write was queued from.
    #[tokio::test]
    async fn a_rolled_back_batch_leaves_the_chain_whole() {
        use crate::domain::Actor;
        use crate::store::{append_event, audit_chain, source, EventRefs};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open_standalone(&path).await.unwrap();
        let append = |n: u8| {
            let batch = store.writer.sqlite().clone();
            let from = std::net::IpAddr::from([10, 0, 0, n]);
            source::with_source(Some(from), async move {
                let appended = batch
                    .write(move |tx| {
                        let detail = serde_json::json!({ "n": n });
                        append_event(tx, 1, "test", &Actor::System, EventRefs::default(), &detail)?;
                        if n % 10 == 3 {
                            return Err(Error::StorageFailed("after appending".into()));
                        }
                        Ok(())
                    })
                    .await;
                (n, appended.is_ok())
            })
        };
        // However the concurrent writes fall into batches, some batches fail; the writes after
        // them, one batch each, must chain to what was committed, not to what was rolled back.
        let concurrent = (0..60).map(|n| tokio::spawn(append(n)));
        let mut answered: Vec<(u8, bool)> = futures_util::future::join_all(concurrent)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for n in [60, 61, 62, 64] {
            answered.push(append(n).await);
        }
        let answered_ok: Vec<u8> = answered
            .into_iter()
            .filter_map(|(n, ok)| ok.then_some(n))
            .collect();
        assert!(answered_ok.len() < 60, "some batches failed");
        assert!(answered_ok.ends_with(&[60, 61, 62, 64]));
        let db = audit_chain::open_read_only(&path).unwrap();
        let verified = audit_chain::verify(&db).unwrap().unwrap();
        assert_eq!(verified.events as usize, answered_ok.len());
        let mut stored: Vec<(String, String)> = db
            .prepare("SELECT detail, source FROM events")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        stored.sort();
        let mut expected: Vec<(String, String)> = answered_ok
            .iter()
            .map(|n| (format!("{{\"n\":{n}}}"), format!("10.0.0.{n}")))
            .collect();
        expected.sort();
        assert_eq!(stored, expected);
    }

    /// The listener hears every committed job's changes once, in commit order, before the
    /// callers are answered; a refused job's changes are dropped.
    #[tokio::test]
    async fn changes_reach_the_listener_in_commit_order() {
        use crate::store::{Change, CommitListener, Committed};
        #[derive(Default)]
        struct Heard(std::sync::Mutex<Vec<i64>>);
        impl CommitListener for Heard {
            fn committed(&self, batch: Committed) {
                for change in batch.changes {
                    if let Change::Unit(unit) = change {
                        self.0.lock().unwrap().push(unit.id);
                    }
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let heard = std::sync::Arc::new(Heard::default());
        let store = Store::open(&dir.path().join("db.sqlite"), heard.clone())
            .await
            .unwrap();
        let writes = (0..32).map(|n: i64| {
            let (batch, heard) = (store.writer.sqlite().clone(), heard.clone());
            tokio::spawn(async move {
                let id = batch
                    .write_sqlite(move |tx| {
                        let id: i64 = tx.query_row(
                            "INSERT INTO units (call_sign, kind, created_at)
                             VALUES (?1, 'car', 0) RETURNING id",
                            [format!("U-{n}")],
                            |r| r.get(0),
                        )?;
                        if n % 8 == 5 {
                            tx.execute("DELETE FROM units WHERE id = ?1", [id])?;
                            return Ok(None);
                        }
                        let unit = crate::store::units::read_unit(tx, id)?;
                        tx.emit(Change::Unit(unit));
                        Ok(Some(id))
                    })
                    .await
                    .unwrap();
                if let Some(id) = id {
                    assert!(heard.0.lock().unwrap().contains(&id), "heard after answer");
                }
                id
            })
        });
        let results: Vec<Option<i64>> = futures_util::future::join_all(writes)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let heard = heard.0.lock().unwrap().clone();
        assert_eq!(heard.len(), results.iter().flatten().count());
        let mut sorted = heard.clone();
        sorted.sort_unstable();
        assert_eq!(heard, sorted, "row ids are handed out in commit order");
    }
}
