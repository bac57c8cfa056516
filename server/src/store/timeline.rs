//! Reading the append-only timeline, the audit log and unit trails.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{audit_chain, ChainHead, Error, Result, Store};
use crate::domain::event::rfc3339;
use crate::domain::TimelineEvent;

impl Store {
    /// Every event of an incident, in the order they were recorded.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown incident.
    pub async fn incident_timeline(&self, incident_id: i64) -> Result<Vec<TimelineEvent>> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
            .bind(incident_id)
            .fetch_optional(&self.reader)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("incident {incident_id}")));
        }
        let rows = sqlx::query(
            "SELECT id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source
             FROM events
             WHERE incident_id = $1 ORDER BY id",
        )
        .bind(incident_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// The whole audit log after event `after`, oldest first, at most `limit` entries.
    ///
    /// # Errors
    /// On a database error.
    pub async fn audit_log(&self, after: i64, limit: u32) -> Result<Vec<TimelineEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source
             FROM events
             WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(event_from_row).collect())
    }

    /// The newest event and its stored hash (`audit_chain.rs`), for an outside witness.
    ///
    /// # Errors
    /// On a database error.
    pub async fn audit_head(&self) -> Result<ChainHead> {
        let head: Option<(i64, Option<String>)> = sqlx::query_as(audit_chain::HEAD_SQL)
            .fetch_optional(&self.reader)
            .await?;
        Ok(match head {
            Some((id, hash)) => ChainHead { id, hash },
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
        let rows: Vec<(i64, f64, f64, Option<f64>)> = sqlx::query_as(
            "SELECT at, lat, lon, accuracy_m FROM unit_positions
             WHERE unit_id = $1 AND at >= $2 AND at <= $3 ORDER BY at LIMIT 10000",
        )
        .bind(unit_id)
        .bind(since)
        .bind(until)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at_ms, lat, lon, accuracy_m)| TrailPoint {
                at_ms,
                lat,
                lon,
                accuracy_m,
            })
            .collect())
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

fn event_from_row(r: &SqliteRow) -> TimelineEvent {
    let at: i64 = r.get("at");
    TimelineEvent {
        id: r.get("id"),
        at_ms: at,
        at: rfc3339(at),
        kind: r.get("kind"),
        actor: r.get("actor"),
        incident_id: r.get("incident_id"),
        unit_id: r.get("unit_id"),
        order_id: r.get("order_id"),
        detail: serde_json::from_str(r.get::<&str, _>("detail")).unwrap_or_default(),
        received_at_ms: r.get("received_at"),
        source: r.get("source"),
    }
}
