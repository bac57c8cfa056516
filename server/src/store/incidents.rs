//! Incidents and their timeline entry points (creation, edits, closing).

use std::sync::LazyLock;

use rusqlite::OptionalExtension;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::group_commit::Tx;
use super::{append_event, created_earlier, json_list, Error, EventRefs, Keyed, Result, Store};
use crate::domain::{
    now_ms, Actor, Incident, IncidentStatus, Millis, NewIncident, OrderState, Priority,
};

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
        emergency_unit_id: r.get("emergency_unit_id"),
    }
}

const INCIDENT_COLUMNS: &str = "id, kind, priority, status, lat, lon, address, caller, notes,
    required_capabilities, created_at, updated_at, closed_at, disposition, emergency_unit_id";

/// The call signs of the units whose orders on an incident are still active.
static ACTIVE_ORDER_UNITS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT u.call_sign FROM orders o JOIN units u ON u.id = o.unit_id
         WHERE o.incident_id = ?1 AND o.state IN ({}) ORDER BY o.id",
        OrderState::sql_list(&OrderState::ACTIVE)
    )
});

impl Store {
    /// Stores a new incident together with its first timeline event. A repeated
    /// `idempotency_key` returns the incident the first request created.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn create_incident(
        &self,
        new: &NewIncident,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Incident> {
        let (new, actor) = (new.clone(), actor.clone());
        let key = idempotency_key.map(str::to_owned);
        let id = self
            .writer
            .write(move |tx| {
                if let Some(id) = created_earlier(tx, Keyed::Incidents, key.as_deref())? {
                    return Ok(id);
                }
                insert_incident(tx, &new, &actor, key.as_deref(), now_ms())
            })
            .await?;
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

    /// The incidents with these ids (unknown ids are left out).
    ///
    /// # Errors
    /// On a database error.
    pub async fn incidents_by_id(&self, ids: &[i64]) -> Result<Vec<Incident>> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents
             WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(serde_json::to_string(ids).unwrap_or_default())
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(incident_from_row).collect())
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
        let (patch, actor) = (patch.clone(), actor.clone());
        self.writer
            .write(move |tx| {
                ensure_open(tx, id)?;
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
                let now = now_ms();
                tx.prepare_cached(
                    "UPDATE incidents SET
                        kind = COALESCE(?1, kind), priority = COALESCE(?2, priority),
                        lat = COALESCE(?3, lat), lon = COALESCE(?4, lon),
                        address = CASE WHEN ?5 THEN ?6 ELSE address END,
                        caller = CASE WHEN ?7 THEN ?8 ELSE caller END,
                        notes = CASE WHEN ?9 THEN ?10 ELSE notes END,
                        updated_at = ?11
                     WHERE id = ?12",
                )?
                .execute(rusqlite::params![
                    patch.kind,
                    patch.priority.map(|p| i64::from(p.get())),
                    patch.location.map(|l| l.0),
                    patch.location.map(|l| l.1),
                    patch.address.is_some(),
                    patch.address.clone().flatten(),
                    patch.caller.is_some(),
                    patch.caller.clone().flatten(),
                    patch.notes.is_some(),
                    patch.notes.clone().flatten(),
                    now,
                    id
                ])?;
                append_event(
                    tx,
                    now,
                    "incident_updated",
                    &actor,
                    EventRefs {
                        incident: Some(id),
                        ..Default::default()
                    },
                    &serde_json::Value::Object(changed),
                )
            })
            .await?;
        self.incident(id).await
    }

    /// Closes an incident once no order on it is active (undecided, or accepted and not yet
    /// cleared).
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
        let (disposition, actor) = (disposition.map(str::to_owned), actor.clone());
        self.writer
            .write(move |tx| {
                ensure_open(tx, id)?;
                let active: Vec<String> = tx
                    .prepare_cached(&ACTIVE_ORDER_UNITS)?
                    .query_map([id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                if !active.is_empty() {
                    return Err(Error::conflict(
                        "orders_active",
                        format!(
                            "incident {id} still has active orders ({}); they must clear first",
                            active.join(", ")
                        ),
                    ));
                }
                let now = now_ms();
                tx.prepare_cached(
                    "UPDATE incidents SET status = 'closed', closed_at = ?1, updated_at = ?1,
                         disposition = ?2
                     WHERE id = ?3",
                )?
                .execute(rusqlite::params![now, disposition, id])?;
                append_event(
                    tx,
                    now,
                    "incident_closed",
                    &actor,
                    EventRefs {
                        incident: Some(id),
                        ..Default::default()
                    },
                    &serde_json::json!({ "disposition": disposition }),
                )
            })
            .await?;
        self.incident(id).await
    }
}

/// Fails unless incident `id` exists and is not closed.
fn ensure_open(tx: &Tx<'_>, id: i64) -> Result<()> {
    let status: Option<String> = tx
        .prepare_cached("SELECT status FROM incidents WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match status.as_deref() {
        None => Err(Error::NotFound(format!("incident {id}"))),
        Some("closed") => Err(Error::conflict(
            "incident_closed",
            format!("incident {id} is closed"),
        )),
        Some(_) => Ok(()),
    }
}

/// Inserts an incident and its `incident_created` event inside the running write; returns its
/// id.
pub(super) fn insert_incident(
    tx: &mut Tx<'_>,
    new: &NewIncident,
    actor: &Actor,
    key: Option<&str>,
    now: Millis,
) -> Result<i64> {
    let caps = serde_json::to_string(new.required_capabilities.as_slice()).unwrap_or_default();
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO incidents (kind, priority, lat, lon, address, caller, notes,
                 required_capabilities, created_by, created_at, updated_at,
                 idempotency_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11) RETURNING id",
        )?
        .query_row(
            rusqlite::params![
                new.kind,
                i64::from(new.priority.get()),
                new.lat,
                new.lon,
                new.address,
                new.caller,
                new.notes,
                caps,
                actor.operator_id(),
                now,
                key
            ],
            |r| r.get(0),
        )?;
    append_event(
        tx,
        now,
        "incident_created",
        actor,
        EventRefs {
            incident: Some(id),
            ..Default::default()
        },
        &serde_json::json!({
            "kind": new.kind, "priority": new.priority.get(), "lat": new.lat,
            "lon": new.lon, "address": new.address,
            "required_capabilities": new.required_capabilities.as_slice(),
        }),
    )?;
    Ok(id)
}
