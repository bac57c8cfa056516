//! Incidents and their timeline entry points (creation, edits, closing).

use super::sql::{json_ids, params, Sql, SqlRow, Statements};
use std::sync::LazyLock;

use super::incident_entries::tell_units;
use super::row::Columns;
use super::{append_event, created_earlier, Error, EventRefs, Keyed, Result, Store};
use crate::domain::{
    now_ms, Actor, Incident, IncidentPhase, IncidentStatus, Millis, NewIncident, OrderState,
    Priority, UnitStatus,
};
use dispatch_geo::haversine_m;

/// Fields an operator may change on an open incident; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    pub kind: Option<String>,
    pub priority: Option<Priority>,
    pub location: Option<(f64, f64)>,
    pub address: Option<Option<String>>,
    pub caller: Option<Option<String>>,
    pub callback: Option<Option<String>>,
    pub notes: Option<Option<String>>,
}

impl IncidentPatch {
    /// The names of the fields it changes, as an `incident_update` message lists them.
    pub fn changed(&self) -> Vec<&'static str> {
        [
            ("kind", self.kind.is_some()),
            ("priority", self.priority.is_some()),
            ("location", self.location.is_some()),
            ("address", self.address.is_some()),
            ("caller", self.caller.is_some()),
            ("callback", self.callback.is_some()),
            ("notes", self.notes.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

/// An earlier incident a new call may be about.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct PossibleDuplicate {
    pub incident: Incident,
    /// Straight-line distance from the new call's location.
    pub distance_m: f64,
    /// The addresses are the same once case, punctuation and spacing are set aside.
    pub same_address: bool,
}

/// An address for comparison: lower case, letters and digits only, single spaces.
fn normalised_address(address: &str) -> String {
    address
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn incident_from_row(r: &SqlRow) -> Incident {
    Incident {
        id: r.col("id"),
        kind: r.col("kind"),
        priority: u8::try_from(r.col::<i64>("priority")).unwrap_or(4),
        status: IncidentStatus::parse(&r.col::<String>("status")).unwrap_or(IncidentStatus::Open),
        lat: r.col("lat"),
        lon: r.col("lon"),
        address: r.col("address"),
        caller: r.col("caller"),
        callback: r.col("callback"),
        notes: r.col("notes"),
        required_capabilities: r.list("required_capabilities"),
        phase: IncidentPhase::parse(&r.col::<String>("phase")).unwrap_or(IncidentPhase::Pending),
        created_at_ms: r.col("created_at"),
        updated_at_ms: r.col("updated_at"),
        closed_at_ms: r.col("closed_at"),
        disposition: r.col("disposition"),
        emergency_unit_id: r.col("emergency_unit_id"),
    }
}

/// The columns of an incident and its phase (see [`IncidentPhase`]): the furthest along of
/// the units holding an active order (3 on scene, 2 en route, 1 any other active order), else
/// whether any order was cleared.
static INCIDENT_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let accepted = OrderState::Accepted.as_str();
    format!(
        "id, kind, priority, status, lat, lon, address, caller, callback, notes,
         required_capabilities, created_at, updated_at, closed_at, disposition, emergency_unit_id,
         CASE WHEN status = 'closed' THEN '{closed}'
              ELSE CASE (SELECT MAX(CASE WHEN o.state = '{accepted}' AND u.status = '{on_scene}'
                                         THEN 3
                                         WHEN o.state = '{accepted}' AND u.status = '{en_route}'
                                         THEN 2 ELSE 1 END)
                         FROM orders o JOIN units u ON u.id = o.unit_id
                         WHERE o.incident_id = incidents.id AND {active})
                   WHEN 3 THEN '{on_scene_phase}' WHEN 2 THEN '{en_route_phase}'
                   WHEN 1 THEN '{dispatched}'
                   ELSE CASE WHEN EXISTS (SELECT 1 FROM orders o WHERE o.incident_id = incidents.id
                                              AND o.state = '{completed}')
                             THEN '{cleared}' ELSE '{pending}' END
                   END
         END AS phase",
        closed = IncidentPhase::Closed.as_str(),
        on_scene = UnitStatus::OnScene.as_str(),
        en_route = UnitStatus::EnRoute.as_str(),
        active = OrderState::sql_in("o.state", &OrderState::ACTIVE),
        on_scene_phase = IncidentPhase::OnScene.as_str(),
        en_route_phase = IncidentPhase::EnRoute.as_str(),
        dispatched = IncidentPhase::Dispatched.as_str(),
        completed = OrderState::Completed.as_str(),
        cleared = IncidentPhase::Cleared.as_str(),
        pending = IncidentPhase::Pending.as_str(),
    )
});

/// The call signs of the units whose orders on an incident are still active.
static ACTIVE_ORDER_UNITS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT u.call_sign FROM orders o JOIN units u ON u.id = o.unit_id
         WHERE o.incident_id = ?1 AND {} ORDER BY o.id",
        OrderState::sql_in("o.state", &OrderState::ACTIVE)
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
        let sql = format!("SELECT {} FROM incidents WHERE id = $1", *INCIDENT_COLUMNS);
        self.reader
            .select_opt(&sql, params![id])
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
            "SELECT {} FROM incidents WHERE id IN {} ORDER BY id",
            *INCIDENT_COLUMNS,
            self.reader.dialect().json_ids(1)
        );
        let rows = self.reader.select(&sql, params![&json_ids(ids)]).await?;
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
            "SELECT {} FROM incidents
             WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) ORDER BY id DESC LIMIT $2",
            *INCIDENT_COLUMNS
        );
        let rows = self
            .reader
            .select(&sql, params![status.map(IncidentStatus::as_str), limit])
            .await?;
        Ok(rows.iter().map(incident_from_row).collect())
    }

    /// Incidents a new call at `(lat, lon)` (and `address`) may duplicate: open ones, and ones
    /// created or closed since `since_ms`, within `radius_m` or at the same address; nearest
    /// first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn possible_duplicates(
        &self,
        (lat, lon): (f64, f64),
        address: Option<&str>,
        since_ms: Millis,
        radius_m: f64,
    ) -> Result<Vec<PossibleDuplicate>> {
        let sql = format!(
            "SELECT {} FROM incidents WHERE id IN (
                 SELECT id FROM incidents WHERE status IN ('{}', '{}')
                 UNION SELECT id FROM incidents WHERE created_at >= $1
                 UNION SELECT id FROM incidents WHERE closed_at >= $1)",
            *INCIDENT_COLUMNS,
            IncidentStatus::Open.as_str(),
            IncidentStatus::Dispatched.as_str(),
        );
        let rows = self.reader.select(&sql, params![since_ms]).await?;
        let address = address.map(normalised_address).filter(|a| !a.is_empty());
        let mut found: Vec<PossibleDuplicate> = rows
            .iter()
            .map(incident_from_row)
            .filter_map(|incident| {
                let distance_m = haversine_m(lat, lon, incident.lat, incident.lon);
                let same_address = address.is_some()
                    && incident.address.as_deref().map(normalised_address) == address;
                (distance_m <= radius_m || same_address).then_some(PossibleDuplicate {
                    incident,
                    distance_m: distance_m.round(),
                    same_address,
                })
            })
            .collect();
        found.sort_by(|a, b| a.distance_m.total_cmp(&b.distance_m));
        Ok(found)
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
                    ("callback", &patch.callback),
                    ("notes", &patch.notes),
                ] {
                    if let Some(v) = value {
                        changed.insert(name.into(), v.clone().into());
                    }
                }
                let now = now_ms();
                tx.run(
                    "UPDATE incidents SET
                        kind = COALESCE(?1, kind), priority = COALESCE(?2, priority),
                        lat = COALESCE(?3, lat), lon = COALESCE(?4, lon),
                        address = CASE WHEN ?5 THEN ?6 ELSE address END,
                        caller = CASE WHEN ?7 THEN ?8 ELSE caller END,
                        notes = CASE WHEN ?9 THEN ?10 ELSE notes END,
                        callback = CASE WHEN ?11 THEN ?12 ELSE callback END,
                        updated_at = ?13
                     WHERE id = ?14",
                    params![
                        patch.kind.as_ref(),
                        patch.priority.map(|p| i64::from(p.get())),
                        patch.location.map(|l| l.0),
                        patch.location.map(|l| l.1),
                        patch.address.is_some(),
                        patch.address.as_ref().and_then(Option::as_ref),
                        patch.caller.is_some(),
                        patch.caller.as_ref().and_then(Option::as_ref),
                        patch.notes.is_some(),
                        patch.notes.as_ref().and_then(Option::as_ref),
                        patch.callback.is_some(),
                        patch.callback.as_ref().and_then(Option::as_ref),
                        now,
                        id
                    ],
                )?;
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
                )?;
                let update = tx.chain_head().map_or(0, |(event, _)| *event);
                tell_units(tx, id, update, &patch.changed(), now)
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
                let active = tx
                    .select(&ACTIVE_ORDER_UNITS, params![id])?
                    .iter()
                    .map(|r| r.get::<String>(0))
                    .collect::<Result<Vec<_>>>()?;
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
                tx.run(
                    "UPDATE incidents SET status = 'closed', closed_at = ?1, updated_at = ?1,
                         disposition = ?2
                     WHERE id = ?3",
                    params![now, disposition.as_ref(), id],
                )?;
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
pub(super) fn ensure_open(tx: &mut dyn Statements, id: i64) -> Result<()> {
    let status: Option<String> = tx
        .select_opt("SELECT status FROM incidents WHERE id = ?1", params![id])?
        .map(|r| r.get(0))
        .transpose()?;
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
    tx: &mut dyn Sql,
    new: &NewIncident,
    actor: &Actor,
    key: Option<&str>,
    now: Millis,
) -> Result<i64> {
    let caps = serde_json::to_string(new.required_capabilities.as_slice()).unwrap_or_default();
    let id = tx.insert(
        "INSERT INTO incidents (kind, priority, lat, lon, address, caller, notes,
             required_capabilities, created_by, created_at, updated_at,
             idempotency_key, callback)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
        params![
            &new.kind,
            i64::from(new.priority.get()),
            new.lat,
            new.lon,
            new.address.as_ref(),
            new.caller.as_ref(),
            new.notes.as_ref(),
            &caps,
            actor.operator_id(),
            now,
            key,
            new.callback.as_ref()
        ],
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
            "lon": new.lon, "address": new.address, "caller": new.caller,
            "callback": new.callback,
            "required_capabilities": new.required_capabilities.as_slice(),
        }),
    )?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::normalised_address;

    #[test]
    fn addresses_compare_without_case_punctuation_or_spacing() {
        assert_eq!(
            normalised_address(" Aleksanterinkatu  52, HELSINKI "),
            normalised_address("aleksanterinkatu 52 helsinki")
        );
        assert_eq!(normalised_address("세종대로 110"), "세종대로 110");
        assert_ne!(
            normalised_address("Mannerheimintie 5"),
            normalised_address("Mannerheimintie 15")
        );
        assert_eq!(normalised_address("--"), "");
    }
}
