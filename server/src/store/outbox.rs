//! Writing to a device's outbox (one row of `deliveries` per message and recipient, numbered by
//! the device's own `seq`) and recording what the device reports about a message it holds.

use dispatch_protocol::Message;
use sqlx::{Row, SqliteConnection};

use super::Result;
use crate::domain::Millis;

/// What a delivery row is about, besides its body.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DeliveryRefs {
    pub order: Option<i64>,
    pub text: Option<i64>,
    pub broadcast: Option<i64>,
}

/// Appends `body` to the outbox of `device_id` inside the caller's transaction and returns its
/// `seq`. The caller wakes the device's session after committing.
pub(super) async fn enqueue(
    tx: &mut SqliteConnection,
    device_id: i64,
    unit_id: i64,
    message_id: &str,
    body: &Message,
    refs: DeliveryRefs,
    now: Millis,
) -> Result<i64> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE devices SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(device_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO deliveries (device_id, seq, message_id, order_id, text_id, broadcast_id,
                                 unit_id, body, queued_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(device_id)
    .bind(seq)
    .bind(message_id)
    .bind(refs.order)
    .bind(refs.text)
    .bind(refs.broadcast)
    .bind(unit_id)
    .bind(serde_json::to_string(body).unwrap_or_default())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(seq)
}

/// A message the device said it displayed or acknowledged.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldMessage {
    pub order: Option<i64>,
    pub broadcast: Option<i64>,
}

/// Which step of reading a message the device reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadStep {
    Displayed,
    Acknowledged,
}

/// Stamps `step` on the device's delivery of `message_id` (the first stamp wins). `None` when the
/// device holds no such message.
pub(super) async fn mark_read(
    tx: &mut SqliteConnection,
    device_id: i64,
    message_id: &str,
    step: ReadStep,
    now: Millis,
) -> Result<Option<HeldMessage>> {
    // Acknowledging implies the message was displayed, and both imply it was received.
    let sql = match step {
        ReadStep::Displayed => {
            "UPDATE deliveries SET displayed_at = COALESCE(displayed_at, $1),
                 delivered_at = COALESCE(delivered_at, $1)
             WHERE device_id = $2 AND message_id = $3 RETURNING order_id, broadcast_id"
        }
        ReadStep::Acknowledged => {
            "UPDATE deliveries SET acknowledged_at = COALESCE(acknowledged_at, $1),
                 displayed_at = COALESCE(displayed_at, $1),
                 delivered_at = COALESCE(delivered_at, $1)
             WHERE device_id = $2 AND message_id = $3 RETURNING order_id, broadcast_id"
        }
    };
    let row = sqlx::query(sql)
        .bind(now)
        .bind(device_id)
        .bind(message_id)
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.map(|r| HeldMessage {
        order: r.get("order_id"),
        broadcast: r.get("broadcast_id"),
    }))
}
