//! What needs an operator now: the attention review (one write, run by the escalation sweep)
//! decides every reason from what is committed, raises the new ones as `attention_raised`
//! events (the console alerts) and resolves the ones that went away; the console reads the
//! open ones, and marks a unit's texts read.

use super::sql::{params, Sql, Statements};
use std::collections::HashMap;

use serde::Serialize;

use super::{append_event, EventRefs, Result, Store};
use crate::config;
use crate::domain::attention::{Reason, Severity};
use crate::domain::{now_ms, Actor, Millis, OrderState};

/// One open reason for attention, as `GET /api/attention` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attention {
    pub id: i64,
    /// `None` only for a text sent outside any incident.
    pub incident_id: Option<i64>,
    pub reason: Reason,
    pub severity: Severity,
    /// Since when the reason holds (e.g. the decline, the incident's creation, the text).
    #[schema(value_type = i64)]
    pub since_ms: Millis,
    /// The target it broke, where it has one (`dispatch_overdue`, `welfare_check`).
    #[schema(value_type = Option<i64>)]
    pub target_ms: Option<Millis>,
    pub unit_id: Option<i64>,
    pub order_id: Option<i64>,
    /// The `attention_raised` event: what `POST /api/alerts/{event_id}/acknowledge` takes.
    pub alert_event_id: i64,
    #[schema(value_type = i64)]
    pub raised_at_ms: Millis,
    pub acknowledged_by: Option<String>,
    #[schema(value_type = Option<i64>)]
    pub acknowledged_at_ms: Option<Millis>,
    /// The event's detail: call sign, order state, decline reason, text, … by reason.
    pub detail: serde_json::Value,
}

/// What one review changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Review {
    pub raised: usize,
    pub resolved: usize,
}

/// A reason that holds now, found by the review.
struct Holding {
    incident: Option<i64>,
    reason: Reason,
    /// The order, unit or text it is about; 0 for the incident itself.
    subject: i64,
    unit: Option<i64>,
    order: Option<i64>,
    since: Millis,
    target_ms: Option<Millis>,
    detail: serde_json::Value,
}

impl Holding {
    fn key(&self) -> (i64, &'static str, i64) {
        (
            self.incident.unwrap_or(0),
            self.reason.as_str(),
            self.subject,
        )
    }
}

fn millis(secs: u64) -> Millis {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
}

impl Store {
    /// Decides, from what is committed, which reasons hold now; raises those not yet open
    /// (an `attention_raised` event each, the console alert) and resolves open ones that no
    /// longer hold (`attention_resolved`). One write, so a reason is raised at most once while
    /// it holds, whatever the number of sweeps.
    ///
    /// # Errors
    /// On a storage failure (nothing is raised or resolved then).
    pub async fn review_attention(&self, rules: &config::Attention) -> Result<Review> {
        let rules = rules.clone();
        self.writer
            .write(move |tx| {
                let now = now_ms();
                let mut holding = Vec::new();
                unreplaced_orders(tx, &mut holding)?;
                overdue_dispatches(tx, &rules, now, &mut holding)?;
                welfare_checks(tx, &rules, now, &mut holding)?;
                cleared_but_open(tx, &mut holding)?;
                unread_texts(tx, &mut holding)?;
                apply(tx, holding, now)
            })
            .await
    }

    /// Every open reason for attention, the most severe and oldest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn open_attention(&self) -> Result<Vec<Attention>> {
        let rows = self
            .reader
            .select(
                "SELECT t.id, t.incident_id, t.reason, t.raised_at, t.event_id, e.unit_id,
                    e.order_id, e.detail, o.username AS acknowledged_by, a.acknowledged_at
             FROM attention t JOIN events e ON e.id = t.event_id
             LEFT JOIN alert_acknowledgements a ON a.event_id = t.event_id
             LEFT JOIN operators o ON o.id = a.operator_id
             WHERE t.resolved_at IS NULL ORDER BY t.id",
                &[],
            )
            .await?;
        let mut open: Vec<Attention> = rows
            .iter()
            .filter_map(|r| {
                let reason = Reason::parse(&r.col::<String>("reason"))?;
                let detail: serde_json::Value =
                    serde_json::from_str(&r.col::<String>("detail")).unwrap_or_default();
                Some(Attention {
                    id: r.col("id"),
                    incident_id: r.col("incident_id"),
                    reason,
                    severity: reason.severity(),
                    since_ms: detail["since_ms"].as_i64().unwrap_or(r.col("raised_at")),
                    target_ms: detail["target_ms"].as_i64(),
                    unit_id: r.col("unit_id"),
                    order_id: r.col("order_id"),
                    alert_event_id: r.col("event_id"),
                    raised_at_ms: r.col("raised_at"),
                    acknowledged_by: r.col("acknowledged_by"),
                    acknowledged_at_ms: r.col("acknowledged_at"),
                    detail,
                })
            })
            .collect();
        open.sort_by_key(|a| (a.severity != Severity::Severe, a.since_ms, a.id));
        Ok(open)
    }

    /// An operator has read every text `unit_id` sent: they stop asking for attention (the
    /// next review resolves it). Returns how many were unread.
    ///
    /// # Errors
    /// [`super::Error::NotFound`] for an unknown unit.
    pub async fn mark_texts_read(&self, unit_id: i64, actor: &Actor) -> Result<usize> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                super::units::ensure_unit(tx, unit_id)?;
                let now = now_ms();
                let read = tx.run(
                    "UPDATE texts SET read_at = ?1, read_by = ?2
                     WHERE unit_id = ?3 AND direction = 'from_unit' AND read_at IS NULL",
                    params![now, actor.operator_id(), unit_id],
                )?;
                let read = usize::try_from(read).unwrap_or(usize::MAX);
                if read > 0 {
                    append_event(
                        tx,
                        now,
                        "texts_read",
                        &actor,
                        EventRefs {
                            unit: Some(unit_id),
                            ..EventRefs::default()
                        },
                        &serde_json::json!({ "texts": read }),
                    )?;
                }
                Ok(read)
            })
            .await
    }
}

/// The open incidents whose last order was declined, expired or cancelled: no order came after
/// it. (Each incident's last order is one index seek; its finished orders are not read.)
fn unreplaced_orders(tx: &mut dyn Statements, holding: &mut Vec<Holding>) -> Result<()> {
    let ended = OrderState::sql_in(
        "o.state",
        &[
            OrderState::Declined,
            OrderState::Expired,
            OrderState::Cancelled,
        ],
    );
    let sql = format!(
        "SELECT i.id, o.id, o.unit_id, u.call_sign, o.state,
                COALESCE(o.ended_at, o.decided_at, o.created_at),
                COALESCE(o.decline_reason, o.end_reason)
         FROM incidents i
         JOIN orders o ON o.id = (SELECT MAX(id) FROM orders WHERE incident_id = i.id)
         JOIN units u ON u.id = o.unit_id
         WHERE i.status != 'closed' AND {ended}"
    );
    for r in tx.select(&sql, &[])? {
        holding.push(Holding {
            incident: Some(r.get(0)?),
            reason: Reason::OrderUnreplaced,
            subject: r.get(1)?,
            unit: Some(r.get(2)?),
            order: Some(r.get(1)?),
            since: r.get(5)?,
            target_ms: None,
            detail: serde_json::json!({
                "call_sign": r.get::<String>(3)?,
                "order_state": r.get::<String>(4)?,
                "why": r.get::<Option<String>>(6)?,
            }),
        });
    }
    Ok(())
}

/// Open incidents that never had an order, past their priority's dispatch target.
fn overdue_dispatches(
    tx: &mut dyn Statements,
    rules: &config::Attention,
    now: Millis,
    holding: &mut Vec<Holding>,
) -> Result<()> {
    let rows = tx.select(
        "SELECT i.id, i.priority, i.created_at FROM incidents i
         WHERE i.status != 'closed'
           AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.incident_id = i.id)",
        &[],
    )?;
    for r in rows {
        let (incident, priority, created): (i64, i64, Millis) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let target = millis(config::Escalation::for_priority(
            &rules.dispatch_target_secs,
            priority,
        ));
        if now - created >= target {
            holding.push(Holding {
                incident: Some(incident),
                reason: Reason::DispatchOverdue,
                subject: 0,
                unit: None,
                order: None,
                since: created,
                target_ms: Some(target),
                detail: serde_json::json!({ "priority": priority }),
            });
        }
    }
    Ok(())
}

/// Units on scene for an accepted order whose officer sent nothing (no status, text or
/// decision) past the welfare-check timer; an acknowledged welfare alert restarts it.
fn welfare_checks(
    tx: &mut dyn Statements,
    rules: &config::Attention,
    now: Millis,
    holding: &mut Vec<Holding>,
) -> Result<()> {
    let target = millis(rules.welfare_check_secs);
    // The officer's last word is an event by the unit's device: a prefix test on the actor,
    // which compares the same on both databases (a range would follow PostgreSQL's collation).
    let sql = format!(
        "SELECT u.id, u.call_sign, o.incident_id, o.id,
                COALESCE(o.decided_at, o.created_at),
                COALESCE((SELECT MAX(e.at) FROM events e WHERE e.unit_id = u.id
                          AND substr(e.actor, 1, 7) = 'device:'), 0),
                COALESCE((SELECT MAX(a.acknowledged_at) FROM attention t
                          JOIN alert_acknowledgements a ON a.event_id = t.event_id
                          WHERE t.reason = '{welfare}' AND t.subject = u.id), 0)
         FROM units u JOIN orders o ON o.unit_id = u.id AND o.state = 'accepted'
         WHERE u.status = 'on_scene'",
        welfare = Reason::WelfareCheck.as_str()
    );
    for r in tx.select(&sql, &[])? {
        let (unit, call_sign, incident, order): (i64, String, i64, i64) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        // The latest of the decision, the officer's last word and the last welfare alert
        // acknowledged.
        let last: Millis = r.get::<Millis>(4)?.max(r.get(5)?).max(r.get(6)?);
        if now - last >= target {
            holding.push(Holding {
                incident: Some(incident),
                reason: Reason::WelfareCheck,
                subject: unit,
                unit: Some(unit),
                order: Some(order),
                since: last,
                target_ms: Some(target),
                detail: serde_json::json!({ "call_sign": call_sign }),
            });
        }
    }
    Ok(())
}

/// Open incidents whose last order was completed and that hold no unit any more.
fn cleared_but_open(tx: &mut dyn Statements, holding: &mut Vec<Holding>) -> Result<()> {
    let sql = format!(
        "SELECT i.id, o.completed_at FROM incidents i
         JOIN orders o ON o.id = (SELECT MAX(id) FROM orders WHERE incident_id = i.id)
         WHERE i.status != 'closed' AND o.state = 'completed'
           AND NOT EXISTS (SELECT 1 FROM orders a
                           WHERE a.incident_id = i.id AND {active})",
        active = OrderState::sql_in("a.state", &OrderState::ACTIVE)
    );
    for r in tx.select(&sql, &[])? {
        let (incident, cleared): (i64, Millis) = (r.get(0)?, r.get(1)?);
        holding.push(Holding {
            incident: Some(incident),
            reason: Reason::AllCleared,
            subject: 0,
            unit: None,
            order: None,
            since: cleared,
            target_ms: None,
            detail: serde_json::json!({}),
        });
    }
    Ok(())
}

/// Texts from units that no operator has read.
fn unread_texts(tx: &mut dyn Statements, holding: &mut Vec<Holding>) -> Result<()> {
    let rows = tx.select(
        "SELECT t.id, t.unit_id, t.incident_id, u.call_sign, t.created_at, t.body
         FROM texts t JOIN units u ON u.id = t.unit_id
         WHERE t.direction = 'from_unit' AND t.read_at IS NULL",
        &[],
    )?;
    for r in rows {
        let body: String = r.get(5)?;
        holding.push(Holding {
            incident: r.get(2)?,
            reason: Reason::UnreadText,
            subject: r.get(0)?,
            unit: Some(r.get(1)?),
            order: None,
            since: r.get(4)?,
            target_ms: None,
            detail: serde_json::json!({
                "call_sign": r.get::<String>(3)?,
                "text_id": r.get::<i64>(0)?,
                "text": body.chars().take(140).collect::<String>(),
            }),
        });
    }
    Ok(())
}

/// An open row of `attention`: its id, incident and alert event.
struct OpenRow {
    id: i64,
    incident: Option<i64>,
    event_id: i64,
}

/// Raises what holds and is not open, resolves what is open and no longer holds.
fn apply(tx: &mut dyn Sql, holding: Vec<Holding>, now: Millis) -> Result<Review> {
    let mut open: HashMap<(i64, String, i64), OpenRow> = HashMap::new();
    let rows = tx.select(
        "SELECT id, incident_id, reason, subject, event_id FROM attention
         WHERE resolved_at IS NULL",
        &[],
    )?;
    for r in rows {
        let incident: Option<i64> = r.get(1)?;
        let key = (incident.unwrap_or(0), r.get::<String>(2)?, r.get::<i64>(3)?);
        let row = OpenRow {
            id: r.get(0)?,
            incident,
            event_id: r.get(4)?,
        };
        open.insert(key, row);
    }
    let mut review = Review::default();
    for h in holding {
        let (incident, reason, subject) = h.key();
        if open
            .remove(&(incident, reason.to_owned(), subject))
            .is_some()
        {
            continue;
        }
        let mut detail = h.detail;
        detail["reason"] = reason.into();
        detail["severity"] = serde_json::to_value(h.reason.severity()).unwrap_or_default();
        detail["since_ms"] = h.since.into();
        if let Some(target) = h.target_ms {
            detail["target_ms"] = target.into();
        }
        append_event(
            tx,
            now,
            "attention_raised",
            &Actor::System,
            EventRefs {
                incident: h.incident,
                unit: h.unit,
                order: h.order,
            },
            &detail,
        )?;
        let event_id = tx.chain_head().map_or(0, |(event, _)| *event);
        tx.run(
            "INSERT INTO attention (incident_id, reason, subject, event_id, raised_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![h.incident, reason, subject, event_id, now],
        )?;
        review.raised += 1;
    }
    for ((_, reason, subject), row) in open {
        let OpenRow {
            id,
            incident,
            event_id,
        } = row;
        tx.run(
            "UPDATE attention SET resolved_at = ?1 WHERE id = ?2",
            params![now, id],
        )?;
        append_event(
            tx,
            now,
            "attention_resolved",
            &Actor::System,
            EventRefs {
                incident,
                ..EventRefs::default()
            },
            &serde_json::json!({ "reason": reason, "subject": subject, "alert_event_id": event_id }),
        )?;
        review.resolved += 1;
    }
    Ok(review)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::testing::{enrolled_unit, order_for};
    use crate::store::{Error, Withdrawal};

    /// The review's question "does any order still hold a unit?" and the escalation sweep are
    /// answered from partial indexes, which SQLite uses only when a query repeats the index's
    /// condition: the migrated indexes hold exactly `OrderState::sql_in` of their state sets.
    /// And no condition that runs on every write of an order, unit or incident is an `IN`
    /// list (SQLite would build a temporary b-tree for it on each write).
    #[tokio::test]
    async fn the_partial_indexes_have_exactly_the_state_sets_and_no_write_runs_an_in_list() {
        let (_dir, store) = crate::service::testing::temporary_store().await;
        let schema: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master
             WHERE tbl_name IN ('orders', 'units', 'incidents') AND sql IS NOT NULL",
        )
        .fetch_all(store.reader.pool())
        .await
        .unwrap();
        let sql_of = |name: &str| {
            let sql = &schema.iter().find(|(n, _)| n == name).unwrap().1;
            sql.split_whitespace().collect::<Vec<_>>().join(" ")
        };
        for (index, states) in [
            ("orders_active_by_incident", &OrderState::ACTIVE[..]),
            ("orders_waiting", &OrderState::UNDECIDED[..]),
        ] {
            let condition = format!("WHERE {}", OrderState::sql_in("state", states));
            assert!(sql_of(index).ends_with(&condition), "{index}: {condition}");
        }
        let every_state = OrderState::sql_in("state", &OrderState::ALL);
        assert!(sql_of("orders").contains(&format!("CHECK {every_state}")));
        for (name, sql) in &schema {
            assert!(!sql.contains(" IN ("), "{name} evaluates an IN list: {sql}");
        }
    }

    /// A cancelled order with no replacement is raised once however often the review runs,
    /// and resolved by the next order for the incident.
    #[tokio::test]
    async fn an_unreplaced_order_is_raised_once_and_resolved_by_a_new_order() {
        let dir = tempfile::tempdir().unwrap();
        let (dispatch, unit, _) = enrolled_unit(dir.path(), "t").await;
        let store = &dispatch.store;
        let rules = config::Attention::default();
        assert_eq!(
            store.review_attention(&rules).await.unwrap(),
            Review::default()
        );
        let order = order_for(store, unit.id).await;
        store
            .withdraw_order(order.id, Withdrawal::Cancel, "wrong unit", &Actor::System)
            .await
            .unwrap();
        let raised = Review {
            raised: 1,
            resolved: 0,
        };
        assert_eq!(store.review_attention(&rules).await.unwrap(), raised);
        assert_eq!(
            store.review_attention(&rules).await.unwrap(),
            Review::default()
        );
        let open = store.open_attention().await.unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].reason, Reason::OrderUnreplaced);
        assert_eq!(open[0].incident_id, Some(order.incident_id));
        assert_eq!(open[0].order_id, Some(order.id));
        assert_eq!(open[0].detail["why"], "wrong unit");
        assert!(store
            .open_alerts(10)
            .await
            .unwrap()
            .iter()
            .any(|a| a.event_id == open[0].alert_event_id));

        store
            .create_order(order.incident_id, unit.id, &Actor::System, None)
            .await
            .unwrap();
        let resolved = Review {
            raised: 0,
            resolved: 1,
        };
        assert_eq!(store.review_attention(&rules).await.unwrap(), resolved);
        assert!(store.open_attention().await.unwrap().is_empty());
        assert!(store.open_alerts(10).await.unwrap().is_empty());
        let err = store.mark_texts_read(99, &Actor::System).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
    }
}
