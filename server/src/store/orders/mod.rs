//! Orders: reading them, committing an assignment to a device's outbox (`create.rs`),
//! withdrawing one (`withdraw.rs`), moving one through its state machine (`transition.rs`),
//! applying the officer's actions (`actions.rs`) and handing a unit's active orders to its new
//! tablet (`transfer.rs`).

mod actions;
mod create;
mod transfer;
mod transition;
mod withdraw;

pub use actions::{apply_device_action, ActionOutcome, DeviceAction};
pub use create::{insert_order, plan_fulfilled, Inserted};
pub(super) use transfer::transfer_active_orders;
pub(super) use transition::transition_order;
pub use withdraw::{write_withdrawal, Withdrawal};

use super::sql::{json_ids, params, SqlRow};

use super::{Error, Result, Store};
use crate::domain::{Order, OrderState};

const ORDER_COLUMNS: &str = "o.id, o.incident_id, o.unit_id, u.call_sign, o.device_id, o.state,
    o.created_at, o.delivered_at, o.displayed_at, o.acknowledged_at, o.decided_at,
    o.decline_reason, o.decline_detail, o.completed_at, o.ended_at, o.end_reason, o.receipt_escalated_at,
    o.ack_escalated_at";

/// Decodes a row of [`ORDER_COLUMNS`]; a state the domain does not know is an error, not a
/// guess.
fn order_from_row(r: &SqlRow) -> Result<Order> {
    let state = OrderState::parse(&r.col::<String>("state"))
        .map_err(|e| Error::Statement(format!("order {}: {}", r.col::<i64>("id"), e.0)))?;
    Ok(Order {
        id: r.col("id"),
        incident_id: r.col("incident_id"),
        unit_id: r.col("unit_id"),
        call_sign: r.col("call_sign"),
        device_id: r.col("device_id"),
        state,
        created_at_ms: r.col("created_at"),
        delivered_at_ms: r.col("delivered_at"),
        displayed_at_ms: r.col("displayed_at"),
        acknowledged_at_ms: r.col("acknowledged_at"),
        decided_at_ms: r.col("decided_at"),
        decline_reason: r.col("decline_reason"),
        decline_detail: r.col("decline_detail"),
        completed_at_ms: r.col("completed_at"),
        ended_at_ms: r.col("ended_at"),
        end_reason: r.col("end_reason"),
        receipt_escalated_at_ms: r.col("receipt_escalated_at"),
        ack_escalated_at_ms: r.col("ack_escalated_at"),
    })
}

impl Store {
    /// How many orders are in each state (states without orders are left out).
    ///
    /// # Errors
    /// On a database error.
    pub async fn orders_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows = self
            .reader
            .select(
                "SELECT state, count(*) AS n FROM orders GROUP BY state",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.col("state"), r.col("n"))).collect())
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn order(&self, id: i64) -> Result<Order> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN units u ON u.id = o.unit_id WHERE o.id = $1"
        );
        self.reader
            .select_opt(&sql, params![id])
            .await?
            .map(|r| order_from_row(&r))
            .transpose()?
            .ok_or_else(|| Error::NotFound(format!("order {id}")))
    }

    /// Orders whose idempotency key starts with `prefix` (the parts of one plan dispatch).
    ///
    /// # Errors
    /// On a database error.
    pub async fn orders_by_key_prefix(&self, prefix: &str) -> Result<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN units u ON u.id = o.unit_id
             WHERE substr(o.idempotency_key, 1, length($1)) = $1 ORDER BY o.id"
        );
        let rows = self.reader.select(&sql, params![prefix]).await?;
        rows.iter().map(order_from_row).collect()
    }

    /// Orders of an incident, oldest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn incident_orders(&self, incident_id: i64) -> Result<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN units u ON u.id = o.unit_id
             WHERE o.incident_id = $1 ORDER BY o.id"
        );
        let rows = self.reader.select(&sql, params![incident_id]).await?;
        rows.iter().map(order_from_row).collect()
    }

    /// The orders with these ids (unknown ids are left out), oldest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn orders_by_id(&self, ids: &[i64]) -> Result<Vec<Order>> {
        self.orders_where_in("o.id", ids).await
    }

    /// Orders of several incidents, oldest first (for the console's snapshot: one query).
    ///
    /// # Errors
    /// On a database error.
    pub async fn orders_of_incidents(&self, incident_ids: &[i64]) -> Result<Vec<Order>> {
        self.orders_where_in("o.incident_id", incident_ids).await
    }

    /// Orders whose `column` is one of `values`, oldest first.
    async fn orders_where_in(&self, column: &str, values: &[i64]) -> Result<Vec<Order>> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN units u ON u.id = o.unit_id
             WHERE {column} IN {} ORDER BY o.id",
            self.reader.dialect().json_ids(1)
        );
        let rows = self.reader.select(&sql, params![&json_ids(values)]).await?;
        rows.iter().map(order_from_row).collect()
    }
}
