//! Multicast broadcasts (BOLOs and other alerts, shaped like CAP 1.2): one `broadcasts` row and
//! one tracked outbox delivery per recipient device, so the console can see who is missing.

use super::sql::{json_ids, params, Sql, SqlRow};
use dispatch_protocol::{BroadcastArea, BroadcastMessage, Certainty, Message, Severity, Urgency};
use serde::Serialize;

use super::{
    append_event, created_earlier, Change, Error, EventRefs, Keyed, PendingDelivery, Result, Store,
};
use crate::domain::{now_ms, Actor, Millis};

/// A broadcast as the operator wrote it, after validation at the edge.
#[derive(Debug, Clone)]
pub struct NewBroadcast {
    /// The target as requested (JSON), kept for the record.
    pub target: serde_json::Value,
    pub urgency: Urgency,
    pub severity: Severity,
    pub certainty: Certainty,
    pub headline: String,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub area: Option<BroadcastArea>,
    pub expires_at: Option<Millis>,
}

/// Delivery counts of a broadcast.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct BroadcastCounts {
    pub recipients: i64,
    pub delivered: i64,
    pub displayed: i64,
    pub acknowledged: i64,
}

/// A recipient that has not acknowledged yet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MissingRecipient {
    pub unit_id: i64,
    pub call_sign: String,
    /// `queued`, `delivered` or `displayed`.
    pub state: String,
}

/// A broadcast with its delivery status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Broadcast {
    pub id: i64,
    pub sender: String,
    #[schema(value_type = i64)]
    pub created_at_ms: Millis,
    pub target: serde_json::Value,
    pub urgency: String,
    pub severity: String,
    pub certainty: String,
    pub headline: String,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub area_desc: Option<String>,
    pub polygon: Option<serde_json::Value>,
    #[schema(value_type = Option<i64>)]
    pub expires_at_ms: Option<Millis>,
    pub counts: BroadcastCounts,
    /// Units in the target with no enrolled device, which the broadcast could not reach.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable: Vec<String>,
    /// Recipients that have not acknowledged (only in the single-broadcast view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<MissingRecipient>>,
}

fn cap_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

const BROADCAST_COLUMNS: &str = "b.id, b.sender, b.created_at, b.target, b.urgency, b.severity,
    b.certainty, b.headline, b.description, b.instruction, b.area_desc, b.polygon, b.expires_at,
    (SELECT COUNT(*) FROM deliveries d WHERE d.broadcast_id = b.id) AS recipients,
    (SELECT COUNT(delivered_at) FROM deliveries d WHERE d.broadcast_id = b.id) AS delivered,
    (SELECT COUNT(displayed_at) FROM deliveries d WHERE d.broadcast_id = b.id) AS displayed,
    (SELECT COUNT(acknowledged_at) FROM deliveries d WHERE d.broadcast_id = b.id) AS acknowledged";

fn broadcast_from_row(r: &SqlRow) -> Broadcast {
    let json = |column: &str| {
        r.col::<Option<String>>(column)
            .and_then(|t| serde_json::from_str(&t).ok())
    };
    Broadcast {
        id: r.col("id"),
        sender: r.col("sender"),
        created_at_ms: r.col("created_at"),
        target: json("target").unwrap_or_default(),
        urgency: r.col("urgency"),
        severity: r.col("severity"),
        certainty: r.col("certainty"),
        headline: r.col("headline"),
        description: r.col("description"),
        instruction: r.col("instruction"),
        area_desc: r.col("area_desc"),
        polygon: json("polygon"),
        expires_at_ms: r.col("expires_at"),
        counts: BroadcastCounts {
            recipients: r.col("recipients"),
            delivered: r.col("delivered"),
            displayed: r.col("displayed"),
            acknowledged: r.col("acknowledged"),
        },
        unreachable: Vec::new(),
        missing: None,
    }
}

impl Store {
    /// Ids of the units whose `home_station` is `station`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn units_of_station(&self, station: &str) -> Result<Vec<i64>> {
        self.reader
            .column(
                "SELECT id FROM units WHERE home_station = $1 ORDER BY id",
                params![station],
            )
            .await
    }

    /// Ids of every unit.
    ///
    /// # Errors
    /// On a database error.
    pub async fn all_unit_ids(&self) -> Result<Vec<i64>> {
        self.reader
            .column("SELECT id FROM units ORDER BY id", &[])
            .await
    }

    /// Commits a broadcast and one outbox delivery per recipient unit that has an enrolled
    /// device, in one transaction; once committed, each entry goes to its device's session.
    /// Returns the broadcast (with the call signs it could not reach). A repeated
    /// `idempotency_key` returns the first broadcast.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit id.
    pub async fn create_broadcast(
        &self,
        spec: &NewBroadcast,
        unit_ids: &[i64],
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Broadcast> {
        let (spec, unit_ids, actor) = (spec.clone(), unit_ids.to_vec(), actor.clone());
        let key = idempotency_key.map(str::to_owned);
        let (broadcast_id, unreachable) = self
            .writer
            .write(move |tx| {
                if let Some(id) = created_earlier(tx, Keyed::Broadcasts, key.as_deref())? {
                    return Ok((id, Vec::new()));
                }
                insert_broadcast(tx, &spec, &unit_ids, &actor, key.as_deref())
            })
            .await?;
        let mut broadcast = self.broadcast(broadcast_id).await?;
        broadcast.unreachable = unreachable;
        Ok(broadcast)
    }

    /// A broadcast with its counts and the recipients that have not acknowledged.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn broadcast(&self, id: i64) -> Result<Broadcast> {
        let sql = format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.id = $1");
        let mut broadcast = self
            .reader
            .select_opt(&sql, params![id])
            .await?
            .map(|r| broadcast_from_row(&r))
            .ok_or_else(|| Error::NotFound(format!("broadcast {id}")))?;
        let missing = self
            .reader
            .select(
                "SELECT d.unit_id, u.call_sign,
                CASE WHEN d.displayed_at IS NOT NULL THEN 'displayed'
                     WHEN d.delivered_at IS NOT NULL THEN 'delivered'
                     ELSE 'queued' END AS state
             FROM deliveries d JOIN units u ON u.id = d.unit_id
             WHERE d.broadcast_id = $1 AND d.acknowledged_at IS NULL ORDER BY u.call_sign",
                params![id],
            )
            .await?;
        broadcast.missing = Some(
            missing
                .iter()
                .map(|r| MissingRecipient {
                    unit_id: r.col("unit_id"),
                    call_sign: r.col("call_sign"),
                    state: r.col("state"),
                })
                .collect(),
        );
        Ok(broadcast)
    }

    /// The newest broadcasts first, with their counts.
    ///
    /// # Errors
    /// On a database error.
    pub async fn broadcasts(&self, limit: u32) -> Result<Vec<Broadcast>> {
        let sql =
            format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts b ORDER BY b.id DESC LIMIT $1");
        let rows = self.reader.select(&sql, params![limit]).await?;
        Ok(rows.iter().map(broadcast_from_row).collect())
    }
}

/// The work of [`Store::create_broadcast`]: the broadcast row, one outbox entry per reachable
/// recipient and the event. Returns the broadcast's id and the call signs of the units without a
/// device.
fn insert_broadcast(
    tx: &mut dyn Sql,
    spec: &NewBroadcast,
    unit_ids: &[i64],
    actor: &Actor,
    idempotency_key: Option<&str>,
) -> Result<(i64, Vec<String>)> {
    let ids = json_ids(unit_ids);
    let sql = format!(
        "SELECT u.id, u.call_sign, d.id FROM units u
         LEFT JOIN devices d ON d.unit_id = u.id AND d.revoked_at IS NULL
         WHERE u.id IN {} ORDER BY u.id",
        tx.dialect().json_ids(1)
    );
    let units = tx
        .select(&sql, params![&ids])?
        .iter()
        .map(|r| -> Result<(i64, String, Option<i64>)> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) })
        .collect::<Result<Vec<_>>>()?;
    if units.len() < unit_ids.len() {
        let known: std::collections::HashSet<i64> = units.iter().map(|u| u.0).collect();
        if let Some(unknown) = unit_ids.iter().find(|id| !known.contains(id)) {
            return Err(Error::NotFound(format!("unit {unknown}")));
        }
    }
    let unreachable: Vec<String> = units
        .into_iter()
        .filter(|(_, _, device)| device.is_none())
        .map(|(_, call_sign, _)| call_sign)
        .collect();
    let now = now_ms();
    let sender = actor.display_name();
    let polygon = spec
        .area
        .as_ref()
        .filter(|a| !a.polygon.is_empty())
        .map(|a| serde_json::to_string(&a.polygon).unwrap_or_default());
    let (target, urgency) = (spec.target.to_string(), cap_name(&spec.urgency));
    let (severity, certainty) = (cap_name(&spec.severity), cap_name(&spec.certainty));
    let broadcast_id = tx.insert(
        "INSERT INTO broadcasts (created_by, sender, created_at, target, urgency, severity,
             certainty, headline, description, instruction, area_desc, polygon, expires_at,
             idempotency_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            actor.operator_id(),
            &sender,
            now,
            &target,
            &urgency,
            &severity,
            &certainty,
            &spec.headline,
            spec.description.as_ref(),
            spec.instruction.as_ref(),
            spec.area.as_ref().map(|a| a.area_desc.as_str()),
            polygon.as_ref(),
            spec.expires_at,
            idempotency_key
        ],
    )?;
    let body = Message::Broadcast(BroadcastMessage {
        broadcast_id,
        sender,
        sent_ms: now,
        urgency: spec.urgency,
        severity: spec.severity,
        certainty: spec.certainty,
        headline: spec.headline.clone(),
        description: spec.description.clone(),
        instruction: spec.instruction.clone(),
        area: spec.area.clone(),
        expires_ms: spec.expires_at,
    });
    let message_id = format!("broadcast-{broadcast_id}");
    let recipients = enqueue_to_units(tx, &ids, &message_id, &body, broadcast_id, now)?;
    append_event(
        tx,
        now,
        "broadcast_sent",
        actor,
        EventRefs::default(),
        &serde_json::json!({
            "broadcast_id": broadcast_id,
            "headline": spec.headline,
            "recipients": recipients,
            "unreachable": unreachable,
        }),
    )?;
    Ok((broadcast_id, unreachable))
}

/// Appends `body` to the outbox of every unit of `ids` (a JSON array) that has an enrolled
/// device, with a few set-wide statements instead of three per recipient, and reports each new
/// entry. Returns how many devices it reached.
fn enqueue_to_units(
    tx: &mut dyn Sql,
    ids: &str,
    message_id: &str,
    body: &Message,
    broadcast_id: i64,
    now: Millis,
) -> Result<usize> {
    let sql = format!(
        "UPDATE devices SET last_seq = last_seq + 1
         WHERE revoked_at IS NULL AND unit_id IN {}
         RETURNING id, last_seq",
        tx.dialect().json_ids(1)
    );
    let sequenced = tx
        .select(&sql, params![ids])?
        .iter()
        .map(|r| -> Result<(i64, i64)> { Ok((r.get(0)?, r.get(1)?)) })
        .collect::<Result<Vec<_>>>()?;
    let text = serde_json::to_string(body).unwrap_or_default();
    let sql = format!(
        "INSERT INTO deliveries (device_id, seq, message_id, broadcast_id, unit_id, body, queued_at)
         SELECT d.id, d.last_seq, ?1, ?2, d.unit_id, ?3, ?4 FROM devices d
         WHERE d.revoked_at IS NULL AND d.unit_id IN {}",
        tx.dialect().json_ids(5)
    );
    tx.run(&sql, params![message_id, broadcast_id, &text, now, ids])?;
    let reached = sequenced.len();
    for (device_id, seq) in sequenced {
        tx.emit(Change::Delivery {
            device_id,
            delivery: PendingDelivery {
                seq: u64::try_from(seq).unwrap_or_default(),
                message_id: message_id.to_owned(),
                queued_at: now,
                body: text.clone(),
            },
        });
    }
    Ok(reached)
}
