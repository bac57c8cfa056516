//! Orders: committing an assignment to a device's outbox, and applying the officer's actions.

use dispatch_protocol::{CancelMessage, IncidentBrief, Message, OrderMessage, ReportedStatus};
use rusqlite::OptionalExtension;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::outbox::{self, DeliveryRefs, ReadStep};
use super::units::{unit_from_row, UNIT_COLUMNS};
use super::{append_event_batched, Error, EventRefs, PendingDelivery, Result, Store};
use crate::domain::{now_ms, Actor, Millis, Order, OrderState, OrderTransition, Unit, UnitStatus};

/// The result of a device action, as the device is told.
#[derive(Debug, Clone)]
pub enum ActionOutcome {
    /// Applied now or earlier; `unit` is the unit as it now is when the action changed its
    /// status (for the live index).
    Done {
        unit: Option<Box<Unit>>,
    },
    Rejected {
        code: String,
        message: String,
    },
}

/// A committed order with what the caller passes on after the commit.
#[derive(Debug, Clone)]
pub struct QueuedOrder {
    pub order: Order,
    /// The unit as it now is (assigned), for the live index; `None` when a repeated idempotency
    /// key answered an earlier order.
    pub unit: Option<Unit>,
    /// The outbox entry to hand to the device's session; `None` for an earlier order.
    pub delivery: Option<PendingDelivery>,
}

/// What [`insert_order`] did.
enum Inserted {
    New(Box<QueuedOrder>),
    /// A repeated idempotency key: the order the first request created.
    Earlier(i64),
}

const ORDER_COLUMNS: &str = "o.id, o.incident_id, o.unit_id, u.call_sign, o.device_id, o.state,
    o.created_at, o.delivered_at, o.displayed_at, o.acknowledged_at, o.decided_at,
    o.decline_reason, o.completed_at, o.ended_at, o.end_reason, o.receipt_escalated_at,
    o.ack_escalated_at";

fn order_from_row(r: &SqliteRow) -> Order {
    Order {
        id: r.get("id"),
        incident_id: r.get("incident_id"),
        unit_id: r.get("unit_id"),
        call_sign: r.get("call_sign"),
        device_id: r.get("device_id"),
        state: OrderState::parse(r.get::<&str, _>("state")).unwrap_or(OrderState::Queued),
        created_at_ms: r.get("created_at"),
        delivered_at_ms: r.get("delivered_at"),
        displayed_at_ms: r.get("displayed_at"),
        acknowledged_at_ms: r.get("acknowledged_at"),
        decided_at_ms: r.get("decided_at"),
        decline_reason: r.get("decline_reason"),
        completed_at_ms: r.get("completed_at"),
        ended_at_ms: r.get("ended_at"),
        end_reason: r.get("end_reason"),
        receipt_escalated_at_ms: r.get("receipt_escalated_at"),
        ack_escalated_at_ms: r.get("ack_escalated_at"),
    }
}

impl Store {
    /// Commits an order for `unit_id` on `incident_id`: the order row, the device outbox entry
    /// and the timeline event in one transaction. Returns only after the commit.
    ///
    /// A repeated `idempotency_key` returns the order the first request created, without
    /// creating another (a dispatcher's retry after a lost response is safe).
    ///
    /// `after_commit` runs on a new order right after the commit, in commit order, even if the
    /// caller stops waiting: the place to hand the delivery to the device and the unit to the
    /// live index.
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
        after_commit: impl FnOnce(&QueuedOrder) + Send + 'static,
    ) -> Result<QueuedOrder> {
        let key = idempotency_key.map(str::to_owned);
        let actor = actor.clone();
        let inserted = self
            .batch
            .write_then(
                move |db| insert_order(db, incident_id, unit_id, &actor, key.as_deref(), now_ms()),
                move |inserted| {
                    if let Inserted::New(queued) = inserted {
                        after_commit(queued);
                    }
                },
            )
            .await?;
        match inserted {
            Inserted::New(queued) => Ok(*queued),
            Inserted::Earlier(order_id) => Ok(QueuedOrder {
                order: self.order(order_id).await?,
                unit: None,
                delivery: None,
            }),
        }
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn order(&self, id: i64) -> Result<Order> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o JOIN units u ON u.id = o.unit_id WHERE o.id = $1"
        );
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| order_from_row(&r))
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
        let rows = sqlx::query(&sql)
            .bind(prefix)
            .fetch_all(&self.writer)
            .await?;
        Ok(rows.iter().map(order_from_row).collect())
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
        let rows = sqlx::query(&sql)
            .bind(incident_id)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(order_from_row).collect())
    }

    /// Withdraws an order: an operator cancels it, or the server expires it because nobody
    /// decided in time. The state change, the `cancel` message to the device and the unit's
    /// release (when it holds no other live order) commit together. Returns the order as it now
    /// is; the caller wakes the device's session.
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
        self.batch
            .write(move |db| withdraw(db, order_id, withdrawal, &reason, &actor, now_ms()))
            .await?;
        self.order(order_id).await
    }

    /// Applies one device action once: a resent `action_id` that was done is answered done
    /// again without applying it twice. `after_commit` runs on the outcome right after the
    /// commit, in commit order (the place to put a changed unit into the live index).
    ///
    /// # Errors
    /// On a database error (the action is then not recorded and the device will resend it).
    ///
    /// Runs in a group-committed batch. A refusal must write nothing before it is decided (every
    /// check in `apply` comes before its writes, and the record of the action, written first, is
    /// deleted again), because the batch keeps what a job wrote when the job answers `Ok`.
    pub async fn apply_device_action(
        &self,
        device_id: i64,
        unit_id: i64,
        action_id: &str,
        action: DeviceAction,
        after_commit: impl FnOnce(&ActionOutcome) + Send + 'static,
    ) -> Result<ActionOutcome> {
        let action_id = action_id.to_owned();
        self.batch
            .write_then(
                move |db| {
                    let now = now_ms();
                    // Recorded first: an action done before is not recorded again.
                    let first_time = db
                        .prepare_cached(
                            "INSERT INTO device_actions (device_id, action_id, outcome, applied_at)
                             VALUES (?1, ?2, 'done', ?3) ON CONFLICT DO NOTHING",
                        )?
                        .execute(rusqlite::params![device_id, action_id, now])?
                        == 1;
                    if !first_time {
                        return Ok(ActionOutcome::Done { unit: None });
                    }
                    let actor = Actor::Device { id: device_id };
                    let outcome = apply(db, device_id, unit_id, action, now, &actor)?;
                    if matches!(outcome, ActionOutcome::Rejected { .. }) {
                        // A refusal changes nothing, not even the record of actions; a resent
                        // refused action is judged again and refused again.
                        db.prepare_cached(
                            "DELETE FROM device_actions WHERE device_id = ?1 AND action_id = ?2",
                        )?
                        .execute(rusqlite::params![device_id, action_id])?;
                    }
                    Ok(outcome)
                },
                after_commit,
            )
            .await
    }
}

/// The work of [`Store::create_order`] inside its batch: the new order, or for a repeated
/// idempotency key the earlier order's id.
fn insert_order(
    db: &rusqlite::Connection,
    incident_id: i64,
    unit_id: i64,
    actor: &Actor,
    idempotency_key: Option<&str>,
    now: Millis,
) -> Result<Inserted> {
    if let Some(key) = idempotency_key {
        let earlier: Option<(i64, i64, i64)> = db
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
    let incident = db
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
    let Some((incident, closed)) = incident else {
        return Err(Error::NotFound(format!("incident {incident_id}")));
    };
    if closed {
        return Err(Error::conflict(
            "incident_closed",
            format!("incident {incident_id} is closed"),
        ));
    }
    let mut unit = db
        .prepare_cached(&format!(
            "SELECT {UNIT_COLUMNS} FROM units u WHERE u.id = ?1"
        ))?
        .query_row([unit_id], |r| Ok(unit_from_row(r)))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("unit {unit_id}")))?;
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
    let order_id: i64 = db
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
        db,
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
    db.prepare_cached("UPDATE units SET status = 'assigned' WHERE id = ?1")?
        .execute([unit_id])?;
    db.prepare_cached(
        "UPDATE incidents SET status = 'dispatched', updated_at = ?1
         WHERE id = ?2 AND status = 'open'",
    )?
    .execute([now, incident_id])?;
    append_event_batched(
        db,
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
    let order = Order {
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
    };
    Ok(Inserted::New(Box::new(QueuedOrder {
        order,
        unit: Some(unit),
        delivery: Some(delivery),
    })))
}

/// The work of [`Store::withdraw_order`] inside its batch.
fn withdraw(
    db: &rusqlite::Connection,
    order_id: i64,
    withdrawal: Withdrawal,
    reason: &str,
    actor: &Actor,
    now: Millis,
) -> Result<()> {
    let (state, unit_id, device_id): (String, i64, i64) = db
        .prepare_cached("SELECT state, unit_id, device_id FROM orders WHERE id = ?1")?
        .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("order {order_id}")))?;
    let transition = match withdrawal {
        Withdrawal::Cancel => OrderTransition::Cancel,
        Withdrawal::Expire => OrderTransition::Expire,
    };
    let detail = serde_json::json!({ "reason": reason });
    if transition_order(db, order_id, transition, now, actor, &detail)?.is_none() {
        return Err(Error::conflict(
            "order_final",
            format!(
                "order {order_id} is {state} and cannot be {}",
                withdrawal.past_tense()
            ),
        ));
    }
    let body = Message::Cancel(CancelMessage {
        order_id,
        reason: withdrawal.past_tense().to_owned(),
        detail: Some(reason.to_owned()).filter(|r| !r.is_empty()),
    });
    outbox::enqueue(
        db,
        device_id,
        unit_id,
        &format!("cancel-{order_id}"),
        &body,
        DeliveryRefs::default(),
        now,
    )?;
    let live_orders: i64 = db
        .prepare_cached(
            "SELECT COUNT(*) FROM orders WHERE unit_id = ?1
             AND state IN ('queued', 'delivered', 'displayed', 'acknowledged', 'accepted')",
        )?
        .query_row([unit_id], |r| r.get(0))?;
    if live_orders == 0 {
        db.prepare_cached(
            "UPDATE units SET status = 'available'
             WHERE id = ?1 AND status IN ('assigned', 'en_route', 'on_scene')",
        )?
        .execute([unit_id])?;
    }
    Ok(())
}

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
}

/// An officer's action as the store applies it.
#[derive(Debug, Clone)]
pub enum DeviceAction {
    Accept {
        order_id: i64,
    },
    Decline {
        order_id: i64,
        reason: String,
    },
    Status {
        status: ReportedStatus,
        order_id: Option<i64>,
    },
    /// The message is on the officer's screen.
    Displayed {
        message_id: String,
    },
    /// The officer confirmed having read the message.
    Acknowledge {
        message_id: String,
    },
    /// A text to the control room.
    Text {
        text: String,
        incident_id: Option<i64>,
    },
}

fn rejected(code: &str, message: String) -> ActionOutcome {
    ActionOutcome::Rejected {
        code: code.to_owned(),
        message,
    }
}

/// The order if it belongs to `unit_id`, else the rejection to send.
fn own_order(
    db: &rusqlite::Connection,
    order_id: i64,
    unit_id: i64,
) -> Result<std::result::Result<HeldOrder, ActionOutcome>> {
    let Some(order) = read_order(db, order_id)? else {
        return Ok(Err(rejected(
            "unknown_order",
            format!("order {order_id} does not exist"),
        )));
    };
    if order.unit_id != unit_id {
        return Ok(Err(rejected(
            "not_your_order",
            format!("order {order_id} is not for this unit"),
        )));
    }
    Ok(Ok(order))
}

fn apply(
    db: &rusqlite::Connection,
    device_id: i64,
    unit_id: i64,
    action: DeviceAction,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let target = UnitRef { device_id, unit_id };
    match action {
        DeviceAction::Displayed { message_id } => {
            apply_read(db, device_id, &message_id, ReadStep::Displayed, now, actor)
        }
        DeviceAction::Acknowledge { message_id } => apply_read(
            db,
            device_id,
            &message_id,
            ReadStep::Acknowledged,
            now,
            actor,
        ),
        DeviceAction::Text { text, incident_id } => {
            super::texts::record_from_unit(db, unit_id, &text, incident_id, now, actor)
        }
        DeviceAction::Accept { order_id } => decide(db, target, order_id, None, now, actor),
        DeviceAction::Decline { order_id, reason } => {
            decide(db, target, order_id, Some(&reason), now, actor)
        }
        DeviceAction::Status { status, order_id } => {
            apply_status(db, target, status, order_id, now, actor)
        }
    }
}

/// The officer accepts (`decline_reason` is `None`) or declines an order of this unit.
fn decide(
    db: &rusqlite::Connection,
    target: UnitRef,
    order_id: i64,
    decline_reason: Option<&str>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let order = match own_order(db, order_id, target.unit_id)? {
        Ok(found) => found,
        Err(rejection) => return Ok(rejection),
    };
    let transition = if decline_reason.is_some() {
        OrderTransition::Decline
    } else {
        OrderTransition::Accept
    };
    let detail = serde_json::json!({ "reason": decline_reason });
    if transition_held_order(db, order, transition, now, actor, &detail)?.is_none() {
        return Ok(rejected(
            "already_decided",
            format!("order {order_id} is already {}", order.state.as_str()),
        ));
    }
    // Accepting leaves the unit assigned, as it is since the order was queued.
    let unit = if decline_reason.is_some() {
        Some(Box::new(set_unit_status(
            db,
            target,
            UnitStatus::Available,
        )?))
    } else {
        None
    };
    Ok(ActionOutcome::Done { unit })
}

/// Records that the officer saw or acknowledged a message; for an order this moves its state.
fn apply_read(
    db: &rusqlite::Connection,
    device_id: i64,
    message_id: &str,
    step: ReadStep,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let Some(held) = outbox::mark_read(db, device_id, message_id, step, now)? else {
        return Ok(rejected(
            "unknown_message",
            format!("message {message_id:?} was never sent to this device"),
        ));
    };
    if let Some(order_id) = held.order {
        let transition = match step {
            ReadStep::Displayed => OrderTransition::Display,
            ReadStep::Acknowledged => OrderTransition::Acknowledge,
        };
        transition_order(db, order_id, transition, now, actor, &serde_json::json!({}))?;
    }
    if let (Some(broadcast_id), ReadStep::Acknowledged) = (held.broadcast, step) {
        tracing::debug!(broadcast_id, device_id, "broadcast acknowledged");
    }
    Ok(ActionOutcome::Done { unit: None })
}

/// A device's unit.
#[derive(Debug, Clone, Copy)]
struct UnitRef {
    device_id: i64,
    unit_id: i64,
}

fn apply_status(
    db: &rusqlite::Connection,
    target: UnitRef,
    status: ReportedStatus,
    order_id: Option<i64>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let order = match order_id {
        Some(order_id) => match own_order(db, order_id, target.unit_id)? {
            Ok(order) => {
                if order.state != OrderState::Accepted {
                    return Ok(rejected(
                        "not_accepted",
                        format!("order {order_id} is {}, not accepted", order.state.as_str()),
                    ));
                }
                Some(order)
            }
            Err(rejection) => return Ok(rejection),
        },
        None => db
            .prepare_cached(
                "SELECT id, incident_id FROM orders WHERE unit_id = ?1 AND state = 'accepted'
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([target.unit_id], |r| {
                Ok(HeldOrder {
                    id: r.get(0)?,
                    state: OrderState::Accepted,
                    incident_id: r.get(1)?,
                    unit_id: target.unit_id,
                })
            })
            .optional()?,
    };
    let unit_status = match status {
        ReportedStatus::EnRoute => UnitStatus::EnRoute,
        ReportedStatus::OnScene => UnitStatus::OnScene,
        ReportedStatus::Cleared | ReportedStatus::Available => UnitStatus::Available,
        ReportedStatus::OutOfService => UnitStatus::OutOfService,
    };
    let unit = set_unit_status(db, target, unit_status)?;
    append_event_batched(
        db,
        now,
        &format!("unit_{}", status.as_str()),
        actor,
        EventRefs {
            incident: order.map(|o| o.incident_id),
            unit: Some(target.unit_id),
            order: order.map(|o| o.id),
        },
        &serde_json::json!({ "status": status.as_str() }),
    )?;
    if status == ReportedStatus::Cleared {
        if let Some(order) = order {
            transition_held_order(
                db,
                order,
                OrderTransition::Clear,
                now,
                actor,
                &serde_json::json!({}),
            )?;
        }
    }
    Ok(ActionOutcome::Done {
        unit: Some(Box::new(unit)),
    })
}

/// Sets the unit's status and returns the unit as it now is.
fn set_unit_status(db: &rusqlite::Connection, target: UnitRef, status: UnitStatus) -> Result<Unit> {
    let unit = db
        .prepare_cached(
            "UPDATE units SET status = ?1 WHERE id = ?2
             RETURNING id, call_sign, kind, capabilities, home_station, status, lat, lon,
                 accuracy_m, fix_time, fix_received, ?3 AS device_id",
        )?
        .query_row(
            rusqlite::params![status.as_str(), target.unit_id, target.device_id],
            |r| Ok(unit_from_row(r)),
        )?;
    Ok(unit)
}

/// Moves an order through the state machine inside a group-committed write, stamping the
/// matching column and appending `order_<state>` to the timeline when the state changes.
/// Returns the resulting state, or `None` when the transition is not allowed (nothing is
/// written then).
pub(super) fn transition_order(
    db: &rusqlite::Connection,
    order_id: i64,
    transition: OrderTransition,
    now: Millis,
    actor: &Actor,
    detail: &serde_json::Value,
) -> Result<Option<OrderState>> {
    let order = read_order(db, order_id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    transition_held_order(db, order, transition, now, actor, detail)
}

/// The order as it is now, inside the running write.
fn read_order(db: &rusqlite::Connection, order_id: i64) -> Result<Option<HeldOrder>> {
    let order = db
        .prepare_cached("SELECT state, incident_id, unit_id FROM orders WHERE id = ?1")?
        .query_row([order_id], |r| {
            Ok(HeldOrder {
                id: order_id,
                state: OrderState::parse(&r.get::<_, String>(0)?).unwrap_or(OrderState::Cancelled),
                incident_id: r.get(1)?,
                unit_id: r.get(2)?,
            })
        })
        .optional()?;
    Ok(order)
}

/// An order as the running write just read it.
#[derive(Debug, Clone, Copy)]
struct HeldOrder {
    id: i64,
    state: OrderState,
    incident_id: i64,
    unit_id: i64,
}

/// [`transition_order`] for an order the write has read already.
fn transition_held_order(
    db: &rusqlite::Connection,
    order: HeldOrder,
    transition: OrderTransition,
    now: Millis,
    actor: &Actor,
    detail: &serde_json::Value,
) -> Result<Option<OrderState>> {
    let HeldOrder {
        id: order_id,
        state,
        incident_id,
        unit_id,
    } = order;
    let Some(next) = state.apply(transition) else {
        return Ok(None);
    };
    if next == state {
        return Ok(Some(next));
    }
    let reason = detail.get("reason").and_then(|r| r.as_str());
    // Each later step implies the earlier ones: an order accepted straight away was also
    // delivered, displayed and acknowledged at that moment.
    db.prepare_cached(
        "UPDATE orders SET state = ?1,
            delivered_at = CASE WHEN ?1 IN ('delivered', 'displayed', 'acknowledged', 'accepted', 'declined')
                THEN COALESCE(delivered_at, ?2) ELSE delivered_at END,
            displayed_at = CASE WHEN ?1 IN ('displayed', 'acknowledged', 'accepted', 'declined')
                THEN COALESCE(displayed_at, ?2) ELSE displayed_at END,
            acknowledged_at = CASE WHEN ?1 IN ('acknowledged', 'accepted', 'declined')
                THEN COALESCE(acknowledged_at, ?2) ELSE acknowledged_at END,
            decided_at = CASE WHEN ?1 IN ('accepted', 'declined') THEN ?2 ELSE decided_at END,
            decline_reason = CASE WHEN ?1 = 'declined' THEN ?3 ELSE decline_reason END,
            completed_at = CASE WHEN ?1 = 'completed' THEN ?2 ELSE completed_at END,
            ended_at = CASE WHEN ?1 IN ('cancelled', 'expired') THEN ?2 ELSE ended_at END,
            end_reason = CASE WHEN ?1 IN ('cancelled', 'expired') THEN ?3 ELSE end_reason END
         WHERE id = ?4",
    )?
    .execute(rusqlite::params![next.as_str(), now, reason, order_id])?;
    append_event_batched(
        db,
        now,
        &format!("order_{}", next.as_str()),
        actor,
        EventRefs {
            incident: Some(incident_id),
            unit: Some(unit_id),
            order: Some(order_id),
        },
        detail,
    )?;
    Ok(Some(next))
}
