//! Reading the append-only timeline.

use sqlx::Row;

use super::{Error, Result, Store};
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
            "SELECT id, at, kind, actor, incident_id, unit_id, order_id, detail FROM events
             WHERE incident_id = $1 ORDER BY id",
        )
        .bind(incident_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
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
                }
            })
            .collect())
    }
}
