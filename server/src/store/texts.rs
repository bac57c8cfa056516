//! Text messages between the control room and a unit, in both directions. A text to a unit is
//! a device delivery like an order; a text from a unit is a timeline event.

use super::sql::{params, Sql, SqlRow, Statements};
use dispatch_protocol::{Message, TextMessage};
use serde::Serialize;

use super::outbox::{self, DeliveryRefs};
use super::{append_event, created_earlier, ActionOutcome, Error, EventRefs, Keyed, Result, Store};
use crate::domain::{now_ms, Actor, Millis};

/// One text as stored, with its delivery state when it went to the unit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Text {
    pub id: i64,
    pub unit_id: i64,
    pub incident_id: Option<i64>,
    /// `to_unit` or `from_unit`.
    pub direction: String,
    pub author: String,
    pub text: String,
    #[schema(value_type = i64)]
    pub created_at_ms: Millis,
    #[schema(value_type = Option<i64>)]
    pub delivered_at_ms: Option<Millis>,
    #[schema(value_type = Option<i64>)]
    pub acknowledged_at_ms: Option<Millis>,
    /// When an operator read a text from the unit (`POST /api/units/{id}/messages/read`).
    #[schema(value_type = Option<i64>)]
    pub read_at_ms: Option<Millis>,
}

fn text_from_row(r: &SqlRow) -> Text {
    Text {
        id: r.col("id"),
        unit_id: r.col("unit_id"),
        incident_id: r.col("incident_id"),
        direction: r.col("direction"),
        author: r.col("author"),
        text: r.col("body"),
        created_at_ms: r.col("created_at"),
        delivered_at_ms: r.col("delivered_at"),
        acknowledged_at_ms: r.col("acknowledged_at"),
        read_at_ms: r.col("read_at"),
    }
}

const TEXT_COLUMNS: &str = "t.id, t.unit_id, t.incident_id, t.direction, t.author, t.body,
    t.created_at, d.delivered_at, d.acknowledged_at, t.read_at";

impl Store {
    /// Commits a text to the unit's device outbox (its session gets it once committed). A
    /// repeated `idempotency_key` returns the first text without sending another.
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
    ) -> Result<Text> {
        let (text, actor) = (text.to_owned(), actor.clone());
        let key = idempotency_key.map(str::to_owned);
        let text_id = self
            .writer
            .write(move |tx| {
                insert_text_to_unit(tx, unit_id, &text, incident_id, &actor, key.as_deref())
            })
            .await?;
        self.text(text_id).await
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn text(&self, id: i64) -> Result<Text> {
        let sql = format!(
            "SELECT {TEXT_COLUMNS} FROM texts t LEFT JOIN deliveries d ON d.text_id = t.id
             WHERE t.id = $1"
        );
        self.reader
            .select_opt(&sql, params![id])
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
                WHERE t.unit_id = $1 ORDER BY t.id DESC LIMIT $2) AS newest ORDER BY id"
        );
        let rows = self.reader.select(&sql, params![unit_id, limit]).await?;
        Ok(rows.iter().map(text_from_row).collect())
    }
}

/// The work of [`Store::send_text`] inside its batch: the text's id (the first one's for a
/// repeated idempotency key).
fn insert_text_to_unit(
    tx: &mut dyn Sql,
    unit_id: i64,
    text: &str,
    incident_id: Option<i64>,
    actor: &Actor,
    idempotency_key: Option<&str>,
) -> Result<i64> {
    let now = now_ms();
    let device = tx
        .select_opt(
            "SELECT u.call_sign, d.id FROM units u
             LEFT JOIN devices d ON d.unit_id = u.id AND d.revoked_at IS NULL WHERE u.id = ?1",
            params![unit_id],
        )?
        .map(|r| -> Result<(String, Option<i64>)> { Ok((r.get(0)?, r.get(1)?)) })
        .transpose()?;
    let Some((call_sign, device_id)) = device else {
        return Err(Error::NotFound(format!("unit {unit_id}")));
    };
    let Some(device_id) = device_id else {
        return Err(Error::conflict(
            "no_device",
            format!("unit {call_sign} has no enrolled device"),
        ));
    };
    if let Some(id) = created_earlier(tx, Keyed::Texts, idempotency_key)? {
        return Ok(id);
    }
    if !incident_exists(tx, incident_id)? {
        return Err(Error::NotFound(format!(
            "incident {}",
            incident_id.unwrap_or_default()
        )));
    }
    let text_id = tx.insert(
        "INSERT INTO texts (unit_id, incident_id, direction, author, body, created_at,
                            idempotency_key)
         VALUES (?1, ?2, 'to_unit', ?3, ?4, ?5, ?6)",
        params![
            unit_id,
            incident_id,
            &actor.label(),
            text,
            now,
            idempotency_key
        ],
    )?;
    let body = Message::Text(TextMessage {
        text_id,
        from: actor.display_name(),
        text: text.to_owned(),
        incident_id,
    });
    outbox::enqueue(
        tx,
        device_id,
        unit_id,
        &format!("text-{text_id}"),
        &body,
        DeliveryRefs {
            text: Some(text_id),
            ..DeliveryRefs::default()
        },
        now,
    )?;
    append_event(
        tx,
        now,
        "text_to_unit",
        actor,
        EventRefs {
            incident: incident_id,
            unit: Some(unit_id),
            order: None,
        },
        &serde_json::json!({ "text_id": text_id, "call_sign": call_sign, "text": text }),
    )?;
    Ok(text_id)
}

/// Whether the incident a text refers to exists (true when it refers to none).
fn incident_exists(db: &mut dyn Statements, incident_id: Option<i64>) -> Result<bool> {
    let Some(id) = incident_id else {
        return Ok(true);
    };
    Ok(db
        .select_opt("SELECT id FROM incidents WHERE id = ?1", params![id])?
        .is_some())
}

/// Records a text an officer sent from the tablet (inside the device action's transaction).
pub(super) fn record_from_unit(
    tx: &mut dyn Sql,
    unit_id: i64,
    text: &str,
    incident_id: Option<i64>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    if !incident_exists(tx, incident_id)? {
        return Ok(ActionOutcome::Rejected {
            code: "unknown_incident".into(),
            message: format!(
                "incident {} does not exist",
                incident_id.unwrap_or_default()
            ),
        });
    }
    let text_id = tx.insert(
        "INSERT INTO texts (unit_id, incident_id, direction, author, body, created_at)
         VALUES (?1, ?2, 'from_unit', ?3, ?4, ?5)",
        params![unit_id, incident_id, &actor.label(), text, now],
    )?;
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
        &serde_json::json!({ "text_id": text_id, "text": text }),
    )?;
    Ok(ActionOutcome::Done)
}
