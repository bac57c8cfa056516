//! Moving an order through the domain's state machine inside a write: the new state, the stamps
//! it implies and the `order_<state>` timeline event.

use super::super::sql::{params, Sql, Statements};
use super::super::{append_event, Error, EventRefs, Result};
use crate::domain::{Actor, Millis, OrderState, OrderTransition};

/// An order as the running write just read it.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeldOrder {
    pub id: i64,
    pub state: OrderState,
    pub incident_id: i64,
    pub unit_id: i64,
}

/// The order as it is now, inside the running write; `None` when there is no such order.
///
/// # Errors
/// On a database error, or a stored state the domain does not know.
pub(super) fn read_order(db: &mut dyn Statements, order_id: i64) -> Result<Option<HeldOrder>> {
    let Some(row) = db.select_opt(
        "SELECT state, incident_id, unit_id FROM orders WHERE id = ?1",
        params![order_id],
    )?
    else {
        return Ok(None);
    };
    let state = OrderState::parse(&row.get::<String>(0)?)
        .map_err(|e| Error::Statement(format!("order {order_id}: {}", e.0)))?;
    Ok(Some(HeldOrder {
        id: order_id,
        state,
        incident_id: row.get(1)?,
        unit_id: row.get(2)?,
    }))
}

/// Moves an order through the state machine, stamping the matching columns and appending
/// `order_<state>` to the timeline when the state changes. Returns the resulting state, or
/// `None` when the transition is not allowed (nothing is written then).
pub(in crate::store) fn transition_order(
    tx: &mut dyn Sql,
    order_id: i64,
    transition: OrderTransition,
    now: Millis,
    actor: &Actor,
    detail: &serde_json::Value,
) -> Result<Option<OrderState>> {
    let order = read_order(tx, order_id)?
        .ok_or_else(|| Error::Statement(format!("order {order_id} vanished inside its write")))?;
    transition_held_order(tx, order, transition, now, actor, detail)
}

/// [`transition_order`] for an order the write has read already.
pub(super) fn transition_held_order(
    tx: &mut dyn Sql,
    order: HeldOrder,
    transition: OrderTransition,
    now: Millis,
    actor: &Actor,
    detail: &serde_json::Value,
) -> Result<Option<OrderState>> {
    let Some(next) = order.state.apply(transition) else {
        return Ok(None);
    };
    if next == order.state {
        return Ok(Some(next));
    }
    let reason = detail.get("reason").and_then(|r| r.as_str());
    let decline_detail = detail.get("detail").and_then(|r| r.as_str());
    let ended = matches!(next, OrderState::Cancelled | OrderState::Expired);
    tx.run(
        "UPDATE orders SET state = ?1,
            delivered_at = CASE WHEN ?3 THEN COALESCE(delivered_at, ?2) ELSE delivered_at END,
            displayed_at = CASE WHEN ?4 THEN COALESCE(displayed_at, ?2) ELSE displayed_at END,
            acknowledged_at = CASE WHEN ?5 THEN COALESCE(acknowledged_at, ?2)
                ELSE acknowledged_at END,
            decided_at = CASE WHEN ?6 THEN ?2 ELSE decided_at END,
            decline_reason = CASE WHEN ?7 THEN ?9 ELSE decline_reason END,
            decline_detail = CASE WHEN ?7 THEN ?12 ELSE decline_detail END,
            completed_at = CASE WHEN ?8 THEN ?2 ELSE completed_at END,
            ended_at = CASE WHEN ?10 THEN ?2 ELSE ended_at END,
            end_reason = CASE WHEN ?10 THEN ?9 ELSE end_reason END
         WHERE id = ?11",
        params![
            next.as_str(),
            now,
            next.implies(OrderState::Delivered),
            next.implies(OrderState::Displayed),
            next.implies(OrderState::Acknowledged),
            matches!(next, OrderState::Accepted | OrderState::Declined),
            next == OrderState::Declined,
            next == OrderState::Completed,
            reason,
            ended,
            order.id,
            decline_detail
        ],
    )?;
    append_event(
        tx,
        now,
        &format!("order_{}", next.as_str()),
        actor,
        EventRefs {
            incident: Some(order.incident_id),
            unit: Some(order.unit_id),
            order: Some(order.id),
        },
        detail,
    )?;
    Ok(Some(next))
}
