//! Where each device is connected, across the nodes of a cluster on PostgreSQL: every hello
//! counts up the device's `connection_gen` and names the node that took it (`connected_node`),
//! so the newest connection wins on every node, and a device counts as connected while the node
//! named is alive (its listening connection, whose `application_name` is the node's name, is
//! open). On SQLite one node holds every connection in memory and none of this is written.

use super::sql::{params, Dialect, Sql};
use super::{Change, Result, Store};

/// SQL that is true while the node named by `column` is alive (on PostgreSQL), never on SQLite.
pub(super) fn node_alive(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Sqlite => "0 = 1".into(),
        Dialect::Postgres => format!(
            "{column} IN (SELECT application_name FROM pg_stat_activity
                          WHERE datname = current_database()
                            AND application_name LIKE 'dispatchd-%')"
        ),
    }
}

impl Store {
    /// Records that `device_id` connected on this node, and tells the other nodes: the
    /// connection's generation, newer than any before it. `None` on SQLite.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn announce_connection(&self, device_id: i64) -> Result<Option<i64>> {
        let Some(node) = self.node().map(str::to_owned) else {
            return Ok(None);
        };
        self.writer
            .write(move |tx| {
                let generation: i64 = tx
                    .select_one(
                        "UPDATE devices SET connection_gen = connection_gen + 1,
                                            connected_node = ?2
                         WHERE id = ?1 RETURNING connection_gen",
                        params![device_id, &node],
                    )?
                    .get(0)?;
                tx.emit(Change::Connected {
                    device_id,
                    generation,
                });
                Ok(Some(generation))
            })
            .await
    }

    /// Records that the connection of generation `generation` closed, unless a newer one
    /// took over meanwhile.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn end_connection(&self, device_id: i64, generation: i64) -> Result<()> {
        self.writer
            .write(move |tx: &mut dyn Sql| {
                tx.run(
                    "UPDATE devices SET connected_node = NULL
                     WHERE id = ?1 AND connection_gen = ?2",
                    params![device_id, generation],
                )?;
                Ok(())
            })
            .await
    }

    /// The newest connection generation of each of `devices`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn connection_generations(&self, devices: &[i64]) -> Result<Vec<(i64, i64)>> {
        let sql = format!(
            "SELECT id, connection_gen FROM devices WHERE id IN {}",
            self.reader.dialect().json_ids(1)
        );
        let rows = self
            .reader
            .select(&sql, params![&super::sql::json_ids(devices)])
            .await?;
        rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
    }

    /// Active devices last connected to a node that is no longer alive (it died or lost the
    /// database): nobody holds their connection, so somebody must watch them as offline.
    ///
    /// # Errors
    /// On a database error.
    pub async fn devices_on_lost_nodes(&self) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT id FROM devices
             WHERE revoked_at IS NULL AND connected_node IS NOT NULL AND NOT ({})
             ORDER BY id",
            node_alive(self.reader.dialect(), "connected_node")
        );
        self.reader.column(&sql, &[]).await
    }
}
