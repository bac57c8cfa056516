//! The group-committed write path on PostgreSQL: one thread owns the connection to the primary
//! and runs the jobs waiting for it back to back in one transaction, then commits once; each
//! caller is answered after that COMMIT returned (with a synchronous standby: once the standby
//! has the WAL). Refusals decided before a change leave the rest of the batch alone; any other
//! error rolls the batch back and answers every caller with an error.
//!
//! Every node of a cluster writes through its own such thread, and the batches of all nodes take
//! turns: each transaction first takes [`WRITE_LOCK`], so a write that checks and then changes
//! (is the unit still available? was this idempotency key used?) sees every batch committed
//! before it, on any node, exactly as with SQLite's single writer. The batch's changes are told
//! to the other nodes by `pg_notify` inside the same transaction (`bus.rs`).
//!
//! After a failed batch the connection is closed, and the next batch connects again to whichever
//! host accepts writes then: after a failover that is the promoted standby, found without a
//! restart. A BEGIN on a connection the server had already dropped (nothing of the batch run
//! yet) is retried once on a new connection. A connection lost during COMMIT leaves its outcome
//! unknown: the callers are told exactly that, never that the write was saved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::types::ToSql;
use postgres::{Client, Statement};
use tokio::sync::{mpsc, oneshot};

use super::bus;
use super::connect::{connect_primary, Durability, PostgresSettings};
use super::migrate::migrate;
use super::placeholders::to_postgres;
use super::values::to_row;
use crate::domain::{now_ms, Millis};
use crate::store::group_commit::{fail_all, next_batch, panic_message, Erased, QUEUE};
use crate::store::source::{current_source, stored};
use crate::store::sql::{Dialect, Param, Sql, SqlRow, Statements, WriteContext};
use crate::store::{CommitListener, Committed, Error, Result};

/// What callers of a batch are told when the connection broke during its COMMIT.
const COMMIT_UNKNOWN: &str = "the connection to the database was lost during COMMIT, so the \
     write may or may not be stored; retry it with the same Idempotency-Key";

/// The transaction-scoped advisory lock every batch takes first, on every node ("dispwrit" in
/// ASCII).
const WRITE_LOCK: i64 = 0x6469_7370_7772_6974;

/// How every batch begins: the transaction, then [`WRITE_LOCK`], in one round trip.
static BEGIN: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"));

type Work = Box<dyn FnOnce(&mut PgTx<'_>) -> Result<Erased> + Send>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Erased>>,
    /// The address of the request or device connection that queued the job.
    source: Option<String>,
}

/// The transaction a job runs in. Statements use the store's `?N` parameters.
pub struct PgTx<'c> {
    connection: &'c mut Connection,
    context: WriteContext,
    /// Rows the job's statements inserted, updated or deleted.
    rows_changed: u64,
    /// A statement failed: PostgreSQL has aborted the transaction.
    aborted: bool,
}

impl Statements for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn run(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let params = wire(params);
        let rows =
            self.on_connection(sql, |client, statement| client.execute(statement, &params))?;
        self.rows_changed += rows;
        Ok(rows)
    }

    /// A statement other than a SELECT (`INSERT … RETURNING`) counts every row it returns as
    /// changed.
    fn select(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqlRow>> {
        let params = wire(params);
        let (rows, names) = self.on_connection(sql, |client, statement| {
            let names: Arc<[String]> = statement
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect();
            Ok((client.query(statement, &params)?, names))
        })?;
        let reads_only = sql
            .trim_start()
            .get(..6)
            .is_some_and(|verb| verb.eq_ignore_ascii_case("select"));
        if !reads_only {
            self.rows_changed += rows.len() as u64;
        }
        rows.iter().map(|row| to_row(row, &names)).collect()
    }

    fn insert(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        self.select_one(&format!("{sql} RETURNING id"), params)?
            .get(0)
    }
}

impl Sql for PgTx<'_> {
    fn context(&self) -> &WriteContext {
        &self.context
    }

    fn context_mut(&mut self) -> &mut WriteContext {
        &mut self.context
    }
}

/// The parameters as the `postgres` crate takes them.
pub(super) fn wire<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl PgTx<'_> {
    fn on_connection<T>(
        &mut self,
        sql: &str,
        statement: impl FnOnce(&mut Client, &Statement) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        let outcome = self
            .connection
            .prepared(sql)
            .and_then(|prepared| statement(&mut self.connection.client, &prepared));
        outcome.map_err(|e| {
            self.aborted = true;
            e.into()
        })
    }
}

/// A connection to the primary and the statements prepared on it.
pub(super) struct Connection {
    pub(super) client: Client,
    statements: HashMap<String, Statement>,
}

impl Connection {
    pub(super) fn new(client: Client) -> Self {
        Self {
            client,
            statements: HashMap::new(),
        }
    }

    /// `sql` prepared (its `?N` written as `$N`), once per connection.
    pub(super) fn prepared(
        &mut self,
        sql: &str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(&to_postgres(sql))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Handle to the batching thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresWriter {
    jobs: mpsc::Sender<Job>,
    /// When the last batch committed (server clock); 0 when it failed, or before the first.
    last_commit: Arc<AtomicI64>,
    /// The connected server's durability; `None` while no host accepts writes.
    durability: Arc<Mutex<Option<Durability>>>,
}

impl PostgresWriter {
    /// Starts the batching thread, which connects to the host that accepts writes, brings the
    /// schema up to date ([`migrate`]) and then serves until every handle is dropped.
    ///
    /// # Errors
    /// When no host accepts writes, its commits are not durable, the migrations fail, or the
    /// thread cannot start.
    pub async fn start(
        settings: PostgresSettings,
        listener: Arc<dyn CommitListener>,
    ) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (started, ready) = oneshot::channel();
        let durability = Arc::new(Mutex::new(None));
        let last_commit = Arc::new(AtomicI64::new(0));
        let mut writer = Writer {
            settings,
            connection: None,
            durability: durability.clone(),
            listener,
            last_commit: last_commit.clone(),
        };
        std::thread::Builder::new()
            .name("pg-group-commit".into())
            .spawn(move || {
                let prepared = writer.prepare();
                let serve = prepared.is_ok();
                let _ = started.send(prepared);
                if serve {
                    writer.run(queue);
                }
            })?;
        ready
            .await
            .map_err(|_| anyhow::anyhow!("the PostgreSQL writer thread stopped at start"))??;
        Ok(Self {
            jobs,
            last_commit,
            durability,
        })
    }

    /// Runs `work` inside the next batch's transaction and returns its result once the batch
    /// has committed. `work` must decide any refusal ([`Error::is_refusal`]) before it changes
    /// a row: any other error, or a refusal after a change, rolls back the whole batch.
    ///
    /// # Errors
    /// The refusal of `work`; [`Error::StorageFull`] or [`Error::StorageFailed`] when the batch
    /// was not committed, or when its COMMIT's outcome is unknown (the message says which).
    pub async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgTx<'_>) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |tx| work(tx).map(|t| Box::new(t) as Erased));
        let gone = || Error::StorageFailed("the writer has stopped".into());
        let source = current_source().map(stored);
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
    pub fn last_commit(&self) -> Millis {
        self.last_commit.load(Ordering::Relaxed)
    }

    /// Writes queued and not yet taken into a batch.
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        QUEUE - self.jobs.capacity()
    }

    /// The connected primary's durability; `None` while no host accepts writes.
    pub fn durability(&self) -> Option<Durability> {
        self.durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// The batching thread's state.
struct Writer {
    settings: PostgresSettings,
    /// `None` after a failure, until the next batch connects again.
    connection: Option<Connection>,
    durability: Arc<Mutex<Option<Durability>>>,
    listener: Arc<dyn CommitListener>,
    last_commit: Arc<AtomicI64>,
}

impl Writer {
    /// Connects and migrates, before the first job.
    fn prepare(&mut self) -> anyhow::Result<()> {
        let connection = self.connect().map_err(|e| anyhow::anyhow!("{e}"))?;
        migrate(&mut connection.client)
    }

    fn run(&mut self, mut queue: mpsc::Receiver<Job>) {
        while let Some(batch) = next_batch(&mut queue) {
            let committed_at = if self.commit_batch(batch) {
                now_ms()
            } else {
                // Whatever broke, the next batch starts on a new connection to the primary.
                self.connection = None;
                self.listener.failed();
                0
            };
            self.last_commit.store(committed_at, Ordering::Relaxed);
        }
    }

    /// One transaction for all `jobs`; answers each after the commit (refusals at once).
    /// Returns whether the batch committed.
    fn commit_batch(&mut self, jobs: Vec<Job>) -> bool {
        let listener = self.listener.clone();
        let node = self.settings.node().to_owned();
        let connection = match self.begin() {
            Ok(connection) => connection,
            Err(e) => {
                fail_all(jobs.into_iter().map(|j| j.reply), e);
                return false;
            }
        };
        run_batch(connection, jobs, &*listener, &node)
    }

    /// BEGIN on the connection, opening one first if there is none, and the cluster's
    /// [`WRITE_LOCK`]. When the server had dropped the connection while it was idle, BEGIN is
    /// tried once more on a new one.
    fn begin(&mut self) -> Result<&mut Connection> {
        let reusable = self.connection.is_some();
        if let Err(e) = self.connect()?.client.batch_execute(&BEGIN) {
            let error = Error::from(e);
            if !(reusable && error.is_storage_fault()) {
                return Err(error);
            }
            self.connection = None;
            self.connect()?.client.batch_execute(&BEGIN)?;
        }
        self.connect()
    }

    /// The connection, connecting to the host that accepts writes if there is none.
    fn connect(&mut self) -> Result<&mut Connection> {
        if self.connection.is_none() {
            let outcome = connect_primary(&self.settings);
            let mut durability = self
                .durability
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (client, now) = outcome.map_err(|e| {
                *durability = None;
                Error::StorageFailed(format!("{e:#}"))
            })?;
            *durability = Some(now);
            self.connection = Some(Connection::new(client));
        }
        Ok(self
            .connection
            .as_mut()
            .unwrap_or_else(|| unreachable!("connected above")))
    }
}

/// Runs `jobs` in the open transaction, tells the other nodes of `node`'s cluster of its
/// changes and commits it, then hands the changes to `listener` and answers every caller.
/// Returns whether the batch committed.
fn run_batch(
    connection: &mut Connection,
    jobs: Vec<Job>,
    listener: &dyn CommitListener,
    node: &str,
) -> bool {
    let began = Instant::now();
    let mut answers = Vec::with_capacity(jobs.len());
    let mut committed = Committed::default();
    let mut chain_head = None;
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        let mut tx = PgTx {
            connection: &mut *connection,
            context: WriteContext {
                source: job.source,
                chain_head: chain_head.take(),
                ..WriteContext::default()
            },
            rows_changed: 0,
            aborted: false,
        };
        // A panicking job (a bug) must not take the writer thread down with it.
        let work = job.work;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut tx)))
            .unwrap_or_else(|panic| Err(Error::Panicked(panic_message(&*panic))));
        chain_head = tx.context.chain_head.take();
        match outcome {
            Ok(answer) if !tx.aborted => {
                committed.changes.append(&mut tx.context.changes);
                committed.events_appended |= tx.context.events_appended;
                answers.push((job.reply, answer));
            }
            Err(e) if e.is_refusal() && tx.rows_changed == 0 && !tx.aborted => {
                let _ = job.reply.send(Err(e));
            }
            // A statement failed (even one the job put up with), or a refusal came after a
            // change: nothing of the batch may stay.
            outcome => {
                let error = outcome.err().unwrap_or_else(|| {
                    Error::StorageFailed("a statement of the write failed".into())
                });
                let _ = connection.client.batch_execute("ROLLBACK");
                let cause = error.for_batch();
                let others = answers.into_iter().map(|(reply, _)| reply);
                let _ = job.reply.send(Err(error));
                fail_all(others.chain(jobs.map(|j| j.reply)), cause);
                return false;
            }
        }
    }
    if let Err(e) = notify(connection, node, &committed) {
        let _ = connection.client.batch_execute("ROLLBACK");
        fail_all(answers.into_iter().map(|(reply, _)| reply), e.into());
        return false;
    }
    if let Err(e) = connection.client.batch_execute("COMMIT") {
        let error = if e.is_closed() || e.as_db_error().is_none() {
            Error::StorageFailed(COMMIT_UNKNOWN.into())
        } else {
            e.into()
        };
        fail_all(answers.into_iter().map(|(reply, _)| reply), error);
        return false;
    }
    committed.writes = answers.len();
    committed.took = began.elapsed();
    listener.committed(committed);
    for (reply, answer) in answers {
        let _ = reply.send(Ok(answer));
    }
    true
}

/// Queues the batch's notices in its transaction: PostgreSQL delivers them at COMMIT.
fn notify(
    connection: &mut Connection,
    node: &str,
    batch: &Committed,
) -> std::result::Result<(), postgres::Error> {
    let payloads = bus::payloads(node, &batch.changes, batch.events_appended);
    if payloads.is_empty() {
        return Ok(());
    }
    let statement = connection.prepared("SELECT pg_notify(?1, ?2)")?;
    for payload in payloads {
        connection
            .client
            .execute(&statement, &[&bus::CHANNEL, &payload])?;
    }
    Ok(())
}
