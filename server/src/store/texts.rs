//! Text messages between the control room and a unit, in both directions. A text to a unit is
//! a device delivery like an order; a text from a unit is a timeline event.

use dispatch_protocol::{Message, TextMessage};
use serde::Serialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::outbox::{self, DeliveryRefs};
use super::{append_event, commit, ActionOutcome, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis};

/// One text as stored, with its delivery state when it went to the unit.
#[derive(Debug, Clone, Serialize)]
pub struct Text {
    pub id: i64,
    pub unit_id: i64,
    pub incident_id: Option<i64>,
    /// `to_unit` or `from_unit`.
    pub direction: String,
    pub author: String,
    pub text: String,
    pub created_at_ms: Millis,
    pub delivered_at_ms: Option<Millis>,
    pub acknowledged_at_ms: Option<Millis>,
}

fn text_from_row(r: &SqliteRow) -> Text {
    Text {
        id: r.get("id"),
        unit_id: r.get("unit_id"),
        incident_id: r.get("incident_id"),
        direction: r.get("direction"),
        author: r.get("author"),
        text: r.get("body"),
        created_at_ms: r.get("created_at"),
        delivered_at_ms: r.get("delivered_at"),
        acknowledged_at_ms: r.get("acknowledged_at"),
    }
}

const TEXT_COLUMNS: &str = "t.id, t.unit_id, t.incident_id, t.direction, t.author, t.body,
    t.created_at, d.delivered_at, d.acknowledged_at";

impl Store {
    /// Commits a text to the unit's device outbox. Returns the text and the device to wake.
    /// A repeated `idempotency_key` returns the first text without sending another.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit or incident; [`Error::Conflict`] `no_device` when
    /// the unit has no enrolled device.
    pub async fn send_text(
        &self,
        unit_id: i64,
        text: &str,
        incident_id: Option<i64>,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<(Text, i64)> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let device: Option<(String, Option<i64>)> = sqlx::query_as(
            "SELECT u.call_sign, d.id FROM units u
             LEFT JOIN devices d ON d.unit_id = u.id AND d.revoked_at IS NULL WHERE u.id = $1",
        )
        .bind(unit_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((call_sign, device_id)) = device else {
            return Err(Error::NotFound(format!("unit {unit_id}")));
        };
        let Some(device_id) = device_id else {
            return Err(Error::conflict(
                "no_device",
                format!("unit {call_sign} has no enrolled device"),
            ));
        };
        if let Some(key) = idempotency_key {
            let earlier: Option<i64> =
                sqlx::query_scalar("SELECT id FROM texts WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(id) = earlier {
                drop(tx);
                return Ok((self.text(id).await?, device_id));
            }
        }
        if !incident_exists(&mut tx, incident_id).await? {
            return Err(Error::NotFound(format!(
                "incident {}",
                incident_id.unwrap_or_default()
            )));
        }
        let text_id: i64 = sqlx::query_scalar(
            "INSERT INTO texts (unit_id, incident_id, direction, author, body, created_at,
                                idempotency_key)
             VALUES ($1, $2, 'to_unit', $3, $4, $5, $6) RETURNING id",
        )
        .bind(unit_id)
        .bind(incident_id)
        .bind(actor.label())
        .bind(text)
        .bind(now)
        .bind(idempotency_key)
        .fetch_one(&mut *tx)
        .await?;
        let from = actor.display_name();
        let body = Message::Text(TextMessage {
            text_id,
            from,
            text: text.to_owned(),
            incident_id,
        });
        outbox::enqueue(
            &mut tx,
            device_id,
            unit_id,
            &format!("text-{text_id}"),
            &body,
            DeliveryRefs {
                text: Some(text_id),
                ..DeliveryRefs::default()
            },
            now,
        )
        .await?;
        append_event(
            &mut tx,
            now,
            "text_to_unit",
            actor,
            EventRefs {
                incident: incident_id,
                unit: Some(unit_id),
                order: None,
            },
            serde_json::json!({ "text_id": text_id, "call_sign": call_sign, "text": text }),
        )
        .await?;
        commit(tx).await?;
        Ok((self.text(text_id).await?, device_id))
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn text(&self, id: i64) -> Result<Text> {
        let sql = format!(
            "SELECT {TEXT_COLUMNS} FROM texts t LEFT JOIN deliveries d ON d.text_id = t.id
             WHERE t.id = $1"
        );
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| text_from_row(&r))
            .ok_or_else(|| Error::NotFound(format!("text {id}")))
    }

    /// A unit's texts in both directions, oldest first, at most `limit` of the newest.
    ///
    /// # Errors
    /// On a database error.
    pub async fn unit_texts(&self, unit_id: i64, limit: u32) -> Result<Vec<Text>> {
        let sql = format!(
            "SELECT * FROM (SELECT {TEXT_COLUMNS} FROM texts t
                LEFT JOIN deliveries d ON d.text_id = t.id
                WHERE t.unit_id = $1 ORDER BY t.id DESC LIMIT $2) ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(unit_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(text_from_row).collect())
    }
}

/// Whether the incident a text refers to exists (true when it refers to none).
async fn incident_exists(tx: &mut SqliteConnection, incident_id: Option<i64>) -> Result<bool> {
    let Some(id) = incident_id else {
        return Ok(true);
    };
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found.is_some())
}

/// Records a text an officer sent from the tablet (inside the device action's transaction).
pub(super) async fn record_from_unit(
    tx: &mut SqliteConnection,
    unit_id: i64,
    text: &str,
    incident_id: Option<i64>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    if !incident_exists(tx, incident_id).await? {
        return Ok(ActionOutcome::Rejected {
            code: "unknown_incident".into(),
            message: format!(
                "incident {} does not exist",
                incident_id.unwrap_or_default()
            ),
        });
    }
    let text_id: i64 = sqlx::query_scalar(
        "INSERT INTO texts (unit_id, incident_id, direction, author, body, created_at)
         VALUES ($1, $2, 'from_unit', $3, $4, $5) RETURNING id",
    )
    .bind(unit_id)
    .bind(incident_id)
    .bind(actor.label())
    .bind(text)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    append_event(
        tx,
        now,
        "unit_message",
        actor,
        EventRefs {
            incident: incident_id,
            unit: Some(unit_id),
            order: None,
        },
        serde_json::json!({ "text_id": text_id, "text": text }),
    )
    .await?;
    Ok(ActionOutcome::Done { unit: None })
}
