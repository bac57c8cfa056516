//! A unit's new tablet takes over its active orders: when the unit is enrolled again (a
//! replaced or reset tablet), every order still holding the unit moves to the new device and
//! goes into its outbox, so the officer sees the work the control room counts on.

use dispatch_protocol::{Message, OrderMessage};

use super::super::incident_entries::incident_brief;
use super::super::outbox::{self, DeliveryRefs};
use super::super::sql::{params, Sql};
use super::super::{append_event, EventRefs, Result};
use crate::domain::{Actor, Millis, OrderState};

/// Moves the unit's active orders from `old_device` (if any) to `new_device`, each queued in
/// the new device's outbox (an accepted one marked `accepted`) with an `order_transferred`
/// event. Returns how many moved.
pub(in crate::store) fn transfer_active_orders(
    tx: &mut dyn Sql,
    unit_id: i64,
    old_device: Option<i64>,
    new_device: i64,
    now: Millis,
) -> Result<usize> {
    let sql = format!(
        "SELECT id, incident_id, state FROM orders
         WHERE unit_id = ?1 AND {} ORDER BY id",
        OrderState::sql_in("state", &OrderState::ACTIVE)
    );
    let active = tx
        .select(&sql, params![unit_id])?
        .iter()
        .map(|r| -> Result<(i64, i64, String)> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) })
        .collect::<Result<Vec<_>>>()?;
    for (order_id, incident_id, state) in &active {
        tx.run(
            "UPDATE orders SET device_id = ?1 WHERE id = ?2",
            params![new_device, *order_id],
        )?;
        let body = Message::Order(OrderMessage {
            order_id: *order_id,
            unit_id,
            incident: incident_brief(tx, *incident_id)?,
            accepted: state == OrderState::Accepted.as_str(),
        });
        let delivery = outbox::enqueue(
            tx,
            new_device,
            unit_id,
            &format!("order-{order_id}"),
            &body,
            DeliveryRefs {
                order: Some(*order_id),
                ..DeliveryRefs::default()
            },
            now,
        )?;
        append_event(
            tx,
            now,
            "order_transferred",
            &Actor::Device { id: new_device },
            EventRefs {
                incident: Some(*incident_id),
                unit: Some(unit_id),
                order: Some(*order_id),
            },
            &serde_json::json!({ "from_device": old_device, "to_device": new_device,
                                 "state": state, "seq": delivery.seq }),
        )?;
    }
    Ok(active.len())
}
