//! Withdrawing an order: an operator cancels it, or the server expires it because nobody
//! decided in time. The device is told with a `cancel` message and the unit is released.

use std::sync::LazyLock;

use dispatch_protocol::{CancelMessage, Message};

use super::super::outbox::{self, DeliveryRefs};
use super::super::sql::{params, Sql};
use super::super::units::read_unit;
use super::super::{Change, Error, Result, Store};
use super::transition::{read_order, transition_held_order};
use crate::domain::{now_ms, Actor, Millis, Order, OrderState, OrderTransition, UnitStatus};

/// How an order is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// By an operator.
    Cancel,
    /// By the server, when nobody decided in time.
    Expire,
}

impl Withdrawal {
    fn past_tense(self) -> &'static str {
        match self {
            Self::Cancel => "cancelled",
            Self::Expire => "expired",
        }
    }

    fn transition(self) -> OrderTransition {
        match self {
            Self::Cancel => OrderTransition::Cancel,
            Self::Expire => OrderTransition::Expire,
        }
    }
}

/// How many orders still hold a unit.
static ACTIVE_ORDERS_OF_UNIT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT COUNT(*) FROM orders WHERE unit_id = ?1 AND {}",
        OrderState::sql_in("state", &OrderState::ACTIVE)
    )
});

/// Statuses that mean the unit is working on an order; a unit in one of them is released when
/// its last order is withdrawn (one out of service stays so).
const WORKING: [UnitStatus; 3] = [
    UnitStatus::Assigned,
    UnitStatus::EnRoute,
    UnitStatus::OnScene,
];

impl Store {
    /// Withdraws an order. The state change, the `cancel` message to the device and the unit's
    /// release (when it holds no other active order) commit together. Returns the order as it
    /// now is.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown order; [`Error::Conflict`] `order_final` when the
    /// order can no longer be withdrawn (declined, completed, cancelled or expired; an accepted
    /// order can be cancelled but does not expire).
    pub async fn withdraw_order(
        &self,
        order_id: i64,
        withdrawal: Withdrawal,
        reason: &str,
        actor: &Actor,
    ) -> Result<Order> {
        let (reason, actor) = (reason.to_owned(), actor.clone());
        self.writer
            .write(move |tx| write_withdrawal(tx, order_id, withdrawal, &reason, &actor, now_ms()))
            .await?;
        self.order(order_id).await
    }
}

/// The work of [`Store::withdraw_order`] inside its batch, on either database.
///
/// # Errors
/// As [`Store::withdraw_order`]; a statement's error.
pub fn write_withdrawal(
    tx: &mut dyn Sql,
    order_id: i64,
    withdrawal: Withdrawal,
    reason: &str,
    actor: &Actor,
    now: Millis,
) -> Result<()> {
    let order =
        read_order(tx, order_id)?.ok_or_else(|| Error::NotFound(format!("order {order_id}")))?;
    if order.state.apply(withdrawal.transition()).is_none() {
        return Err(Error::conflict(
            "order_final",
            format!(
                "order {order_id} is {} and cannot be {}",
                order.state.as_str(),
                withdrawal.past_tense()
            ),
        ));
    }
    let detail = serde_json::json!({ "reason": reason });
    transition_held_order(tx, order, withdrawal.transition(), now, actor, &detail)?;
    let device_id: i64 = tx
        .select_one(
            "SELECT device_id FROM orders WHERE id = ?1",
            params![order_id],
        )?
        .get(0)?;
    let body = Message::Cancel(CancelMessage {
        order_id,
        reason: withdrawal.past_tense().to_owned(),
        detail: Some(reason.to_owned()).filter(|r| !r.is_empty()),
    });
    outbox::enqueue(
        tx,
        device_id,
        order.unit_id,
        &format!("cancel-{order_id}"),
        &body,
        DeliveryRefs::default(),
        now,
    )?;
    let active: i64 = tx
        .select_one(&ACTIVE_ORDERS_OF_UNIT, params![order.unit_id])?
        .get(0)?;
    if active == 0 {
        let unit = read_unit(tx, order.unit_id)?;
        if WORKING.contains(&unit.status) {
            tx.run(
                "UPDATE units SET status = 'available' WHERE id = ?1",
                params![order.unit_id],
            )?;
            tx.emit(Change::Unit(crate::domain::Unit {
                status: UnitStatus::Available,
                ..unit
            }));
        }
    }
    Ok(())
}
