//! Committing an assignment: the order row, the device outbox entry, the unit held for it and
//! the timeline event, in one write.

use dispatch_protocol::{IncidentBrief, Message, OrderMessage};
use rusqlite::OptionalExtension;

use super::super::group_commit::Tx;
use super::super::outbox::{self, DeliveryRefs};
use super::super::units::read_unit;
use super::super::{append_event, Change, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, Order, OrderState, UnitStatus};

/// What [`insert_order`] did.
enum Inserted {
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
        let key = idempotency_key.map(str::to_owned);
        let actor = actor.clone();
        let inserted = self
            .writer
            .write(move |tx| insert_order(tx, incident_id, unit_id, &actor, key.as_deref()))
            .await?;
        match inserted {
            Inserted::New(order) => Ok(*order),
            Inserted::Earlier(order_id) => self.order(order_id).await,
        }
    }
}

/// The work of [`Store::create_order`] inside its batch: the new order, or for a repeated
/// idempotency key the earlier order's id.
fn insert_order(
    tx: &mut Tx<'_>,
    incident_id: i64,
    unit_id: i64,
    actor: &Actor,
    idempotency_key: Option<&str>,
) -> Result<Inserted> {
    if let Some(key) = idempotency_key {
        let earlier: Option<(i64, i64, i64)> = tx
            .prepare_cached(
                "SELECT id, incident_id, unit_id FROM orders WHERE idempotency_key = ?1",
            )?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
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
    let mut unit = read_unit(tx, unit_id)?;
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
    let order_id: i64 = tx
        .prepare_cached(
            "INSERT INTO orders (incident_id, unit_id, device_id, created_by, created_at,
                                 idempotency_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        )?
        .query_row(
            rusqlite::params![
                incident_id,
                unit_id,
                device_id,
                actor.operator_id(),
                now,
                idempotency_key
            ],
            |r| r.get(0),
        )?;
    let body = Message::Order(OrderMessage {
        order_id,
        unit_id,
        incident,
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
    tx.prepare_cached("UPDATE units SET status = 'assigned' WHERE id = ?1")?
        .execute([unit_id])?;
    tx.prepare_cached(
        "UPDATE incidents SET status = 'dispatched', updated_at = ?1
         WHERE id = ?2 AND status = 'open'",
    )?
    .execute([now, incident_id])?;
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
        completed_at_ms: None,
        ended_at_ms: None,
        end_reason: None,
        receipt_escalated_at_ms: None,
        ack_escalated_at_ms: None,
    })))
}

/// What the order tells the officer about its incident, which must exist and be open.
fn incident_brief(tx: &Tx<'_>, incident_id: i64) -> Result<IncidentBrief> {
    let incident = tx
        .prepare_cached(
            "SELECT kind, priority, status, lat, lon, address, notes FROM incidents WHERE id = ?1",
        )?
        .query_row([incident_id], |r| {
            let brief = IncidentBrief {
                id: incident_id,
                kind: r.get(0)?,
                priority: u8::try_from(r.get::<_, i64>(1)?).unwrap_or(4),
                lat: r.get(3)?,
                lon: r.get(4)?,
                address: r.get(5)?,
                notes: r.get(6)?,
            };
            Ok((brief, r.get::<_, String>(2)? == "closed"))
        })
        .optional()?;
    match incident {
        None => Err(Error::NotFound(format!("incident {incident_id}"))),
        Some((_, true)) => Err(Error::conflict(
            "incident_closed",
            format!("incident {incident_id} is closed"),
        )),
        Some((brief, false)) => Ok(brief),
    }
}
