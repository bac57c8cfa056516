//! Group commit: concurrent writes queue here and one thread runs them back to back inside a
//! single transaction, then commits once. Every caller still gets its answer only after that
//! commit, so "acknowledged means durable" holds while one fsync covers the whole batch. A job
//! may carry a step to run right after the commit, in commit order, before its caller is
//! answered (and even when the caller has gone away).
//!
//! The jobs are synchronous: the batching thread locks the writer connection's SQLite handle
//! away from sqlx's worker for batch after batch while writes keep coming (at most
//! [`HOLD_AT_MOST`]) and runs every statement itself through rusqlite. Statement by statement
//! through sqlx, each call was a round trip to the worker thread, and those hand-offs, not
//! SQLite, bounded how many orders a second were durable.

use std::any::Any;
use std::time::{Duration, Instant};

use sqlx::sqlite::LockedSqliteHandle;
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::{Error, Result};

/// Most writes in one transaction; bounds how long the first of them waits for the commit.
const MAX_BATCH: usize = 256;

/// Longest the batching thread keeps the writer connection for batch after batch, while writes
/// keep waiting; other writers on the connection (sqlx's) wait at most this long, plus a batch.
const HOLD_AT_MOST: Duration = Duration::from_millis(20);

/// Writes waiting for the batching thread; callers beyond this wait for room.
const QUEUE: usize = 4096;

/// Prepared statements kept through a batch: more than all the distinct statements of the
/// batched writes (about 40), so none is evicted and prepared again mid-batch (rusqlite keeps
/// 16 by default).
const CACHED_STATEMENTS: usize = 64;

type Erased = Box<dyn Any + Send>;
type Work = Box<dyn FnOnce(&rusqlite::Connection) -> Result<Erased> + Send>;
type AfterCommit = Box<dyn FnOnce(&Erased) + Send>;

struct Job {
    work: Work,
    after_commit: AfterCommit,
    reply: oneshot::Sender<Result<Erased>>,
}

/// Handle to the batching thread. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the batching loop on the writer pool, on a thread of its own (a batch runs
    /// synchronously and must not hold up the shared runtime). It ends when every handle is
    /// dropped.
    ///
    /// # Errors
    /// When the thread or its runtime cannot be started.
    pub(super) fn start(writer: SqlitePool) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || runtime.block_on(run(writer, queue)))?;
        Ok(Self { jobs })
    }

    /// Runs `work` inside the next batch's transaction and returns its result once the batch
    /// has committed. `work` must decide any refusal before it changes a row: an error after a
    /// change rolls back the whole batch (see [`commit_batch`]).
    ///
    /// # Errors
    /// The error of `work`, or of the commit or of another job of the batch (then nothing of
    /// the batch was saved).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
    {
        self.write_then(work, |_| {}).await
    }

    /// As [`GroupCommit::write`], and once the batch has committed runs `after_commit` on the
    /// result of `work` (when it succeeded) on the batching thread: steps of different jobs run
    /// in the order their writes committed, and run even when the caller no longer waits.
    ///
    /// # Errors
    /// As [`GroupCommit::write`].
    pub(super) async fn write_then<T, F, A>(&self, work: F, after_commit: A) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T> + Send + 'static,
        A: FnOnce(&T) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |db| work(db).map(|t| Box::new(t) as Erased));
        let after_commit: AfterCommit = Box::new(move |erased| {
            if let Some(t) = erased.downcast_ref::<T>() {
                after_commit(t);
            }
        });
        self.jobs
            .send(Job {
                work,
                after_commit,
                reply,
            })
            .await
            .map_err(|_| Error::Other(sqlx::Error::PoolClosed))?;
        let erased = answer
            .await
            .map_err(|_| Error::Other(sqlx::Error::PoolClosed))??;
        Ok(*erased
            .downcast::<T>()
            .unwrap_or_else(|_| unreachable!("a job answers with its own type")))
    }
}

async fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut jobs = Some(std::mem::take(&mut batch));
        let failure = match writer.acquire().await {
            Ok(mut conn) => match conn.lock_handle().await {
                Ok(mut handle) => with_connection(&mut handle, |db| {
                    // Batches that are already waiting run on the same handle, with the
                    // statements prepared for the first, until the queue is empty or others
                    // have waited long enough for the writer.
                    let held_since = Instant::now();
                    let mut next = jobs.take().unwrap_or_default();
                    while !next.is_empty() {
                        commit_batch(db, next);
                        next = Vec::new();
                        if held_since.elapsed() < HOLD_AT_MOST {
                            while next.len() < MAX_BATCH {
                                let Ok(job) = queue.try_recv() else { break };
                                next.push(job);
                            }
                        }
                    }
                })
                .err()
                .map(Error::from),
                Err(e) => Some(Error::from(e)),
            },
            Err(e) => Some(Error::from(e)),
        };
        if let (Some(error), Some(jobs)) = (failure, jobs) {
            fail_all(jobs.into_iter().map(|j| j.reply), &error);
        }
    }
}

/// Lends the locked writer handle to rusqlite for the duration of `f`.
#[allow(unsafe_code)]
fn with_connection<R>(
    handle: &mut LockedSqliteHandle<'_>,
    f: impl FnOnce(&rusqlite::Connection) -> R,
) -> rusqlite::Result<R> {
    // SAFETY: the pointer is the open connection of the writer pool, which `handle` keeps
    // locked away from sqlx's worker thread until it is dropped. `from_handle` never closes
    // it, and `db` (whose cached statements are finalized when it drops) is dropped at the end
    // of this call, before `handle`. Both crates link the same libsqlite3-sys.
    let db = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr())? };
    db.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    Ok(f(&db))
}

/// One transaction for all `jobs`; answers each after the commit.
///
/// No savepoint per job: a job that fails without having changed a row (every refusal is
/// decided before a job writes) leaves the others alone, and one that fails after changing rows
/// (a database error mid-job) rolls back the whole batch, whose callers are all answered with an
/// error; none of them was told its write was saved. Savepoints cost each job two statements
/// and a copy of every page it touched that an earlier job of the batch had touched too.
fn commit_batch(db: &rusqlite::Connection, jobs: Vec<Job>) {
    if let Err(e) = control(db, &["BEGIN IMMEDIATE"]) {
        if !db.is_autocommit() {
            let _ = control(db, &["ROLLBACK"]);
        }
        return fail_all(jobs.into_iter().map(|j| j.reply), &Error::from(e));
    }
    let mut answers = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        let changes_before = db.total_changes();
        match (job.work)(db) {
            // SQLite itself may have rolled back the transaction (disk full, I/O error).
            Err(e) if db.total_changes() != changes_before || db.is_autocommit() => {
                if !db.is_autocommit() {
                    let _ = control(db, &["ROLLBACK"]);
                }
                let others = answers.into_iter().map(|(reply, _, _)| reply);
                fail_all(others.chain(jobs.map(|j| j.reply)), &e);
                let _ = job.reply.send(Err(e));
                return;
            }
            result => answers.push((job.reply, job.after_commit, result)),
        }
    }
    if let Err(e) = control(db, &["COMMIT"]) {
        if !db.is_autocommit() {
            let _ = control(db, &["ROLLBACK"]);
        }
        return fail_all(
            answers.into_iter().map(|(reply, _, _)| reply),
            &Error::from(e),
        );
    }
    for (reply, after_commit, result) in answers {
        if let Ok(erased) = &result {
            after_commit(erased);
        }
        let _ = reply.send(result);
    }
}

/// Runs transaction-control statements in order, each prepared once per connection hold.
fn control(db: &rusqlite::Connection, statements: &[&str]) -> rusqlite::Result<()> {
    for sql in statements {
        db.prepare_cached(sql)?.execute([])?;
    }
    Ok(())
}

/// Answers every job of a batch that was not saved with (a copy of) `error`.
fn fail_all(replies: impl Iterator<Item = oneshot::Sender<Result<Erased>>>, error: &Error) {
    for reply in replies {
        let copy = match error {
            Error::StorageFull => Error::StorageFull,
            other => Error::Other(sqlx::Error::Protocol(format!(
                "the batch was not committed: {other}"
            ))),
        };
        let _ = reply.send(Err(copy));
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Error, Store};

    /// Inserts unit `U-{n}`; `refuse` decides whether the job then errs after writing, errs
    /// before writing, or succeeds.
    async fn insert_units(
        store: &Store,
        refuse: fn(i64) -> Option<bool>,
    ) -> Vec<(i64, std::result::Result<i64, Error>)> {
        let writes = (0..64).map(|n: i64| {
            let batch = store.batch.clone();
            tokio::spawn(async move {
                let result = batch
                    .write(move |db| {
                        if refuse(n) == Some(false) {
                            return Err(Error::conflict("test", "refused before writing"));
                        }
                        db.execute(
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
            .fetch_all(&store.reader)
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
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let results = insert_units(&store, |n| (n % 10 == 3).then_some(false)).await;
        for (n, result) in &results {
            assert_eq!(result.is_err(), n % 10 == 3, "write {n}: {result:?}");
        }
        let expected: Vec<i64> = (0..64).filter(|n| n % 10 != 3).collect();
        assert_eq!(stored_units(&store).await, expected);
    }

    /// A job that fails after writing takes its batch down with it: whatever the batching,
    /// exactly the writes answered `Ok` are stored, and never the failed one's rows.
    #[tokio::test]
    async fn exactly_the_writes_answered_ok_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let results = insert_units(&store, |n| match n % 10 {
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
                Err(e) => assert!(
                    e.to_string().contains("the batch was not committed"),
                    "write {n}: {e}"
                ),
            }
            assert!(n % 10 != 3 && n % 10 != 7 || result.is_err(), "write {n}");
        }
        answered_ok.sort_unstable();
        assert_eq!(stored_units(&store).await, answered_ok);
        // The batch after a failed one starts afresh.
        let later = insert_units(&store, |_| None).await;
        assert!(later.iter().all(|(_, r)| r.is_ok()));
    }

    /// The after-commit steps run once per successful job, in the order the jobs committed,
    /// before the callers are answered.
    #[tokio::test]
    async fn after_commit_steps_run_in_commit_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let writes = (0..32).map(|n: i64| {
            let (batch, seen, check) = (store.batch.clone(), seen.clone(), seen.clone());
            tokio::spawn(async move {
                let id = batch
                    .write_then(
                        move |db| {
                            if n % 8 == 5 {
                                return Err(Error::conflict("test", "refused"));
                            }
                            let id: i64 = db.query_row(
                                "INSERT INTO units (call_sign, kind, created_at)
                                 VALUES (?1, 'car', 0) RETURNING id",
                                [format!("U-{n}")],
                                |r| r.get(0),
                            )?;
                            Ok(id)
                        },
                        move |id| seen.lock().unwrap().push(*id),
                    )
                    .await;
                if let Ok(id) = id {
                    assert!(check.lock().unwrap().contains(&id), "ran before the answer");
                }
                id
            })
        });
        let results = futures_util::future::join_all(writes).await;
        let committed = results
            .iter()
            .filter(|r| r.as_ref().unwrap().is_ok())
            .count();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), committed);
        assert_eq!(committed, 32 - 4);
        let mut sorted = seen.clone();
        sorted.sort_unstable();
        assert_eq!(seen, sorted, "row ids are handed out in commit order");
    }
}
