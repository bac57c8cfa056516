//! Group commit: concurrent writes queue here and one task runs them back to back inside a
//! single transaction, each under its own savepoint, then commits once. Every caller still gets
//! its answer only after that commit, so "acknowledged means durable" holds while one fsync
//! covers the whole batch.

use std::any::Any;

use futures_util::future::BoxFuture;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{Error, Result};

/// Most writes in one transaction; bounds how long the first of them waits for the commit.
const MAX_BATCH: usize = 256;

/// Writes waiting for the batching task; callers beyond this wait for room.
const QUEUE: usize = 4096;

type Erased = Box<dyn Any + Send>;
type Work =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Erased>> + Send>;

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Erased>>,
}

/// Handle to the batching task. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the batching task on the writer pool. It ends when every handle is dropped.
    pub(super) fn start(writer: SqlitePool) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, queue));
        Self { jobs }
    }

    /// Runs `work` inside the next batch's transaction and returns its result once the batch
    /// has committed. An error from `work` rolls back only its own changes.
    ///
    /// # Errors
    /// The error of `work`, or of the commit (then nothing of the batch was saved).
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            Box::pin(async move { work(conn).await.map(|t| Box::new(t) as Erased) })
        });
        self.jobs
            .send(Job { work, reply })
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

fn run(writer: SqlitePool, mut queue: mpsc::Receiver<Job>) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let jobs = std::mem::take(&mut batch);
            match writer.acquire().await {
                Ok(mut conn) => commit_batch(&mut conn, jobs).await,
                Err(e) => fail_all(jobs.into_iter().map(|j| j.reply), &Error::from(e)),
            }
        }
    })
}

/// Executes one statement of the batch's own transaction control.
///
/// Boxed as `Send` by hand: the compiler cannot prove it for the spawned batching loop otherwise
/// (rust-lang/rust#102211).
fn control<'c>(conn: &'c mut SqliteConnection, sql: &'static str) -> BoxFuture<'c, Result<()>> {
    Box::pin(async move {
        sqlx::query(sql)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(|e| Error::classify(e, String::new))
    })
}

/// One transaction for all `jobs`; answers each after the commit.
fn commit_batch(conn: &mut SqliteConnection, jobs: Vec<Job>) -> BoxFuture<'_, ()> {
    Box::pin(async move {
        if let Err(e) = control(conn, "BEGIN").await {
            return fail_all(jobs.into_iter().map(|j| j.reply), &e);
        }
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            let result = match control(conn, "SAVEPOINT job").await {
                Ok(()) => (job.work)(conn).await,
                Err(e) => Err(e),
            };
            let settled = if result.is_err() {
                match control(conn, "ROLLBACK TO job").await {
                    Ok(()) => control(conn, "RELEASE job").await,
                    Err(e) => Err(e),
                }
            } else {
                control(conn, "RELEASE job").await
            };
            if let Err(error) = settled {
                // SQLite may have rolled back the whole transaction (disk full, I/O error):
                // nothing of this batch was saved.
                let _ = control(conn, "ROLLBACK").await;
                answers.push((job.reply, Ok(Box::new(()) as Erased)));
                return fail_all(answers.into_iter().map(|(reply, _)| reply), &error);
            }
            answers.push((job.reply, result));
        }
        match control(conn, "COMMIT").await {
            Ok(()) => {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                let _ = control(conn, "ROLLBACK").await;
                fail_all(answers.into_iter().map(|(reply, _)| reply), &error);
            }
        }
    })
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

    /// Many concurrent writers share batches; a job that fails leaves nothing behind and does
    /// not disturb the others in its batch.
    #[tokio::test]
    async fn a_failing_job_rolls_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let writes = (0..64).map(|n: i64| {
            let batch = store.batch.clone();
            tokio::spawn(async move {
                batch
                    .write(move |conn| {
                        Box::pin(async move {
                            sqlx::query(
                                "INSERT INTO units (call_sign, kind, created_at) VALUES ($1, 'car', 0)",
                            )
                            .bind(format!("U-{n}"))
                            .execute(&mut *conn)
                            .await?;
                            if n % 10 == 3 {
                                return Err(Error::conflict("test", "refused after writing"));
                            }
                            Ok(n)
                        })
                    })
                    .await
            })
        });
        let results = futures_util::future::join_all(writes).await;
        let refused = results
            .iter()
            .filter(|r| matches!(r.as_ref().unwrap(), Err(Error::Conflict { .. })))
            .count();
        assert_eq!(refused, 7);
        let stored: Vec<String> = sqlx::query_scalar("SELECT call_sign FROM units ORDER BY id")
            .fetch_all(&store.reader)
            .await
            .unwrap();
        assert_eq!(stored.len(), 64 - 7);
        assert!(!stored.iter().any(|c| c.ends_with('3')));
    }
}
