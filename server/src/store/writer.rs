//! The store's one write path, on either database: the group-committed SQLite writer
//! (`group_commit.rs`) or the PostgreSQL one (`postgres::PostgresWriter`). Both run a write as a
//! function of a [`Sql`] transaction inside a batch and answer after its COMMIT.

use super::group_commit::GroupCommit;
use super::postgres::PostgresWriter;
use super::sql::Sql;
use super::Result;
use crate::domain::Millis;

/// Handle to the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) enum Writer {
    Sqlite(GroupCommit),
    Postgres(PostgresWriter),
}

impl Writer {
    /// Runs `work` inside the next batch's transaction and returns its result once the batch
    /// has committed (see [`GroupCommit::write`] and [`PostgresWriter::write`]).
    ///
    /// # Errors
    /// The refusal of `work`, or the storage fault that kept the batch from committing.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> Result<T> + Send + 'static,
    {
        match self {
            Self::Sqlite(writer) => writer.write(work).await,
            Self::Postgres(writer) => writer.write(move |tx| work(tx)).await,
        }
    }

    /// When the last batch committed (server clock); 0 when it failed, or before the first.
    pub(super) fn last_commit(&self) -> Millis {
        match self {
            Self::Sqlite(writer) => writer.last_commit(),
            Self::Postgres(writer) => writer.last_commit(),
        }
    }

    /// The SQLite writer, for tests of what only SQLite does.
    #[cfg(test)]
    pub(super) fn sqlite(&self) -> &GroupCommit {
        match self {
            Self::Sqlite(writer) => writer,
            Self::Postgres(_) => panic!("not a SQLite store"),
        }
    }
}
