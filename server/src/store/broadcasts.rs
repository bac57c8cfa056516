//! Multicast broadcasts (BOLOs and other alerts, shaped like CAP 1.2): one `broadcasts` row and
//! one tracked outbox delivery per recipient device, so the console can see who is missing.

use dispatch_protocol::{BroadcastArea, BroadcastMessage, Certainty, Message, Severity, Urgency};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{append_event, commit, Error, EventRefs, PendingDelivery, Result, Store};
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct BroadcastCounts {
    pub recipients: i64,
    pub delivered: i64,
    pub displayed: i64,
    pub acknowledged: i64,
}

/// A recipient that has not acknowledged yet.
#[derive(Debug, Clone, Serialize)]
pub struct MissingRecipient {
    pub unit_id: i64,
    pub call_sign: String,
    /// `queued`, `delivered` or `displayed`.
    pub state: String,
}

/// A broadcast with its delivery status.
#[derive(Debug, Clone, Serialize)]
pub struct Broadcast {
    pub id: i64,
    pub sender: String,
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

fn broadcast_from_row(r: &SqliteRow) -> Broadcast {
    let json = |column: &str| {
        r.get::<Option<String>, _>(column)
            .and_then(|t| serde_json::from_str(&t).ok())
    };
    Broadcast {
        id: r.get("id"),
        sender: r.get("sender"),
        created_at_ms: r.get("created_at"),
        target: json("target").unwrap_or_default(),
        urgency: r.get("urgency"),
        severity: r.get("severity"),
        certainty: r.get("certainty"),
        headline: r.get("headline"),
        description: r.get("description"),
        instruction: r.get("instruction"),
        area_desc: r.get("area_desc"),
        polygon: json("polygon"),
        expires_at_ms: r.get("expires_at"),
        counts: BroadcastCounts {
            recipients: r.get("recipients"),
            delivered: r.get("delivered"),
            displayed: r.get("displayed"),
            acknowledged: r.get("acknowledged"),
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
        Ok(
            sqlx::query_scalar("SELECT id FROM units WHERE home_station = $1 ORDER BY id")
                .bind(station)
                .fetch_all(&self.reader)
                .await?,
        )
    }

    /// Ids of every unit.
    ///
    /// # Errors
    /// On a database error.
    pub async fn all_unit_ids(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM units ORDER BY id")
            .fetch_all(&self.reader)
            .await?)
    }

    /// Commits a broadcast and one outbox delivery per recipient unit that has an enrolled
    /// device, in one transaction. Returns the broadcast (with the call signs it could not reach)
    /// and each device's new outbox entry, to hand to its session. A repeated `idempotency_key`
    /// returns the first broadcast.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit id.
    pub async fn create_broadcast(
        &self,
        spec: &NewBroadcast,
        unit_ids: &[i64],
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<(Broadcast, Vec<(i64, PendingDelivery)>)> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        if let Some(key) = idempotency_key {
            let earlier: Option<i64> =
                sqlx::query_scalar("SELECT id FROM broadcasts WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(id) = earlier {
                drop(tx);
                return Ok((self.broadcast(id).await?, Vec::new()));
            }
        }
        let sender = actor.display_name();
        let polygon = spec
            .area
            .as_ref()
            .filter(|a| !a.polygon.is_empty())
            .map(|a| serde_json::to_string(&a.polygon).unwrap_or_default());
        let broadcast_id: i64 = sqlx::query_scalar(
            "INSERT INTO broadcasts (created_by, sender, created_at, target, urgency, severity,
                 certainty, headline, description, instruction, area_desc, polygon, expires_at,
                 idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(actor.operator_id())
        .bind(&sender)
        .bind(now)
        .bind(spec.target.to_string())
        .bind(cap_name(&spec.urgency))
        .bind(cap_name(&spec.severity))
        .bind(cap_name(&spec.certainty))
        .bind(&spec.headline)
        .bind(&spec.description)
        .bind(&spec.instruction)
        .bind(spec.area.as_ref().map(|a| a.area_desc.clone()))
        .bind(polygon)
        .bind(spec.expires_at)
        .bind(idempotency_key)
        .fetch_one(&mut *tx)
        .await?;
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
        let (deliveries, unreachable) =
            enqueue_to_units(&mut tx, unit_ids, &message_id, &body, broadcast_id, now).await?;
        append_event(
            &mut tx,
            now,
            "broadcast_sent",
            actor,
            EventRefs::default(),
            serde_json::json!({
                "broadcast_id": broadcast_id,
                "headline": spec.headline,
                "recipients": deliveries.len(),
                "unreachable": unreachable,
            }),
        )
        .await?;
        commit(tx).await?;
        let mut broadcast = self.broadcast(broadcast_id).await?;
        broadcast.unreachable = unreachable;
        Ok((broadcast, deliveries))
    }

    /// A broadcast with its counts and the recipients that have not acknowledged.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn broadcast(&self, id: i64) -> Result<Broadcast> {
        let sql = format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts b WHERE b.id = $1");
        let mut broadcast = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| broadcast_from_row(&r))
            .ok_or_else(|| Error::NotFound(format!("broadcast {id}")))?;
        let missing = sqlx::query(
            "SELECT d.unit_id, u.call_sign,
                CASE WHEN d.displayed_at IS NOT NULL THEN 'displayed'
                     WHEN d.delivered_at IS NOT NULL THEN 'delivered'
                     ELSE 'queued' END AS state
             FROM deliveries d JOIN units u ON u.id = d.unit_id
             WHERE d.broadcast_id = $1 AND d.acknowledged_at IS NULL ORDER BY u.call_sign",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        broadcast.missing = Some(
            missing
                .iter()
                .map(|r| MissingRecipient {
                    unit_id: r.get("unit_id"),
                    call_sign: r.get("call_sign"),
                    state: r.get("state"),
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
        let rows = sqlx::query(&sql)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(broadcast_from_row).collect())
    }
}

/// Appends `body` to the outbox of every unit of `unit_ids` that has an enrolled device, with a
/// few set-wide statements instead of three per recipient. Returns each device's new entry and
/// the call signs of the units without a device.
///
/// # Errors
/// [`Error::NotFound`] for an unknown unit id.
async fn enqueue_to_units(
    tx: &mut sqlx::SqliteConnection,
    unit_ids: &[i64],
    message_id: &str,
    body: &Message,
    broadcast_id: i64,
    now: Millis,
) -> Result<(Vec<(i64, PendingDelivery)>, Vec<String>)> {
    let ids = serde_json::to_string(unit_ids).unwrap_or_default();
    let units: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT u.id, u.call_sign, d.id FROM units u
         LEFT JOIN devices d ON d.unit_id = u.id AND d.revoked_at IS NULL
         WHERE u.id IN (SELECT value FROM json_each($1)) ORDER BY u.id",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    if units.len() < unit_ids.len() {
        let known: std::collections::HashSet<i64> = units.iter().map(|u| u.0).collect();
        if let Some(unknown) = unit_ids.iter().find(|id| !known.contains(id)) {
            return Err(Error::NotFound(format!("unit {unknown}")));
        }
    }
    let unreachable = units
        .into_iter()
        .filter(|(_, _, device)| device.is_none())
        .map(|(_, call_sign, _)| call_sign)
        .collect();
    let sequenced: Vec<(i64, i64)> = sqlx::query_as(
        "UPDATE devices SET last_seq = last_seq + 1
         WHERE revoked_at IS NULL AND unit_id IN (SELECT value FROM json_each($1))
         RETURNING id, last_seq",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let text = serde_json::to_string(body).unwrap_or_default();
    sqlx::query(
        "INSERT INTO deliveries (device_id, seq, message_id, broadcast_id, unit_id, body, queued_at)
         SELECT d.id, d.last_seq, $1, $2, d.unit_id, $3, $4 FROM devices d
         WHERE d.revoked_at IS NULL AND d.unit_id IN (SELECT value FROM json_each($5))",
    )
    .bind(message_id)
    .bind(broadcast_id)
    .bind(&text)
    .bind(now)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    let deliveries = sequenced
        .into_iter()
        .map(|(device_id, seq)| {
            let delivery = PendingDelivery {
                seq: u64::try_from(seq).unwrap_or_default(),
                message_id: message_id.to_owned(),
                queued_at: now,
                body: text.clone(),
            };
            (device_id, delivery)
        })
        .collect();
    Ok((deliveries, unreachable))
}
