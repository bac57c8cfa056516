//! Tablet links: a unit whose device stayed disconnected past the configured time is marked
//! (`link_lost_at`, `unit_link_lost`) and leaves the recommendations; its next connection
//! clears the mark (`unit_link_restored`).

use super::presence::node_alive;
use super::sql::params;
use super::units::read_unit;
use super::{append_event, Change, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis};

impl Store {
    /// Marks the unit of `device_id` as without a tablet link since `since`, if that device is
    /// still the unit's active one, is not connected to another live node of the cluster, and
    /// the unit is not marked yet. Returns whether it marked.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn mark_link_lost(&self, device_id: i64, since: Millis) -> Result<bool> {
        self.writer
            .write(move |tx| {
                let sql = format!(
                    "UPDATE units SET link_lost_at = ?1
                     WHERE link_lost_at IS NULL
                       AND id = (SELECT unit_id FROM devices
                                 WHERE id = ?2 AND revoked_at IS NULL
                                   AND NOT (connected_node IS NOT NULL AND {}))
                     RETURNING id",
                    node_alive(tx.dialect(), "connected_node")
                );
                let unit_id: Option<i64> = tx
                    .select_opt(&sql, params![since, device_id])?
                    .map(|r| r.get(0))
                    .transpose()?;
                let Some(unit_id) = unit_id else {
                    return Ok(false);
                };
                let now = now_ms();
                append_event(
                    tx,
                    now,
                    "unit_link_lost",
                    &Actor::System,
                    EventRefs {
                        unit: Some(unit_id),
                        ..EventRefs::default()
                    },
                    &serde_json::json!({ "device_id": device_id, "since_ms": since }),
                )?;
                let unit = read_unit(tx, unit_id)?;
                tx.emit(Change::Unit(unit));
                Ok(true)
            })
            .await
    }

    /// Clears the unit's lost-link mark (its device connected again). Returns whether it was
    /// marked.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn restore_link(&self, unit_id: i64, device_id: i64) -> Result<bool> {
        self.writer
            .write(move |tx| {
                let since: Option<Millis> = tx
                    .select_opt(
                        "SELECT link_lost_at FROM units WHERE id = ?1",
                        params![unit_id],
                    )?
                    .map(|r| r.get(0))
                    .transpose()?
                    .flatten();
                let Some(since) = since else {
                    return Ok(false);
                };
                tx.run(
                    "UPDATE units SET link_lost_at = NULL WHERE id = ?1",
                    params![unit_id],
                )?;
                let now = now_ms();
                append_event(
                    tx,
                    now,
                    "unit_link_restored",
                    &Actor::Device { id: device_id },
                    EventRefs {
                        unit: Some(unit_id),
                        ..EventRefs::default()
                    },
                    &serde_json::json!({ "device_id": device_id, "lost_since_ms": since }),
                )?;
                let unit = read_unit(tx, unit_id)?;
                tx.emit(Change::Unit(unit));
                Ok(true)
            })
            .await
    }

    /// The unit of a device.
    ///
    /// # Errors
    /// [`super::Error::NotFound`] for an unknown device.
    pub async fn device_unit(&self, device_id: i64) -> Result<i64> {
        self.reader
            .value(
                "SELECT unit_id FROM devices WHERE id = $1",
                params![device_id],
            )
            .await?
            .ok_or_else(|| super::Error::NotFound(format!("device {device_id}")))
    }

    /// Every device that is the active one of its unit.
    ///
    /// # Errors
    /// On a database error.
    pub async fn active_devices(&self) -> Result<Vec<i64>> {
        self.reader
            .column(
                "SELECT id FROM devices WHERE revoked_at IS NULL ORDER BY id",
                &[],
            )
            .await
    }
}
