//! What the escalation ladder reads and writes: orders overdue for a receipt or an
//! acknowledgement, expiry, the SMS fallback queue, and the console alerts operators acknowledge.

use super::sql::{params, Dialect, Param, SqlRow};
use std::sync::LazyLock;

use serde::Serialize;

use super::{append_event, Change, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, OrderState};

/// Which promise an order broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The device did not confirm receipt in time.
    NoReceipt,
    /// The officer did not acknowledge in time.
    NoAcknowledgement,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoReceipt => "no_receipt",
            Self::NoAcknowledgement => "no_acknowledgement",
        }
    }

    /// The states an order escalates from at this stage.
    fn states(self) -> &'static [OrderState] {
        match self {
            Self::NoReceipt => &[OrderState::Queued],
            Self::NoAcknowledgement => &OrderState::UNACKNOWLEDGED,
        }
    }

    /// Orders due at this stage and not yet escalated for it.
    fn condition(self) -> String {
        format!(
            "{} AND o.{} IS NULL",
            OrderState::sql_in("o.state", self.states()),
            self.stamp_column()
        )
    }

    fn stamp_column(self) -> &'static str {
        match self {
            Self::NoReceipt => "receipt_escalated_at",
            Self::NoAcknowledgement => "ack_escalated_at",
        }
    }
}

/// An order overdue at some stage, with what the escalation needs to act.
#[derive(Debug, Clone)]
pub struct OverdueOrder {
    pub order_id: i64,
    pub incident_id: i64,
    pub unit_id: i64,
    pub device_id: i64,
    pub call_sign: String,
    pub sms_number: Option<String>,
    pub kind: String,
    pub priority: i64,
    pub address: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub created_at: Millis,
}

/// A fallback message waiting for the gateway.
#[derive(Debug, Clone)]
pub struct PendingFallback {
    pub id: i64,
    pub order_id: i64,
    pub recipient: String,
    pub body: String,
    pub attempts: u32,
}

/// An alert shown on the console until an operator acknowledges it: an escalation, or a
/// reason for attention (which also leaves when it no longer holds).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub event_id: i64,
    #[schema(value_type = i64)]
    pub at_ms: Millis,
    pub kind: String,
    pub incident_id: Option<i64>,
    pub order_id: Option<i64>,
    pub unit_id: Option<i64>,
    pub detail: serde_json::Value,
    pub acknowledged_by: Option<String>,
    #[schema(value_type = Option<i64>)]
    pub acknowledged_at_ms: Option<Millis>,
}

/// The events that are console alerts: an officer's emergency, an escalated order, and a reason
/// for attention (open until acknowledged, or until the reason goes away). Exactly the condition
/// of the partial index `events_alerts` (migration 0015), so that listing open alerts reads the
/// alerts instead of every event ever recorded.
const ALERT_EVENT: &str =
    "(e.kind = 'officer_emergency' OR e.kind = 'order_escalated' OR e.kind = 'attention_raised')";

const ALERT_COLUMNS: &str = "e.id, e.at, e.kind, e.incident_id, e.order_id, e.unit_id, e.detail,
    o.username AS acknowledged_by, a.acknowledged_at";

/// Order `o` of incident `i` has waited longer than its priority's step of the ladder, with the
/// parameters of [`ladder_params`] (cast: PostgreSQL cannot type a parameter minus another).
const PAST_LADDER_STEP: &str = "o.created_at <= CAST($1 AS BIGINT) - CAST($7 AS BIGINT)
    AND o.created_at <= CAST($1 AS BIGINT) - CASE i.priority
        WHEN 0 THEN CAST($2 AS BIGINT) WHEN 1 THEN CAST($3 AS BIGINT)
        WHEN 2 THEN CAST($4 AS BIGINT) WHEN 3 THEN CAST($5 AS BIGINT)
        ELSE CAST($6 AS BIGINT) END";

/// The parameters of an escalation ladder's query: `now` (`$1`), the ladder's five steps by
/// priority (`$2`–`$6`) and its shortest step (`$7`), in milliseconds.
fn ladder_params(ladder: &[u64; 5], now: Millis) -> Vec<Param<'static>> {
    let soonest = ladder.iter().copied().min().unwrap_or_default();
    std::iter::once(now)
        .chain(ladder.iter().map(|secs| millis(*secs)))
        .chain([millis(soonest)])
        .map(Param::Int)
        .collect()
}

fn alert_from_row(r: &SqlRow) -> Alert {
    Alert {
        event_id: r.col("id"),
        at_ms: r.col("at"),
        kind: r.col("kind"),
        incident_id: r.col("incident_id"),
        order_id: r.col("order_id"),
        unit_id: r.col("unit_id"),
        detail: serde_json::from_str(&r.col::<String>("detail")).unwrap_or_default(),
        acknowledged_by: r.col("acknowledged_by"),
        acknowledged_at_ms: r.col("acknowledged_at"),
    }
}

/// Exactly the condition of the partial index `orders_waiting` (the undecided states, in the
/// same order), so that the sweep reads only waiting orders instead of the whole history.
static WAITING: LazyLock<String> =
    LazyLock::new(|| OrderState::sql_in("o.state", &OrderState::UNDECIDED));

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
}

/// The open alerts, oldest first: not acknowledged, not resolved, and not a missing receipt of an
/// order delivered since.
fn open_alerts(dialect: Dialect) -> String {
    let stage = dialect.json_text("e.detail", "stage");
    format!(
        "SELECT {ALERT_COLUMNS} FROM events e
         LEFT JOIN alert_acknowledgements a ON a.event_id = e.id
         LEFT JOIN operators o ON o.id = a.operator_id
         WHERE {ALERT_EVENT} AND a.event_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM attention t
                           WHERE t.event_id = e.id AND t.resolved_at IS NOT NULL)
           AND NOT (e.kind = 'order_escalated'
                    AND {stage} = 'no_receipt'
                    AND EXISTS (SELECT 1 FROM orders o
                                WHERE o.id = e.order_id AND o.delivered_at IS NOT NULL))
         ORDER BY e.id LIMIT $1"
    )
}

impl Store {
    /// Orders that have waited longer than `ladder[priority]` seconds at `stage` and were not
    /// escalated for it yet, oldest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn overdue_orders(
        &self,
        stage: Stage,
        ladder: &[u64; 5],
        now: Millis,
    ) -> Result<Vec<OverdueOrder>> {
        let sql = format!(
            "SELECT o.id, o.incident_id, o.unit_id, o.device_id, u.call_sign, u.sms_number, i.kind,
                    i.priority, i.address, i.lat, i.lon, o.created_at
             FROM orders o JOIN units u ON u.id = o.unit_id JOIN incidents i ON i.id = o.incident_id
             WHERE {} AND {} AND {PAST_LADDER_STEP}
             ORDER BY o.created_at LIMIT 500",
            *WAITING,
            stage.condition()
        );
        let rows = self
            .reader
            .select(&sql, &ladder_params(ladder, now))
            .await?;
        Ok(rows
            .iter()
            .map(|r| OverdueOrder {
                order_id: r.col("id"),
                incident_id: r.col("incident_id"),
                unit_id: r.col("unit_id"),
                device_id: r.col("device_id"),
                call_sign: r.col("call_sign"),
                sms_number: r.col("sms_number"),
                kind: r.col("kind"),
                priority: r.col("priority"),
                address: r.col("address"),
                lat: r.col("lat"),
                lon: r.col("lon"),
                created_at: r.col("created_at"),
            })
            .collect())
    }

    /// Undecided orders older than `ladder[priority]` seconds.
    ///
    /// # Errors
    /// On a database error.
    pub async fn orders_to_expire(&self, ladder: &[u64; 5], now: Millis) -> Result<Vec<i64>> {
        let waiting = &*WAITING;
        let sql = format!(
            "SELECT o.id FROM orders o JOIN incidents i ON i.id = o.incident_id
             WHERE {waiting} AND {PAST_LADDER_STEP}
             ORDER BY o.created_at LIMIT 500"
        );
        self.reader.column(&sql, &ladder_params(ladder, now)).await
    }

    /// Records one escalation of an order: the stamp that keeps it from escalating twice, the
    /// `order_escalated` event (the console alert) and, when given, a fallback message to send.
    /// Returns `false` when the order had already escalated at this stage or moved on meanwhile.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_escalation(
        &self,
        order: &OverdueOrder,
        stage: Stage,
        detail: serde_json::Value,
        fallback: Option<(&str, &str)>,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE orders AS o SET {} = ?1 WHERE o.id = ?2 AND {}",
            stage.stamp_column(),
            stage.condition()
        );
        let order = order.clone();
        let fallback = fallback.map(|(to, body)| (to.to_owned(), body.to_owned()));
        self.writer
            .write(move |tx| {
                let now = now_ms();
                let stamped = tx.run(&sql, params![now, order.order_id])?;
                if stamped == 0 {
                    return Ok(false);
                }
                append_event(
                    tx,
                    now,
                    "order_escalated",
                    &Actor::System,
                    EventRefs {
                        incident: Some(order.incident_id),
                        unit: Some(order.unit_id),
                        order: Some(order.order_id),
                    },
                    &detail,
                )?;
                if let Some((recipient, body)) = &fallback {
                    tx.run(
                        "INSERT INTO fallback_messages (order_id, unit_id, recipient, body,
                                                        created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![order.order_id, order.unit_id, recipient, body, now],
                    )?;
                    tx.emit(Change::FallbackQueued);
                }
                Ok(true)
            })
            .await
    }

    /// Fallback messages still to hand to the gateway, oldest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn pending_fallbacks(&self, limit: u32) -> Result<Vec<PendingFallback>> {
        let rows = self
            .reader
            .select(
                "SELECT id, order_id, recipient, body, attempts FROM fallback_messages
             WHERE status = 'pending' ORDER BY id LIMIT $1",
                params![limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingFallback {
                id: r.col("id"),
                order_id: r.col("order_id"),
                recipient: r.col("recipient"),
                body: r.col("body"),
                attempts: u32::try_from(r.col::<i64>("attempts")).unwrap_or(u32::MAX),
            })
            .collect())
    }

    /// Records one attempt at the gateway: `Ok(reference)` marks the message sent; an error
    /// keeps it pending until `give_up`, then marks it failed. Sent and failed are timeline
    /// events of the order.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_fallback_attempt(
        &self,
        message: &PendingFallback,
        outcome: std::result::Result<Option<String>, String>,
        give_up: bool,
    ) -> Result<()> {
        let message = message.clone();
        self.writer
            .write(move |tx| {
                let now = now_ms();
                let (status, reference, error) = match &outcome {
                    Ok(reference) => ("sent", reference.clone(), None),
                    Err(e) if give_up => ("failed", None, Some(e.clone())),
                    Err(e) => ("pending", None, Some(e.clone())),
                };
                let row = tx.select_one(
                    "UPDATE fallback_messages SET status = ?1, attempts = attempts + 1,
                         gateway_ref = COALESCE(?2, gateway_ref), last_error = ?3,
                         updated_at = ?4
                     WHERE id = ?5
                     RETURNING unit_id, attempts,
                         (SELECT incident_id FROM orders WHERE id = order_id)",
                    params![status, reference.as_ref(), error.as_ref(), now, message.id],
                )?;
                let (unit_id, attempts, incident): (i64, i64, i64) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                if status != "pending" {
                    append_event(
                        tx,
                        now,
                        if status == "sent" {
                            "fallback_sent"
                        } else {
                            "fallback_failed"
                        },
                        &Actor::System,
                        EventRefs {
                            incident: Some(incident),
                            unit: Some(unit_id),
                            order: Some(message.order_id),
                        },
                        &serde_json::json!({
                            "channel": "sms",
                            "fallback_id": message.id,
                            "recipient": message.recipient,
                            "attempts": attempts,
                            "gateway_ref": reference,
                            "error": error,
                        }),
                    )?;
                }
                Ok(())
            })
            .await
    }

    /// Alerts no operator has acknowledged, oldest first: a reason for attention only while it
    /// holds, a missing receipt only until the order is delivered.
    ///
    /// # Errors
    /// On a database error.
    pub async fn open_alerts(&self, limit: u32) -> Result<Vec<Alert>> {
        let sql = open_alerts(self.reader.dialect());
        let rows = self.reader.select(&sql, params![limit]).await?;
        Ok(rows.iter().map(alert_from_row).collect())
    }

    /// An operator acknowledges an alert. Acknowledging again changes nothing and answers the
    /// first acknowledgement.
    ///
    /// # Errors
    /// [`Error::NotFound`] when `event_id` is not an alert.
    pub async fn acknowledge_alert(&self, event_id: i64, actor: &Actor) -> Result<Alert> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                type Refs = (Option<i64>, Option<i64>, Option<i64>);
                let event = tx
                    .select_opt(
                        &format!(
                            "SELECT e.incident_id, e.unit_id, e.order_id FROM events e
                             WHERE e.id = ?1 AND {ALERT_EVENT}"
                        ),
                        params![event_id],
                    )?
                    .map(|r| -> Result<Refs> { Ok((r.get(0)?, r.get(1)?, r.get(2)?)) })
                    .transpose()?;
                let Some((incident, unit, order)) = event else {
                    return Err(Error::NotFound(format!("alert {event_id}")));
                };
                let now = now_ms();
                let inserted = tx.run(
                    "INSERT INTO alert_acknowledgements (event_id, operator_id, acknowledged_at)
                     VALUES (?1, ?2, ?3) ON CONFLICT (event_id) DO NOTHING",
                    params![event_id, actor.operator_id(), now],
                )?;
                if inserted == 1 {
                    append_event(
                        tx,
                        now,
                        "alert_acknowledged",
                        &actor,
                        EventRefs {
                            incident,
                            unit,
                            order,
                        },
                        &serde_json::json!({ "alert_event_id": event_id }),
                    )?;
                }
                Ok(())
            })
            .await?;
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM events e
             LEFT JOIN alert_acknowledgements a ON a.event_id = e.id
             LEFT JOIN operators o ON o.id = a.operator_id WHERE e.id = $1"
        );
        Ok(alert_from_row(
            &self.reader.select_one(&sql, params![event_id]).await?,
        ))
    }

    /// Sets or clears the number the SMS fallback uses for a unit.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit.
    pub async fn set_sms_number(
        &self,
        unit_id: i64,
        number: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        let (number, actor) = (number.map(str::to_owned), actor.clone());
        self.writer
            .write(move |tx| {
                super::units::ensure_unit(tx, unit_id)?;
                tx.run(
                    "UPDATE units SET sms_number = ?1 WHERE id = ?2",
                    params![number.as_ref(), unit_id],
                )?;
                append_event(
                    tx,
                    now_ms(),
                    "unit_sms_number_set",
                    &actor,
                    EventRefs {
                        unit: Some(unit_id),
                        ..EventRefs::default()
                    },
                    &serde_json::json!({ "sms_number": number }),
                )
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing open alerts reads the partial index of alert events, not the whole event table:
    /// the query repeats the index's condition exactly.
    #[tokio::test]
    async fn open_alerts_read_the_alert_index() {
        let (_dir, store) = crate::service::testing::temporary_store().await;
        let plan: Vec<String> = store
            .reader
            .select(
                &format!("EXPLAIN QUERY PLAN {}", open_alerts(Dialect::Sqlite)),
                params![10],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.col("detail"))
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SCAN e USING INDEX events_alerts")),
            "{plan:?}"
        );
    }
}
