//! `incidents.eido.jsonl`: every incident as one JSON document shaped like a NENA EIDO
//! (Emergency Incident Data Object) report, one per line: the incident, its location, callers,
//! notes, the units ordered to it with each order's disposition and times, and every event of
//! its timeline with its time and actor. `docs/schemas/eido-incident.schema.json` is its JSON
//! Schema. The import reads incidents, intake details, entries and orders back from it (the
//! timeline comes back from `events.jsonl`; the `statusChangeComponent` here is a copy for
//! readers of this file alone).

use std::io::Write;

use rusqlite::{params, Connection, Row, Transaction};
use serde::{Deserialize, Serialize};

use super::records::{json_list, write_line, Time};
use super::Window;

/// `$schema` of every document: the schema kept in the repository.
pub const SCHEMA_ID: &str = "urn:dispatch:export:eido-incident:1";

/// One incident.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IncidentDocument {
    #[serde(rename = "$schema")]
    pub schema: String,
    /// `urn:dispatch:incident:<id>`.
    pub eido_message_identifier: String,
    /// Always `Report`: a record of the incident, not a request to act on it.
    pub message_kind: String,
    pub last_update_time_stamp: Time,
    pub incident_component: IncidentComponent,
    pub location_component: Vec<LocationComponent>,
    pub call_component: Vec<CallComponent>,
    pub notes_component: Vec<NoteComponent>,
    pub emergency_resource_component: Vec<ResourceComponent>,
    pub status_change_component: Vec<StatusChange>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IncidentComponent {
    /// `incident-<id>`.
    pub component_identifier: String,
    /// The incident's number in this system.
    pub incident_tracking_identifier: i64,
    /// The incident type (`burglary`, `traffic_collision`, …).
    pub incident_type_common_registry_text: String,
    /// `open`, `dispatched` or `closed`.
    pub incident_status_common_registry_text: String,
    /// 0 (most urgent) to 4.
    pub priority: i64,
    pub disposition_text: Option<String>,
    pub required_capabilities: Vec<String>,
    pub creation_time_stamp: Time,
    pub closed_time_stamp: Option<Time>,
    pub created_by_operator_id: Option<i64>,
    /// The unit whose emergency button raised the incident.
    pub emergency_unit_id: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationComponent {
    /// `location-<incident id>`.
    pub component_identifier: String,
    pub civic_address_text: Option<String>,
    /// WGS 84 degrees.
    pub latitude: f64,
    pub longitude: f64,
}

/// A caller: the one taken at intake (`entryIdentifier` null) or one added later.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CallComponent {
    /// `call-<incident id>-intake` or `call-<incident id>-entry-<entry id>`.
    pub component_identifier: String,
    pub entry_identifier: Option<i64>,
    pub caller_name_text: Option<String>,
    pub callback_number: Option<String>,
    /// What the caller said, when the entry records it.
    pub note_text: Option<String>,
    pub author_text: Option<String>,
    pub author_operator_id: Option<i64>,
    pub time_stamp: Option<Time>,
}

/// A note: the one written at intake (`entryIdentifier` null) or a narrative entry.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoteComponent {
    /// `note-<incident id>-intake` or `note-<incident id>-entry-<entry id>`.
    pub component_identifier: String,
    pub entry_identifier: Option<i64>,
    pub note_text: Option<String>,
    pub author_text: Option<String>,
    pub author_operator_id: Option<i64>,
    pub note_time_stamp: Option<Time>,
}

/// A unit ordered to the incident: the order, its disposition and every time it reached.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceComponent {
    /// `order-<order id>`.
    pub component_identifier: String,
    pub order_identifier: i64,
    pub unit_identifier: i64,
    /// The unit's call sign (from `units.jsonl`; not read back).
    pub unit_call_sign: String,
    pub device_identifier: i64,
    /// The order's state: queued, delivered, displayed, acknowledged, accepted, declined,
    /// completed, cancelled or expired.
    pub disposition_text: String,
    pub created_by_operator_id: Option<i64>,
    pub created_time_stamp: Time,
    pub delivered_time_stamp: Option<Time>,
    pub displayed_time_stamp: Option<Time>,
    pub acknowledged_time_stamp: Option<Time>,
    pub decided_time_stamp: Option<Time>,
    pub decline_reason_text: Option<String>,
    pub decline_detail_text: Option<String>,
    pub completed_time_stamp: Option<Time>,
    pub ended_time_stamp: Option<Time>,
    pub end_reason_text: Option<String>,
    pub receipt_escalated_time_stamp: Option<Time>,
    pub acknowledgement_escalated_time_stamp: Option<Time>,
}

/// An event of the incident's timeline (a copy of its line in `events.jsonl`, without detail).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusChange {
    pub event_identifier: i64,
    pub kind: String,
    pub time_stamp: Time,
    pub actor: String,
    pub unit_identifier: Option<i64>,
    pub order_identifier: Option<i64>,
}

/// Writes every incident created inside the window, oldest first.
pub fn write_incidents(
    db: &Connection,
    window: Window,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut incidents = db.prepare(
        "SELECT id, kind, priority, status, lat, lon, address, caller, notes,
                required_capabilities, created_by, created_at, updated_at, closed_at,
                disposition, emergency_unit_id, callback
         FROM incidents WHERE created_at >= ?1 AND created_at <= ?2 ORDER BY id",
    )?;
    let mut entries = db.prepare(
        "SELECT id, kind, text, caller, callback, author_id, author, created_at
         FROM incident_entries WHERE incident_id = ?1 ORDER BY id",
    )?;
    let mut orders = db.prepare(
        "SELECT o.id, o.unit_id, u.call_sign, o.device_id, o.state, o.created_by, o.created_at,
                o.delivered_at, o.displayed_at, o.acknowledged_at, o.decided_at,
                o.decline_reason, o.decline_detail, o.completed_at, o.ended_at, o.end_reason,
                o.receipt_escalated_at, o.ack_escalated_at
         FROM orders o JOIN units u ON u.id = o.unit_id WHERE o.incident_id = ?1 ORDER BY o.id",
    )?;
    let mut events = db.prepare(
        "SELECT id, kind, at, actor, unit_id, order_id FROM events
         WHERE incident_id = ?1 ORDER BY id",
    )?;
    let mut rows = incidents.query(params![window.start_ms(), window.end_ms()])?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let mut doc = incident_document(r)?;
        let mut entry_rows = entries.query([id])?;
        while let Some(e) = entry_rows.next()? {
            push_entry(&mut doc, id, e)?;
        }
        doc.emergency_resource_component = orders
            .query_map([id], resource)?
            .collect::<rusqlite::Result<_>>()?;
        doc.status_change_component = events
            .query_map([id], |e| {
                Ok(StatusChange {
                    event_identifier: e.get(0)?,
                    kind: e.get(1)?,
                    time_stamp: Time(e.get(2)?),
                    actor: e.get(3)?,
                    unit_identifier: e.get(4)?,
                    order_identifier: e.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        write_line(out, &doc)?;
        count += 1;
    }
    Ok(count)
}

/// The document of an `incidents` row, with its intake caller and note; no entries or orders.
fn incident_document(r: &Row<'_>) -> rusqlite::Result<IncidentDocument> {
    let id: i64 = r.get(0)?;
    let caller: Option<String> = r.get(7)?;
    let notes: Option<String> = r.get(8)?;
    let callback: Option<String> = r.get(16)?;
    let mut call_component = Vec::new();
    if caller.is_some() || callback.is_some() {
        call_component.push(CallComponent {
            component_identifier: format!("call-{id}-intake"),
            entry_identifier: None,
            caller_name_text: caller,
            callback_number: callback,
            note_text: None,
            author_text: None,
            author_operator_id: None,
            time_stamp: None,
        });
    }
    let notes_component = notes
        .map(|text| NoteComponent {
            component_identifier: format!("note-{id}-intake"),
            entry_identifier: None,
            note_text: Some(text),
            author_text: None,
            author_operator_id: None,
            note_time_stamp: None,
        })
        .into_iter()
        .collect();
    Ok(IncidentDocument {
        schema: SCHEMA_ID.to_owned(),
        eido_message_identifier: format!("urn:dispatch:incident:{id}"),
        message_kind: "Report".to_owned(),
        last_update_time_stamp: Time(r.get(12)?),
        incident_component: IncidentComponent {
            component_identifier: format!("incident-{id}"),
            incident_tracking_identifier: id,
            incident_type_common_registry_text: r.get(1)?,
            incident_status_common_registry_text: r.get(3)?,
            priority: r.get(2)?,
            disposition_text: r.get(14)?,
            required_capabilities: json_list(&r.get::<_, String>(9)?),
            creation_time_stamp: Time(r.get(11)?),
            closed_time_stamp: Time::opt(r.get(13)?),
            created_by_operator_id: r.get(10)?,
            emergency_unit_id: r.get(15)?,
        },
        location_component: vec![LocationComponent {
            component_identifier: format!("location-{id}"),
            civic_address_text: r.get(6)?,
            latitude: r.get(4)?,
            longitude: r.get(5)?,
        }],
        call_component,
        notes_component,
        emergency_resource_component: Vec::new(),
        status_change_component: Vec::new(),
    })
}

/// Files an `incident_entries` row: a caller entry as a call, a narrative as a note.
fn push_entry(doc: &mut IncidentDocument, incident: i64, e: &Row<'_>) -> anyhow::Result<()> {
    let entry: i64 = e.get(0)?;
    let kind: String = e.get(1)?;
    let time = Some(Time(e.get(7)?));
    match kind.as_str() {
        "caller" => doc.call_component.push(CallComponent {
            component_identifier: format!("call-{incident}-entry-{entry}"),
            entry_identifier: Some(entry),
            caller_name_text: e.get(3)?,
            callback_number: e.get(4)?,
            note_text: e.get(2)?,
            author_text: e.get(6)?,
            author_operator_id: e.get(5)?,
            time_stamp: time,
        }),
        "narrative" => doc.notes_component.push(NoteComponent {
            component_identifier: format!("note-{incident}-entry-{entry}"),
            entry_identifier: Some(entry),
            note_text: e.get(2)?,
            author_text: e.get(6)?,
            author_operator_id: e.get(5)?,
            note_time_stamp: time,
        }),
        other => anyhow::bail!("incident entry {entry} has unknown kind {other:?}"),
    }
    Ok(())
}

fn resource(o: &Row<'_>) -> rusqlite::Result<ResourceComponent> {
    let id: i64 = o.get(0)?;
    Ok(ResourceComponent {
        component_identifier: format!("order-{id}"),
        order_identifier: id,
        unit_identifier: o.get(1)?,
        unit_call_sign: o.get(2)?,
        device_identifier: o.get(3)?,
        disposition_text: o.get(4)?,
        created_by_operator_id: o.get(5)?,
        created_time_stamp: Time(o.get(6)?),
        delivered_time_stamp: Time::opt(o.get(7)?),
        displayed_time_stamp: Time::opt(o.get(8)?),
        acknowledged_time_stamp: Time::opt(o.get(9)?),
        decided_time_stamp: Time::opt(o.get(10)?),
        decline_reason_text: o.get(11)?,
        decline_detail_text: o.get(12)?,
        completed_time_stamp: Time::opt(o.get(13)?),
        ended_time_stamp: Time::opt(o.get(14)?),
        end_reason_text: o.get(15)?,
        receipt_escalated_time_stamp: Time::opt(o.get(16)?),
        acknowledgement_escalated_time_stamp: Time::opt(o.get(17)?),
    })
}

/// Inserts one document's incident, intake details, entries and orders (units, devices and
/// operators are in already).
pub fn insert(tx: &Transaction<'_>, doc: IncidentDocument) -> anyhow::Result<()> {
    anyhow::ensure!(
        doc.schema == SCHEMA_ID,
        "$schema is {:?}, not {SCHEMA_ID:?}",
        doc.schema
    );
    let i = &doc.incident_component;
    let id = i.incident_tracking_identifier;
    let [location] = doc.location_component.as_slice() else {
        anyhow::bail!("incident {id} must have exactly one locationComponent");
    };
    let intake_call = doc
        .call_component
        .iter()
        .find(|c| c.entry_identifier.is_none());
    let intake_note = doc
        .notes_component
        .iter()
        .find(|n| n.entry_identifier.is_none());
    tx.execute(
        "INSERT INTO incidents (id, kind, priority, status, lat, lon, address, caller, notes,
                                required_capabilities, created_by, created_at, updated_at,
                                closed_at, disposition, emergency_unit_id, callback)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            id,
            i.incident_type_common_registry_text,
            i.priority,
            i.incident_status_common_registry_text,
            location.latitude,
            location.longitude,
            location.civic_address_text,
            intake_call.and_then(|c| c.caller_name_text.as_deref()),
            intake_note.and_then(|n| n.note_text.as_deref()),
            serde_json::to_string(&i.required_capabilities)?,
            i.created_by_operator_id,
            i.creation_time_stamp.0,
            doc.last_update_time_stamp.0,
            i.closed_time_stamp.map(|t| t.0),
            i.disposition_text,
            i.emergency_unit_id,
            intake_call.and_then(|c| c.callback_number.as_deref()),
        ],
    )?;
    let mut entry = tx.prepare_cached(
        "INSERT INTO incident_entries (id, incident_id, kind, text, caller, callback, author_id,
                                       author, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let missing =
        |what: &str, entry: i64| anyhow::anyhow!("incident {id} entry {entry} has no {what}");
    for c in &doc.call_component {
        if let Some(e) = c.entry_identifier {
            entry.execute(params![
                e,
                id,
                "caller",
                c.note_text,
                c.caller_name_text,
                c.callback_number,
                c.author_operator_id,
                c.author_text
                    .as_deref()
                    .ok_or_else(|| missing("authorText", e))?,
                c.time_stamp.ok_or_else(|| missing("timeStamp", e))?.0,
            ])?;
        }
    }
    for n in &doc.notes_component {
        if let Some(e) = n.entry_identifier {
            entry.execute(params![
                e,
                id,
                "narrative",
                n.note_text,
                None::<String>,
                None::<String>,
                n.author_operator_id,
                n.author_text
                    .as_deref()
                    .ok_or_else(|| missing("authorText", e))?,
                n.note_time_stamp
                    .ok_or_else(|| missing("noteTimeStamp", e))?
                    .0,
            ])?;
        }
    }
    let mut order = tx.prepare_cached(
        "INSERT INTO orders (id, incident_id, unit_id, device_id, state, created_by, created_at,
                             delivered_at, displayed_at, acknowledged_at, decided_at,
                             decline_reason, decline_detail, completed_at, ended_at, end_reason,
                             receipt_escalated_at, ack_escalated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    let ms = |t: Option<Time>| t.map(|t| t.0);
    for o in &doc.emergency_resource_component {
        order.execute(params![
            o.order_identifier,
            id,
            o.unit_identifier,
            o.device_identifier,
            o.disposition_text,
            o.created_by_operator_id,
            o.created_time_stamp.0,
            ms(o.delivered_time_stamp),
            ms(o.displayed_time_stamp),
            ms(o.acknowledged_time_stamp),
            ms(o.decided_time_stamp),
            o.decline_reason_text,
            o.decline_detail_text,
            ms(o.completed_time_stamp),
            ms(o.ended_time_stamp),
            o.end_reason_text,
            ms(o.receipt_escalated_time_stamp),
            ms(o.acknowledgement_escalated_time_stamp),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::domain::{IncidentStatus, OrderState};

    /// The schema in the repository names the same states as the code.
    #[test]
    fn the_schema_lists_the_states_the_code_knows() {
        let schema: Value = serde_json::from_str(include_str!(
            "../../../docs/schemas/eido-incident.schema.json"
        ))
        .unwrap();
        let listed = |pointer: &str| -> Vec<String> {
            schema
                .pointer(pointer)
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{pointer} in the schema"))
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(schema["$id"], super::SCHEMA_ID);
        assert_eq!(
            listed("/properties/emergencyResourceComponent/items/properties/dispositionText/enum"),
            OrderState::ALL.map(|s| s.as_str().to_owned())
        );
        assert_eq!(
            listed(
                "/properties/incidentComponent/properties/incidentStatusCommonRegistryText/enum"
            ),
            [
                IncidentStatus::Open,
                IncidentStatus::Dispatched,
                IncidentStatus::Closed
            ]
            .map(|s| s.as_str().to_owned())
        );
    }
}
