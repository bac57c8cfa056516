//! The store's reads on PostgreSQL: a few connections to the server that accepts writes (the
//! primary, so a read sees every write confirmed before it), each used by one read at a time on a
//! blocking thread, with its prepared statements kept. A connection that failed is dropped and
//! the next read on its slot connects again, to whichever host is the primary by then.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::connect::{connect_primary, PostgresSettings};
use super::values::to_row;
use super::writer::{wire, Connection};
use crate::store::sql::{Param, SqlRow, Value};
use crate::store::{Error, Result};

/// Connections the reads use at most.
const CONNECTIONS: usize = 4;

/// Handle to the read connections. Cheap to clone.
#[derive(Clone)]
pub struct PostgresReader {
    settings: Arc<PostgresSettings>,
    /// `None` until first used, and after a failure.
    slots: Arc<Slots>,
    /// One per slot: a read holding one finds a slot free.
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PostgresReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReader")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PostgresReader {
    /// Reads through at most [`CONNECTIONS`] connections, made when first needed.
    pub fn new(settings: PostgresSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            slots: Arc::new(Slots((0..CONNECTIONS).map(|_| Mutex::new(None)).collect())),
            permits: Arc::new(Semaphore::new(CONNECTIONS)),
        }
    }

    /// Where the reads connect.
    pub fn settings(&self) -> &PostgresSettings {
        &self.settings
    }

    /// Every row of a query (`?N` or `$N` parameters).
    ///
    /// # Errors
    /// The query's error; a lost or refused connection is [`Error::StorageFailed`].
    pub async fn select(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqlRow>> {
        let values: Vec<Value> = params.iter().map(Value::from).collect();
        let sql = sql.to_owned();
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::StorageFailed("the reader has stopped".into()))?;
        let (slots, settings) = (Arc::clone(&self.slots), Arc::clone(&self.settings));
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut slot = slots
                .0
                .iter()
                .find_map(|slot| slot.try_lock().ok())
                .ok_or_else(|| Error::StorageFailed("no read connection is free".into()))?;
            let params: Vec<Param<'_>> = values.iter().map(Param::from).collect();
            let outcome = query(&mut slot, &settings, &sql, &params);
            if outcome.as_ref().is_err_and(Error::is_storage_fault) {
                *slot = None;
            }
            outcome
        })
        .await
        .map_err(|e| Error::Panicked(e.to_string()))?
    }

    /// Whether a read reaches the primary now.
    pub async fn is_ready(&self) -> bool {
        self.select("SELECT 1", &[]).await.is_ok()
    }
}

/// The read connections.
struct Slots(Vec<Mutex<Option<Connection>>>);

impl Drop for Slots {
    /// A `postgres` client closes its connection by blocking on it, which an async task must
    /// not do: the last handle may be dropped in one, so the clients close on a thread of
    /// their own.
    fn drop(&mut self) {
        let connections: Vec<Connection> = self
            .0
            .iter_mut()
            .filter_map(|slot| slot.get_mut().ok().and_then(Option::take))
            .collect();
        if !connections.is_empty() {
            std::thread::spawn(move || drop(connections));
        }
    }
}

fn query(
    slot: &mut Option<Connection>,
    settings: &PostgresSettings,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<SqlRow>> {
    if slot.is_none() {
        let (client, _) =
            connect_primary(settings).map_err(|e| Error::StorageFailed(format!("{e:#}")))?;
        *slot = Some(Connection::new(client));
    }
    let connection = slot
        .as_mut()
        .unwrap_or_else(|| unreachable!("connected above"));
    let statement = connection.prepared(sql)?;
    let names: Arc<[String]> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    let rows = connection.client.query(&statement, &wire(params))?;
    rows.iter().map(|row| to_row(row, &names)).collect()
}
