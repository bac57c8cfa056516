//! Writing to a device's outbox (one row of `deliveries` per message and recipient, numbered by
//! the device's own `seq`) and recording what the device reports about a message it holds.

use super::sql::{params, Dialect, Sql, Statements};
use dispatch_protocol::Message;

use super::{Change, PendingDelivery, Result};
use crate::domain::Millis;

/// What a delivery row is about, besides its body. (Broadcasts fill their outboxes set-wide:
/// `store::broadcasts`.)
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct DeliveryRefs {
    pub order: Option<i64>,
    pub text: Option<i64>,
}

/// Appends `body` to the outbox of `device_id` inside the running write and returns the entry
/// as the device's session sends it; once the write commits, the entry goes to the session.
pub(super) fn enqueue(
    tx: &mut dyn Sql,
    device_id: i64,
    unit_id: i64,
    message_id: &str,
    body: &Message,
    refs: DeliveryRefs,
    now: Millis,
) -> Result<PendingDelivery> {
    let text = serde_json::to_string(body).unwrap_or_default();
    let seq: i64 = match tx.dialect() {
        // One round trip to the server.
        Dialect::Postgres => tx
            .select_one(
                "UPDATE devices SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
                params![device_id],
            )?
            .get(0)?,
        // SQLite buffers a RETURNING statement's rows in a temporary b-tree, which costs more
        // than reading the row again.
        Dialect::Sqlite => {
            tx.run(
                "UPDATE devices SET last_seq = last_seq + 1 WHERE id = ?1",
                params![device_id],
            )?;
            tx.select_one(
                "SELECT last_seq FROM devices WHERE id = ?1",
                params![device_id],
            )?
            .get(0)?
        }
    };
    tx.run(
        "INSERT INTO deliveries (device_id, seq, message_id, order_id, text_id, unit_id, body,
                                 queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![device_id, seq, message_id, refs.order, refs.text, unit_id, &text, now],
    )?;
    let delivery = PendingDelivery {
        seq: u64::try_from(seq).unwrap_or_default(),
        message_id: message_id.to_owned(),
        queued_at: now,
        body: text,
    };
    tx.emit(Change::Delivery {
        device_id,
        delivery: delivery.clone(),
    });
    Ok(delivery)
}

/// A message the device said it displayed or acknowledged.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldMessage {
    /// The order the message is, if it is one.
    pub order: Option<i64>,
}

/// Which step of reading a message the device reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadStep {
    Displayed,
    Acknowledged,
}

/// Stamps `step` on the device's delivery of `message_id` (the first stamp wins). `None` when the
/// device holds no such message.
pub(super) fn mark_read(
    db: &mut dyn Statements,
    device_id: i64,
    message_id: &str,
    step: ReadStep,
    now: Millis,
) -> Result<Option<HeldMessage>> {
    let Some(row) = db.select_opt(
        "SELECT order_id FROM deliveries WHERE device_id = ?1 AND message_id = ?2",
        params![device_id, message_id],
    )?
    else {
        return Ok(None);
    };
    let held = HeldMessage { order: row.get(0)? };
    // Acknowledging implies the message was displayed, and both imply it was received.
    let sql = match step {
        ReadStep::Displayed => {
            "UPDATE deliveries SET displayed_at = COALESCE(displayed_at, ?1),
                 delivered_at = COALESCE(delivered_at, ?1)
             WHERE device_id = ?2 AND message_id = ?3"
        }
        ReadStep::Acknowledged => {
            "UPDATE deliveries SET acknowledged_at = COALESCE(acknowledged_at, ?1),
                 displayed_at = COALESCE(displayed_at, ?1),
                 delivered_at = COALESCE(delivered_at, ?1)
             WHERE device_id = ?2 AND message_id = ?3"
        }
    };
    db.run(sql, params![now, device_id, message_id])?;
    Ok(Some(held))
}
