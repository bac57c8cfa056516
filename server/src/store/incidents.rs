//! Incidents and their timeline entry points (creation, edits, closing).

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{append_event, commit, json_list, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Incident, IncidentStatus, NewIncident, Priority};

/// Fields an operator may change on an open incident; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    pub kind: Option<String>,
    pub priority: Option<Priority>,
    pub location: Option<(f64, f64)>,
    pub address: Option<Option<String>>,
    pub caller: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

fn incident_from_row(r: &SqliteRow) -> Incident {
    Incident {
        id: r.get("id"),
        kind: r.get("kind"),
        priority: u8::try_from(r.get::<i64, _>("priority")).unwrap_or(4),
        status: IncidentStatus::parse(r.get::<&str, _>("status")).unwrap_or(IncidentStatus::Open),
        lat: r.get("lat"),
        lon: r.get("lon"),
        address: r.get("address"),
        caller: r.get("caller"),
        notes: r.get("notes"),
        required_capabilities: json_list(r, "required_capabilities"),
        created_at_ms: r.get("created_at"),
        updated_at_ms: r.get("updated_at"),
        closed_at_ms: r.get("closed_at"),
        disposition: r.get("disposition"),
    }
}

const INCIDENT_COLUMNS: &str = "id, kind, priority, status, lat, lon, address, caller, notes,
    required_capabilities, created_at, updated_at, closed_at, disposition";

impl Store {
    /// Stores a new incident together with its first timeline event.
    ///
    /// # Errors
    /// On a database error.
    pub async fn create_incident(&self, new: &NewIncident, actor: &Actor) -> Result<Incident> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let caps = serde_json::to_string(new.required_capabilities.as_slice()).unwrap_or_default();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO incidents (kind, priority, lat, lon, address, caller, notes,
                                    required_capabilities, created_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
        )
        .bind(&new.kind)
        .bind(i64::from(new.priority.get()))
        .bind(new.lat)
        .bind(new.lon)
        .bind(&new.address)
        .bind(&new.caller)
        .bind(&new.notes)
        .bind(&caps)
        .bind(actor.operator_id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::classify(e, String::new))?;
        append_event(
            &mut tx,
            now,
            "incident_created",
            actor,
            EventRefs { incident: Some(id), ..Default::default() },
            serde_json::json!({
                "kind": new.kind, "priority": new.priority.get(), "lat": new.lat, "lon": new.lon,
                "address": new.address, "required_capabilities": new.required_capabilities.as_slice(),
            }),
        )
        .await?;
        commit(tx).await?;
        self.incident(id).await
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn incident(&self, id: i64) -> Result<Incident> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| incident_from_row(&r))
            .ok_or_else(|| Error::NotFound(format!("incident {id}")))
    }

    /// Incidents, newest first, optionally only those in one status.
    ///
    /// # Errors
    /// On a database error.
    pub async fn incidents(
        &self,
        status: Option<IncidentStatus>,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(status.map(IncidentStatus::as_str))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(incident_from_row).collect())
    }

    /// Applies an edit to an open incident and records what changed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id, [`Error::Conflict`] when it is closed.
    pub async fn update_incident(
        &self,
        id: i64,
        patch: &IncidentPatch,
        actor: &Actor,
    ) -> Result<Incident> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        ensure_open(&mut tx, id).await?;
        let mut changed = serde_json::Map::new();
        if let Some(kind) = &patch.kind {
            changed.insert("kind".into(), kind.clone().into());
        }
        if let Some(p) = patch.priority {
            changed.insert("priority".into(), p.get().into());
        }
        if let Some((lat, lon)) = patch.location {
            changed.insert("lat".into(), lat.into());
            changed.insert("lon".into(), lon.into());
        }
        for (name, value) in [
            ("address", &patch.address),
            ("caller", &patch.caller),
            ("notes", &patch.notes),
        ] {
            if let Some(v) = value {
                changed.insert(name.into(), v.clone().into());
            }
        }
        sqlx::query(
            "UPDATE incidents SET
                kind = COALESCE($1, kind), priority = COALESCE($2, priority),
                lat = COALESCE($3, lat), lon = COALESCE($4, lon),
                address = CASE WHEN $5 THEN $6 ELSE address END,
                caller = CASE WHEN $7 THEN $8 ELSE caller END,
                notes = CASE WHEN $9 THEN $10 ELSE notes END,
                updated_at = $11
             WHERE id = $12",
        )
        .bind(&patch.kind)
        .bind(patch.priority.map(|p| i64::from(p.get())))
        .bind(patch.location.map(|l| l.0))
        .bind(patch.location.map(|l| l.1))
        .bind(patch.address.is_some())
        .bind(patch.address.clone().flatten())
        .bind(patch.caller.is_some())
        .bind(patch.caller.clone().flatten())
        .bind(patch.notes.is_some())
        .bind(patch.notes.clone().flatten())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append_event(
            &mut tx,
            now,
            "incident_updated",
            actor,
            EventRefs {
                incident: Some(id),
                ..Default::default()
            },
            serde_json::Value::Object(changed),
        )
        .await?;
        commit(tx).await?;
        self.incident(id).await
    }

    /// Closes an incident once no order on it is still active.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; [`Error::Conflict`] when it is already closed or
    /// a unit is still working on it.
    pub async fn close_incident(
        &self,
        id: i64,
        disposition: Option<&str>,
        actor: &Actor,
    ) -> Result<Incident> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        ensure_open(&mut tx, id).await?;
        let active: Vec<String> = sqlx::query_scalar(
            "SELECT u.call_sign FROM orders o JOIN units u ON u.id = o.unit_id
             WHERE o.incident_id = $1 AND o.state IN ('queued', 'delivered', 'accepted')",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if !active.is_empty() {
            return Err(Error::conflict(
                "orders_active",
                format!(
                    "incident {id} still has active orders ({}); they must clear first",
                    active.join(", ")
                ),
            ));
        }
        sqlx::query(
            "UPDATE incidents SET status = 'closed', closed_at = $1, updated_at = $1, disposition = $2
             WHERE id = $3",
        )
        .bind(now)
        .bind(disposition)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append_event(
            &mut tx,
            now,
            "incident_closed",
            actor,
            EventRefs {
                incident: Some(id),
                ..Default::default()
            },
            serde_json::json!({ "disposition": disposition }),
        )
        .await?;
        commit(tx).await?;
        self.incident(id).await
    }
}

/// Fails unless incident `id` exists and is not closed.
async fn ensure_open(tx: &mut sqlx::SqliteConnection, id: i64) -> Result<()> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM incidents WHERE id = $1")
        .bind(id)
        .fetch_optional(tx)
        .await?;
    match status.as_deref() {
        None => Err(Error::NotFound(format!("incident {id}"))),
        Some("closed") => Err(Error::conflict(
            "incident_closed",
            format!("incident {id} is closed"),
        )),
        Some(_) => Ok(()),
    }
}
