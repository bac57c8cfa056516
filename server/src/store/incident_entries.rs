//! What is added to an incident after its creation, and what its units are told of it:
//! narrative lines and further callers (append-only, each also a timeline event), and the
//! `incident_update` message queued to every unit holding an active order for the incident
//! after each change, carrying the incident as it now is.

use super::sql::{params, Sql, SqlRow, Statements};
use dispatch_protocol::{IncidentBrief, IncidentEntry, IncidentUpdateMessage, Message};

use super::incidents::ensure_open;
use super::outbox::{self, DeliveryRefs};
use super::premises::hazards_at;
use super::{append_event, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, OrderState};

/// What an operator adds to an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewEntry {
    /// A line of narrative.
    Narrative { text: String },
    /// Another caller about the same incident (at least one of the three is set).
    Caller {
        caller: Option<String>,
        callback: Option<String>,
        text: Option<String>,
    },
}

impl NewEntry {
    fn kind(&self) -> &'static str {
        match self {
            Self::Narrative { .. } => "narrative",
            Self::Caller { .. } => "caller",
        }
    }

    fn columns(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        match self {
            Self::Narrative { text } => (Some(text), None, None),
            Self::Caller {
                caller,
                callback,
                text,
            } => (text.as_deref(), caller.as_deref(), callback.as_deref()),
        }
    }
}

const ENTRY_COLUMNS: &str = "id, kind, author, created_at, text, caller, callback";

fn entry_from_row(r: &SqlRow) -> Result<IncidentEntry> {
    Ok(IncidentEntry {
        id: r.get(0)?,
        kind: r.get(1)?,
        author: r.get(2)?,
        at_ms: r.get(3)?,
        text: r.get(4)?,
        caller: r.get(5)?,
        callback: r.get(6)?,
    })
}

impl Store {
    /// Adds an entry to an open incident, records `narrative_added` or `caller_added` in its
    /// timeline and sends the incident as it now is to its units. A repeated `idempotency_key`
    /// answers the entry the first request added.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown incident, [`Error::Conflict`] when it is closed or
    /// the key was used for another incident.
    pub async fn add_incident_entry(
        &self,
        incident_id: i64,
        entry: NewEntry,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<IncidentEntry> {
        let (actor, key) = (actor.clone(), idempotency_key.map(str::to_owned));
        self.writer
            .write(move |tx| {
                if let Some(earlier) = entry_by_key(tx, key.as_deref())? {
                    return match earlier {
                        (for_incident, entry) if for_incident == incident_id => Ok(entry),
                        _ => Err(Error::conflict(
                            "idempotency_key_reused",
                            format!("idempotency key {key:?} was used for another incident"),
                        )),
                    };
                }
                ensure_open(tx, incident_id)?;
                let now = now_ms();
                let (text, caller, callback) = entry.columns();
                let added = entry_from_row(&tx.select_one(
                    &format!(
                        "INSERT INTO incident_entries (incident_id, kind, text, caller, callback,
                             author_id, author, created_at, idempotency_key)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING {ENTRY_COLUMNS}"
                    ),
                    params![
                        incident_id,
                        entry.kind(),
                        text,
                        caller,
                        callback,
                        actor.operator_id(),
                        &actor.display_name(),
                        now,
                        key.as_ref()
                    ],
                )?)?;
                append_event(
                    tx,
                    now,
                    &format!("{}_added", entry.kind()),
                    &actor,
                    EventRefs {
                        incident: Some(incident_id),
                        ..EventRefs::default()
                    },
                    &serde_json::json!({
                        "entry_id": added.id, "text": text, "caller": caller, "callback": callback,
                    }),
                )?;
                let update = tx.chain_head().map_or(0, |(event, _)| *event);
                tell_units(tx, incident_id, update, &["narrative"], now)?;
                Ok(added)
            })
            .await
    }

    /// Every entry of an incident, oldest first.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown incident.
    pub async fn incident_entries(&self, incident_id: i64) -> Result<Vec<IncidentEntry>> {
        self.incident(incident_id).await?;
        let rows = self
            .reader
            .select(
                &format!(
            "SELECT {ENTRY_COLUMNS} FROM incident_entries WHERE incident_id = $1 ORDER BY id"
        ),
                params![incident_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| IncidentEntry {
                id: r.col("id"),
                kind: r.col("kind"),
                author: r.col("author"),
                at_ms: r.col("created_at"),
                text: r.col("text"),
                caller: r.col("caller"),
                callback: r.col("callback"),
            })
            .collect())
    }
}

/// The entry an earlier request with `key` added, with its incident.
fn entry_by_key(
    tx: &mut dyn Statements,
    key: Option<&str>,
) -> Result<Option<(i64, IncidentEntry)>> {
    let Some(key) = key else { return Ok(None) };
    // The incident comes after the entry's columns, so that `entry_from_row` reads the rest.
    let sql = format!(
        "SELECT {ENTRY_COLUMNS}, incident_id FROM incident_entries WHERE idempotency_key = ?1"
    );
    tx.select_opt(&sql, params![key])?
        .map(|r| Ok((r.get(7)?, entry_from_row(&r)?)))
        .transpose()
}

/// What an order or an update tells the officer about an incident, which must exist and be
/// open: its fields, the agency's hazards and notes for its location, and its newest entries.
pub(super) fn incident_brief(tx: &mut dyn Statements, incident_id: i64) -> Result<IncidentBrief> {
    let row = tx.select_opt(
        "SELECT kind, priority, status, lat, lon, address, notes, caller, callback
         FROM incidents WHERE id = ?1",
        params![incident_id],
    )?;
    let incident = match row {
        None => None,
        Some(r) => {
            let brief = IncidentBrief {
                id: incident_id,
                kind: r.get(0)?,
                priority: u8::try_from(r.get::<i64>(1)?).unwrap_or(4),
                lat: r.get(3)?,
                lon: r.get(4)?,
                address: r.get(5)?,
                notes: r.get(6)?,
                caller: r.get(7)?,
                callback: r.get(8)?,
                hazards: Vec::new(),
                narrative: Vec::new(),
            };
            Some((brief, r.get::<String>(2)? == "closed"))
        }
    };
    match incident {
        None => Err(Error::NotFound(format!("incident {incident_id}"))),
        Some((_, true)) => Err(Error::conflict(
            "incident_closed",
            format!("incident {incident_id} is closed"),
        )),
        Some((mut brief, false)) => {
            brief.hazards = hazards_at(tx, brief.lat, brief.lon, now_ms())?;
            brief.narrative = newest_entries(tx, incident_id)?;
            Ok(brief)
        }
    }
}

/// The newest [`dispatch_protocol::MAX_BRIEF_ENTRIES`] entries of an incident, oldest first.
fn newest_entries(tx: &mut dyn Statements, incident_id: i64) -> Result<Vec<IncidentEntry>> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM (SELECT * FROM incident_entries WHERE incident_id = ?1
             ORDER BY id DESC LIMIT {}) AS newest ORDER BY id",
        dispatch_protocol::MAX_BRIEF_ENTRIES
    );
    tx.select(&sql, params![incident_id])?
        .iter()
        .map(entry_from_row)
        .collect()
}

/// Queues the incident as it now is to every device holding an active order for it, naming
/// what `changed`; `update` (the id of the change's timeline event) names the message.
pub(super) fn tell_units(
    tx: &mut dyn Sql,
    incident_id: i64,
    update: i64,
    changed: &[&str],
    now: Millis,
) -> Result<()> {
    let sql = format!(
        "SELECT device_id, unit_id FROM orders WHERE incident_id = ?1 AND {}
         ORDER BY id",
        OrderState::sql_in("state", &OrderState::ACTIVE)
    );
    let holders = tx
        .select(&sql, params![incident_id])?
        .iter()
        .map(|r| -> Result<(i64, i64)> { Ok((r.get(0)?, r.get(1)?)) })
        .collect::<Result<Vec<_>>>()?;
    if holders.is_empty() {
        return Ok(());
    }
    let body = Message::IncidentUpdate(IncidentUpdateMessage {
        incident: incident_brief(tx, incident_id)?,
        changed: changed.iter().map(|c| (*c).to_owned()).collect(),
    });
    let message_id = format!("incident-{incident_id}-update-{update}");
    for (device_id, unit_id) in holders {
        outbox::enqueue(
            tx,
            device_id,
            unit_id,
            &message_id,
            &body,
            DeliveryRefs::default(),
            now,
        )?;
    }
    Ok(())
}
