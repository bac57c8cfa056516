//! The officer's emergency button: the highest alert on every console (`officer_emergency`,
//! open until an operator acknowledges it) and a priority-0 emergency incident at the officer's
//! position, both in the write that records the device's action, so a press is applied once
//! however often the tablet resends it.

use dispatch_protocol::Location;

use super::incidents::insert_incident;
use super::orders::ActionOutcome;
use super::sql::{params, Sql};
use super::units::read_unit;
use super::{append_event, EventRefs, Result};
use crate::domain::{Actor, Millis, NewIncident};

/// The kind of the incident an emergency opens.
const EMERGENCY_KIND: &str = "officer_emergency";

/// Records an emergency of `unit_id` at `location`, or at the unit's last known position. With
/// no position at all the alert still goes out, without an incident.
pub(super) fn record_emergency(
    tx: &mut dyn Sql,
    unit_id: i64,
    location: Option<Location>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let unit = read_unit(tx, unit_id)?;
    let (at, located_by) = match (location, &unit.position) {
        (Some(fix), _) => (Some((fix.lat, fix.lon, fix.accuracy_m)), "device"),
        (None, Some(p)) => (Some((p.lat, p.lon, p.accuracy_m)), "last_known_position"),
        (None, None) => (None, "unknown"),
    };
    // Coordinates were validated when they arrived; should one still not make an incident,
    // the alert goes out without it rather than not at all.
    let new = at.and_then(|(lat, lon, _)| {
        let notes = format!("Emergency button pressed by {}", unit.call_sign);
        NewIncident::parse(
            EMERGENCY_KIND,
            0,
            lat,
            lon,
            None,
            None,
            None,
            Some(notes),
            &[],
        )
        .ok()
    });
    let incident = match new {
        Some(new) => {
            let id = insert_incident(tx, &new, actor, None, now)?;
            tx.run(
                "UPDATE incidents SET emergency_unit_id = ?1 WHERE id = ?2",
                params![unit_id, id],
            )?;
            Some(id)
        }
        None => None,
    };
    append_event(
        tx,
        now,
        "officer_emergency",
        actor,
        EventRefs {
            incident,
            unit: Some(unit_id),
            order: None,
        },
        &serde_json::json!({
            "call_sign": unit.call_sign,
            "lat": at.map(|a| a.0),
            "lon": at.map(|a| a.1),
            "accuracy_m": at.and_then(|a| a.2),
            "located_by": located_by,
        }),
    )?;
    Ok(ActionOutcome::Done)
}
