//! Reading the append-only timeline, the audit log and unit trails.

use super::sql::{params, SqlRow};

use super::{audit_chain, ChainHead, Error, Result, Store};
use crate::domain::event::rfc3339;
use crate::domain::TimelineEvent;

impl Store {
    /// Every event of an incident, in the order they were recorded.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown incident.
    pub async fn incident_timeline(&self, incident_id: i64) -> Result<Vec<TimelineEvent>> {
        let exists: Option<i64> = self
            .reader
            .value(
                "SELECT id FROM incidents WHERE id = $1",
                params![incident_id],
            )
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("incident {incident_id}")));
        }
        let rows = self.reader.select("SELECT id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source
             FROM events
             WHERE incident_id = $1 ORDER BY id", params![incident_id])
        .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// The whole audit log after event `after`, oldest first, at most `limit` entries.
    ///
    /// # Errors
    /// On a database error.
    pub async fn audit_log(&self, after: i64, limit: u32) -> Result<Vec<TimelineEvent>> {
        let rows = self.reader.select("SELECT id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source
             FROM events
             WHERE id > $1 ORDER BY id LIMIT $2", params![after, limit])
        .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// The newest event and its stored hash (`audit_chain.rs`), for an outside witness.
    ///
    /// # Errors
    /// On a database error.
    pub async fn audit_head(&self) -> Result<ChainHead> {
        let head = self.reader.select_opt(audit_chain::HEAD_SQL, &[]).await?;
        Ok(match head {
            Some(row) => ChainHead {
                id: row.get(0)?,
                hash: row.get(1)?,
            },
            None => ChainHead {
                id: 0,
                hash: Some(audit_chain::GENESIS.to_owned()),
            },
        })
    }

    /// A unit's sampled positions between two instants (ms), oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit.
    pub async fn unit_trail(
        &self,
        unit_id: i64,
        since: i64,
        until: i64,
    ) -> Result<Vec<TrailPoint>> {
        self.unit(unit_id).await?;
        let rows = self
            .reader
            .select(
                "SELECT at, lat, lon, accuracy_m FROM unit_positions
                 WHERE unit_id = $1 AND at >= $2 AND at <= $3 ORDER BY at LIMIT 10000",
                params![unit_id, since, until],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TrailPoint {
                    at_ms: r.get(0)?,
                    lat: r.get(1)?,
                    lon: r.get(2)?,
                    accuracy_m: r.get(3)?,
                })
            })
            .collect()
    }
}

/// One sampled position of a unit.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct TrailPoint {
    pub at_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
}

fn event_from_row(r: &SqlRow) -> TimelineEvent {
    let at: i64 = r.col("at");
    TimelineEvent {
        id: r.col("id"),
        at_ms: at,
        at: rfc3339(at),
        kind: r.col("kind"),
        actor: r.col("actor"),
        incident_id: r.col("incident_id"),
        unit_id: r.col("unit_id"),
        order_id: r.col("order_id"),
        detail: serde_json::from_str(&r.col::<String>("detail")).unwrap_or_default(),
        received_at_ms: r.col("received_at"),
        source: r.col("source"),
    }
}
