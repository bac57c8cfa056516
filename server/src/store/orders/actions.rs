//! The officer's actions from the tablet (accept, decline, status, displayed, acknowledge,
//! text, emergency), each applied once per `action_id`: a resent action is answered as before, and an
//! `action_id` reused for a different action is refused.

use dispatch_protocol::{Action, ReportedStatus};
use sha2::{Digest, Sha256};

use super::super::outbox::{self, ReadStep};
use super::super::sql::{params, Sql, Statements};
use super::super::units::read_unit;
use super::super::{append_event, Change, EventRefs, Result, Store};
use super::transition::{read_order, transition_held_order, transition_order, HeldOrder};
use crate::domain::{now_ms, Actor, Millis, OrderState, OrderTransition, UnitStatus};

/// The result of a device action, as the device is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Applied now or earlier.
    Done,
    /// Refused; nothing changed.
    Rejected { code: String, message: String },
}

/// SHA-256 of the action's canonical JSON: what an `action_id` was first used for.
fn fingerprint(action: &Action) -> String {
    let json = serde_json::to_string(action).unwrap_or_default();
    hex::encode(Sha256::digest(json.as_bytes()))
}

impl Store {
    /// Applies one device action once: a resent `action_id` that was done is answered done
    /// again without applying it twice, and one reused for a different action is rejected with
    /// `action_id_reused`. Once committed, a unit whose status changed is in the live index.
    ///
    /// # Errors
    /// On a storage failure (the action is then not recorded and the device will resend it).
    ///
    /// Runs in a group-committed batch. A refusal writes nothing: every check in `apply` comes
    /// before its writes, and the record of the action, written first, is deleted again.
    pub async fn apply_device_action(
        &self,
        device_id: i64,
        unit_id: i64,
        action_id: &str,
        action: Action,
        tapped: Option<Millis>,
    ) -> Result<ActionOutcome> {
        let action_id = action_id.to_owned();
        self.writer
            .write(move |tx| {
                let request = DeviceAction {
                    device_id,
                    unit_id,
                    action_id: &action_id,
                    action,
                    tapped,
                };
                apply_device_action(tx, request, now_ms())
            })
            .await
    }
}

/// A device action as its session received it.
#[derive(Debug)]
pub struct DeviceAction<'a> {
    pub device_id: i64,
    pub unit_id: i64,
    pub action_id: &'a str,
    pub action: Action,
    /// When the officer did it, by the device's clock; `None` when the device did not say.
    pub tapped: Option<Millis>,
}

/// The work of [`Store::apply_device_action`] inside its batch, on either database, received
/// at `now`.
///
/// # Errors
/// A statement's error.
pub fn apply_device_action(
    tx: &mut dyn Sql,
    request: DeviceAction<'_>,
    now: Millis,
) -> Result<ActionOutcome> {
    let DeviceAction {
        device_id,
        unit_id,
        action_id,
        action,
        tapped,
    } = request;
    let fingerprint = fingerprint(&action);
    // Recorded first: an action done before is not recorded again.
    let first_time = tx.run(
        "INSERT INTO device_actions (device_id, action_id, outcome, applied_at, fingerprint)
         VALUES (?1, ?2, 'done', ?3, ?4) ON CONFLICT DO NOTHING",
        params![device_id, action_id, now, &fingerprint],
    )? == 1;
    if !first_time {
        return earlier_outcome(tx, device_id, action_id, &fingerprint);
    }
    let actor = Actor::Device { id: device_id };
    let target = UnitRef { device_id, unit_id };
    let when = match tapped {
        Some(tapped) => {
            tx.set_received_at(now);
            tapped.clamp(earliest(tx, device_id, &action, now)?, now)
        }
        None => now,
    };
    let outcome = apply(tx, target, action, when, &actor)?;
    if matches!(outcome, ActionOutcome::Rejected { .. }) {
        // A refusal changes nothing, not even the record of actions; a resent refused action
        // is judged again and refused again.
        tx.run(
            "DELETE FROM device_actions WHERE device_id = ?1 AND action_id = ?2",
            params![device_id, action_id],
        )?;
    }
    Ok(outcome)
}

/// The answer to an `action_id` recorded before: done again when it is the same action (rows
/// from before fingerprints were kept are taken as the same).
fn earlier_outcome(
    tx: &mut dyn Statements,
    device_id: i64,
    action_id: &str,
    fingerprint: &str,
) -> Result<ActionOutcome> {
    let recorded: Option<String> = tx
        .select_one(
            "SELECT fingerprint FROM device_actions WHERE device_id = ?1 AND action_id = ?2",
            params![device_id, action_id],
        )?
        .get(0)?;
    match recorded {
        Some(recorded) if recorded != fingerprint => Ok(rejected(
            "action_id_reused",
            format!("action_id {action_id:?} was already used for a different action"),
        )),
        _ => Ok(ActionOutcome::Done),
    }
}

fn rejected(code: &str, message: String) -> ActionOutcome {
    ActionOutcome::Rejected {
        code: code.to_owned(),
        message,
    }
}

/// How far back a device's time may date an action that is about no order or message.
const MAX_BACKDATE_MS: Millis = 24 * 3600 * 1000;

/// The earliest the officer can have done `action`: not before its order was made or its
/// message queued; otherwise not more than [`MAX_BACKDATE_MS`] before `now`.
fn earliest(
    db: &mut dyn Statements,
    device_id: i64,
    action: &Action,
    now: Millis,
) -> Result<Millis> {
    let row = match action {
        Action::Accept { order_id }
        | Action::Decline { order_id, .. }
        | Action::Status {
            order_id: Some(order_id),
            ..
        } => db.select_opt(
            "SELECT created_at FROM orders WHERE id = ?1",
            params![*order_id],
        )?,
        Action::Displayed { message_id } | Action::Acknowledge { message_id } => db.select_opt(
            "SELECT queued_at FROM deliveries WHERE device_id = ?1 AND message_id = ?2",
            params![device_id, message_id],
        )?,
        _ => None,
    };
    let floor: Option<Millis> = row.map(|r| r.get(0)).transpose()?;
    Ok(floor.unwrap_or(now - MAX_BACKDATE_MS).min(now))
}

/// A device's unit.
#[derive(Debug, Clone, Copy)]
struct UnitRef {
    device_id: i64,
    unit_id: i64,
}

fn apply(
    tx: &mut dyn Sql,
    target: UnitRef,
    action: Action,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    match action {
        Action::Displayed { message_id } => {
            apply_read(tx, target, &message_id, ReadStep::Displayed, now, actor)
        }
        Action::Acknowledge { message_id } => {
            apply_read(tx, target, &message_id, ReadStep::Acknowledged, now, actor)
        }
        Action::Text { text, incident_id } => super::super::texts::record_from_unit(
            tx,
            target.unit_id,
            &text,
            incident_id,
            now,
            actor,
        ),
        Action::Accept { order_id } => decide(tx, target, order_id, None, now, actor),
        Action::Decline {
            order_id,
            reason,
            detail,
        } => {
            let declined = Declined {
                reason: &reason,
                detail: detail.as_deref(),
            };
            decide(tx, target, order_id, Some(declined), now, actor)
        }
        Action::Status { status, order_id } => {
            apply_status(tx, target, status, order_id, now, actor)
        }
        Action::Emergency { location } => {
            super::super::emergency::record_emergency(tx, target.unit_id, location, now, actor)
        }
    }
}

/// The order if it belongs to `unit_id`, else the rejection to send.
fn own_order(
    db: &mut dyn Statements,
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

/// Why an officer declined: a reason code and, for `other`, the officer's words.
#[derive(Debug, Clone, Copy)]
struct Declined<'a> {
    reason: &'a str,
    detail: Option<&'a str>,
}

/// The officer accepts (`declined` is `None`) or declines an order of this unit.
fn decide(
    tx: &mut dyn Sql,
    target: UnitRef,
    order_id: i64,
    declined: Option<Declined<'_>>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let order = match own_order(tx, order_id, target.unit_id)? {
        Ok(found) => found,
        Err(rejection) => return Ok(rejection),
    };
    let transition = if declined.is_some() {
        OrderTransition::Decline
    } else {
        OrderTransition::Accept
    };
    if order.state.apply(transition).is_none() {
        return Ok(rejected(
            "already_decided",
            format!("order {order_id} is already {}", order.state.as_str()),
        ));
    }
    let detail = serde_json::json!({
        "reason": declined.map(|d| d.reason),
        "detail": declined.and_then(|d| d.detail),
    });
    transition_held_order(tx, order, transition, now, actor, &detail)?;
    // Accepting leaves the unit assigned, as it is since the order was queued.
    if declined.is_some() {
        set_unit_status(tx, target, UnitStatus::Available)?;
    }
    Ok(ActionOutcome::Done)
}

/// Records that the officer saw or acknowledged a message; for an order this moves its state.
fn apply_read(
    tx: &mut dyn Sql,
    target: UnitRef,
    message_id: &str,
    step: ReadStep,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let Some(held) = outbox::mark_read(tx, target.device_id, message_id, step, now)? else {
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
        transition_order(tx, order_id, transition, now, actor, &serde_json::json!({}))?;
    }
    Ok(ActionOutcome::Done)
}

fn apply_status(
    tx: &mut dyn Sql,
    target: UnitRef,
    status: ReportedStatus,
    order_id: Option<i64>,
    now: Millis,
    actor: &Actor,
) -> Result<ActionOutcome> {
    let order = match order_id {
        Some(order_id) => match own_order(tx, order_id, target.unit_id)? {
            Ok(order) if order.state == OrderState::Accepted => Some(order),
            Ok(order) => {
                return Ok(rejected(
                    "not_accepted",
                    format!("order {order_id} is {}, not accepted", order.state.as_str()),
                ))
            }
            Err(rejection) => return Ok(rejection),
        },
        None => tx
            .select_opt(
                "SELECT id, incident_id FROM orders WHERE unit_id = ?1 AND state = 'accepted'
                 ORDER BY id DESC LIMIT 1",
                params![target.unit_id],
            )?
            .map(|r| -> Result<HeldOrder> {
                Ok(HeldOrder {
                    id: r.get(0)?,
                    state: OrderState::Accepted,
                    incident_id: r.get(1)?,
                    unit_id: target.unit_id,
                })
            })
            .transpose()?,
    };
    let unit_status = match status {
        ReportedStatus::EnRoute => UnitStatus::EnRoute,
        ReportedStatus::OnScene => UnitStatus::OnScene,
        ReportedStatus::Cleared | ReportedStatus::Available => UnitStatus::Available,
        ReportedStatus::OutOfService => UnitStatus::OutOfService,
    };
    set_unit_status(tx, target, unit_status)?;
    append_event(
        tx,
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
                tx,
                order,
                OrderTransition::Clear,
                now,
                actor,
                &serde_json::json!({}),
            )?;
        }
    }
    Ok(ActionOutcome::Done)
}

/// Sets the unit's status; once committed, the unit as it now is goes to the live index.
fn set_unit_status(tx: &mut dyn Sql, target: UnitRef, status: UnitStatus) -> Result<()> {
    // Written, then read: cheaper than `UPDATE … RETURNING`, whose rows SQLite buffers in a
    // temporary b-tree.
    tx.run(
        "UPDATE units SET status = ?1 WHERE id = ?2",
        params![status.as_str(), target.unit_id],
    )?;
    let unit = read_unit(tx, target.unit_id)?;
    tx.emit(Change::Unit(unit));
    Ok(())
}
