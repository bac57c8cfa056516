//! Committing an assignment: the order row, the device outbox entry, the unit held for it and
//! the timeline event, in one write.

use super::super::sql::{params, Sql, Statements};
use dispatch_protocol::{Message, OrderMessage};

use super::super::incident_entries::incident_brief;
use super::super::outbox::{self, DeliveryRefs};
use super::super::units::{read_unit, refuse_disabled};
use super::super::{append_event, Change, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, Order, OrderState, UnitStatus};

/// What [`insert_order`] did.
#[derive(Debug)]
pub enum Inserted {
    New(Box<Order>),
    /// A repeated idempotency key: the order the first request created.
    Earlier(i64),
}

impl Store {
    /// Commits an order for `unit_id` on `incident_id`: the order row, the device outbox entry
    /// and the timeline event in one transaction. Returns only after the commit; by then the
    /// entry is on its way to the device's session and the unit is assigned in the live index.
    ///
    /// A repeated `idempotency_key` returns the order the first request created, without
    /// creating another (a dispatcher's retry after a lost response is safe).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown incident or unit; [`Error::Conflict`] when the incident
    /// is closed, the unit has no enrolled device or is not available, or the idempotency key
    /// was used for a different assignment.
    pub async fn create_order(
        &self,
        incident_id: i64,
        unit_id: i64,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Order> {
        self.create(incident_id, unit_id, actor, idempotency_key, None)
            .await
    }

    /// Like [`Store::create_order`], for one unit of the incident's response plan of
    /// `plan_units` units: refused with [`Error::Conflict`] `plan_fulfilled`, naming the units,
    /// when the incident already holds that many active orders. The count and the new order
    /// are one write, so two plan dispatches racing for one incident never exceed the plan.
    ///
    /// # Errors
    /// As [`Store::create_order`], and `plan_fulfilled`.
    pub async fn create_plan_order(
        &self,
        incident_id: i64,
        unit_id: i64,
        actor: &Actor,
        idempotency_key: Option<&str>,
        plan_units: usize,
    ) -> Result<Order> {
        self.create(
            incident_id,
            unit_id,
            actor,
            idempotency_key,
            Some(plan_units),
        )
        .await
    }

    async fn create(
        &self,
        incident_id: i64,
        unit_id: i64,
        actor: &Actor,
        idempotency_key: Option<&str>,
        plan_units: Option<usize>,
    ) -> Result<Order> {
        let key = idempotency_key.map(str::to_owned);
        let actor = actor.clone();
        let inserted = self
            .writer
            .write(move |tx| {
                insert_order(tx, incident_id, unit_id, &actor, key.as_deref(), plan_units)
            })
            .await?;
        match inserted {
            Inserted::New(order) => Ok(*order),
            Inserted::Earlier(order_id) => self.order(order_id).await,
        }
    }
}

/// The work of [`Store::create_order`] inside its batch, on either database: the new order, or
/// for a repeated idempotency key the earlier order's id. `plan_units` as for
/// [`Store::create_plan_order`].
///
/// # Errors
/// As [`Store::create_plan_order`]; a statement's error.
pub fn insert_order(
    tx: &mut dyn Sql,
    incident_id: i64,
    unit_id: i64,
    actor: &Actor,
    idempotency_key: Option<&str>,
    plan_units: Option<usize>,
) -> Result<Inserted> {
    if let Some(key) = idempotency_key {
        let earlier = tx
            .select_opt(
                "SELECT id, incident_id, unit_id FROM orders WHERE idempotency_key = ?1",
                params![key],
            )?
            .map(|r| -> Result<(i64, i64, i64)> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) })
            .transpose()?;
        if let Some((order_id, earlier_incident, earlier_unit)) = earlier {
            if (earlier_incident, earlier_unit) != (incident_id, unit_id) {
                return Err(Error::conflict(
                    "idempotency_key_reused",
                    format!("idempotency key {key:?} was used for another assignment"),
                ));
            }
            return Ok(Inserted::Earlier(order_id));
        }
    }
    let incident = incident_brief(tx, incident_id)?;
    if let Some(units) = plan_units {
        let sent = active_call_signs(tx, incident_id)?;
        if sent.len() >= units {
            return Err(plan_fulfilled(incident_id, units, &sent));
        }
    }
    let mut unit = read_unit(tx, unit_id)?;
    refuse_disabled(&unit)?;
    let call_sign = unit.call_sign.clone();
    let Some(device_id) = unit.device_id else {
        return Err(Error::conflict(
            "no_device",
            format!("unit {call_sign} has no enrolled device"),
        ));
    };
    if unit.status != UnitStatus::Available {
        return Err(Error::conflict(
            "unit_unavailable",
            format!(
                "unit {call_sign} is not available (status {})",
                unit.status.as_str()
            ),
        ));
    }
    let now: Millis = now_ms();
    let order_id = tx.insert(
        "INSERT INTO orders (incident_id, unit_id, device_id, created_by, created_at,
                             idempotency_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            incident_id,
            unit_id,
            device_id,
            actor.operator_id(),
            now,
            idempotency_key
        ],
    )?;
    let body = Message::Order(OrderMessage {
        order_id,
        unit_id,
        incident,
        accepted: false,
    });
    let delivery = outbox::enqueue(
        tx,
        device_id,
        unit_id,
        &format!("order-{order_id}"),
        &body,
        DeliveryRefs {
            order: Some(order_id),
            ..DeliveryRefs::default()
        },
        now,
    )?;
    tx.run(
        "UPDATE units SET status = 'assigned' WHERE id = ?1",
        params![unit_id],
    )?;
    tx.run(
        "UPDATE incidents SET status = 'dispatched', updated_at = ?1
         WHERE id = ?2 AND status = 'open'",
        params![now, incident_id],
    )?;
    append_event(
        tx,
        now,
        "order_queued",
        actor,
        EventRefs {
            incident: Some(incident_id),
            unit: Some(unit_id),
            order: Some(order_id),
        },
        &serde_json::json!({ "call_sign": call_sign, "device_id": device_id, "seq": delivery.seq }),
    )?;
    unit.status = UnitStatus::Assigned;
    tx.emit(Change::Unit(unit));
    Ok(Inserted::New(Box::new(Order {
        id: order_id,
        incident_id,
        unit_id,
        call_sign,
        device_id,
        state: OrderState::Queued,
        created_at_ms: now,
        delivered_at_ms: None,
        displayed_at_ms: None,
        acknowledged_at_ms: None,
        decided_at_ms: None,
        decline_reason: None,
        decline_detail: None,
        completed_at_ms: None,
        ended_at_ms: None,
        end_reason: None,
        receipt_escalated_at_ms: None,
        ack_escalated_at_ms: None,
    })))
}

/// The call signs of the units holding an active order for the incident, oldest order first.
pub(in crate::store) fn active_call_signs(
    tx: &mut dyn Statements,
    incident_id: i64,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT u.call_sign FROM orders o JOIN units u ON u.id = o.unit_id
         WHERE o.incident_id = ?1 AND {} ORDER BY o.id",
        OrderState::sql_in("o.state", &OrderState::ACTIVE)
    );
    tx.select(&sql, params![incident_id])?
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The refusal of one order more than the incident's plan needs, naming the units sent.
pub fn plan_fulfilled(incident_id: i64, units: usize, sent: &[String]) -> Error {
    Error::conflict(
        "plan_fulfilled",
        format!(
            "incident {incident_id} already has the {units} unit(s) its plan needs: {}",
            sent.join(", ")
        ),
    )
}
