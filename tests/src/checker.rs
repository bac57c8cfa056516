//! The exactly-once checker: compares the orders the server committed (read from its SQLite
//! file) with the orders that reached each device's application layer, counting lost,
//! duplicated and ok orders, and checks that every order's timeline matches its state.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sqlx::Row;

/// An order as the server's database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOrder {
    pub id: i64,
    pub incident_id: i64,
    pub unit_id: i64,
    pub device_id: i64,
    pub state: String,
    pub delivered_at: Option<i64>,
}

/// One timeline event about an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub id: i64,
    pub order_id: i64,
    pub incident_id: Option<i64>,
    pub kind: String,
}

/// What reached the application layer of each device: order ids per device id, in arrival
/// order, every arrival counted. Cheap to clone; clones share the record.
#[derive(Debug, Clone, Default)]
pub struct AppLayer {
    seen: Arc<Mutex<BTreeMap<i64, Vec<i64>>>>,
}

impl AppLayer {
    /// Records that `order_id` reached the application of `device_id`.
    pub fn record(&self, device_id: i64, order_id: i64) {
        self.lock().entry(device_id).or_default().push(order_id);
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> BTreeMap<i64, Vec<i64>> {
        self.lock().clone()
    }

    /// How many arrivals were recorded in all.
    pub fn arrivals(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, Vec<i64>>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The comparison of server records with device inboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Committed orders that reached their device exactly once.
    pub ok: usize,
    /// Committed orders that never reached their device.
    pub lost: Vec<i64>,
    /// Committed orders that reached their device more than once, with the count.
    pub duplicated: Vec<(i64, usize)>,
    /// Orders that reached a device they were not for: (order, device).
    pub misrouted: Vec<(i64, i64)>,
    /// Orders a device received that the server has no record of.
    pub phantom: Vec<i64>,
}

impl Report {
    /// No order lost, duplicated, misrouted or invented.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.misrouted.is_empty()
            && self.phantom.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lost {}, duplicated {}, ok {}",
            self.lost.len(),
            self.duplicated.len(),
            self.ok
        )?;
        if !self.misrouted.is_empty() {
            write!(f, ", misrouted {}", self.misrouted.len())?;
        }
        if !self.phantom.is_empty() {
            write!(f, ", phantom {}", self.phantom.len())?;
        }
        if !self.is_clean() {
            write!(
                f,
                " (lost {:?}, duplicated {:?}, misrouted {:?}, phantom {:?})",
                self.lost, self.duplicated, self.misrouted, self.phantom
            )?;
        }
        Ok(())
    }
}

/// Compares committed orders with what each device's application saw.
pub fn compare(committed: &[CommittedOrder], seen: &BTreeMap<i64, Vec<i64>>) -> Report {
    let mut report = Report::default();
    let by_id: BTreeMap<i64, &CommittedOrder> = committed.iter().map(|o| (o.id, o)).collect();
    for (device, orders) in seen {
        for order in orders {
            match by_id.get(order) {
                None => report.phantom.push(*order),
                Some(o) if o.device_id != *device => report.misrouted.push((*order, *device)),
                Some(_) => {}
            }
        }
    }
    for order in committed {
        let arrivals = seen
            .get(&order.device_id)
            .map_or(0, |ids| ids.iter().filter(|id| **id == order.id).count());
        match arrivals {
            0 => report.lost.push(order.id),
            1 => report.ok += 1,
            n => report.duplicated.push((order.id, n)),
        }
    }
    report
}

/// Steps an undecided order may have skipped: a later step implies the earlier ones, so an
/// order displayed or decided before its receipt arrived has no event for the receipt.
const SKIPPABLE: &[&str] = &["order_delivered", "order_displayed", "order_acknowledged"];

/// The state-change events an order in `state` must have and may have (each at most once);
/// any other state-change event is wrong.
fn expected_events(state: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    const NONE: &[&str] = &[];
    Some(match state {
        "queued" => (&["order_queued"], NONE),
        "delivered" => (&["order_queued", "order_delivered"], NONE),
        "displayed" => (&["order_queued", "order_displayed"], &SKIPPABLE[..1]),
        "acknowledged" => (&["order_queued", "order_acknowledged"], &SKIPPABLE[..2]),
        "accepted" => (&["order_queued", "order_accepted"], SKIPPABLE),
        "declined" => (&["order_queued", "order_declined"], SKIPPABLE),
        "completed" => (
            &["order_queued", "order_accepted", "order_completed"],
            SKIPPABLE,
        ),
        "cancelled" => (
            &["order_queued", "order_cancelled"],
            &[
                "order_delivered",
                "order_displayed",
                "order_acknowledged",
                "order_accepted",
            ],
        ),
        "expired" => (&["order_queued", "order_expired"], SKIPPABLE),
        _ => return None,
    })
}

/// State-change event kinds, in the order the state machine allows them (a decision, then
/// completion or an end).
const STATE_EVENTS: [&str; 9] = [
    "order_queued",
    "order_delivered",
    "order_displayed",
    "order_acknowledged",
    "order_accepted",
    "order_declined",
    "order_completed",
    "order_cancelled",
    "order_expired",
];

/// Every way the timeline disagrees with the orders' final states; empty when consistent.
/// Other event kinds (escalations, unit statuses) are not judged here.
pub fn timeline_problems(orders: &[CommittedOrder], events: &[OrderEvent]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut by_order: BTreeMap<i64, Vec<&OrderEvent>> = BTreeMap::new();
    for e in events {
        by_order.entry(e.order_id).or_default().push(e);
    }
    for order in orders {
        let mut mine = by_order.remove(&order.id).unwrap_or_default();
        mine.sort_by_key(|e| e.id);
        let state_events: Vec<&str> = mine
            .iter()
            .map(|e| e.kind.as_str())
            .filter(|k| STATE_EVENTS.contains(k))
            .collect();
        let Some((required, optional)) = expected_events(&order.state) else {
            problems.push(format!(
                "order {} has unknown state {}",
                order.id, order.state
            ));
            continue;
        };
        for kind in STATE_EVENTS {
            let count = state_events.iter().filter(|k| **k == kind).count();
            let want = usize::from(required.contains(&kind));
            if count > 1 {
                problems.push(format!("order {} has {count} {kind} events", order.id));
            } else if count != want && !(optional.contains(&kind) && count == 1) {
                problems.push(format!(
                    "order {} is {} but has {count} {kind} events",
                    order.id, order.state
                ));
            }
        }
        if state_events.first() != Some(&"order_queued") {
            problems.push(format!(
                "order {}: order_queued is not its first event ({state_events:?})",
                order.id
            ));
        }
        let mut last = 0;
        for kind in &state_events {
            let rank = STATE_EVENTS.iter().position(|k| k == kind).unwrap_or(0);
            if rank < last {
                problems.push(format!(
                    "order {}: events out of order {state_events:?}",
                    order.id
                ));
                break;
            }
            last = rank;
        }
        if let Some(e) = mine
            .iter()
            .find(|e| e.incident_id.is_some_and(|i| i != order.incident_id))
        {
            problems.push(format!(
                "order {}: event {} names incident {:?}, not {}",
                order.id, e.id, e.incident_id, order.incident_id
            ));
        }
        let received = !matches!(order.state.as_str(), "queued" | "cancelled" | "expired");
        if received && order.delivered_at.is_none() {
            problems.push(format!(
                "order {} is {} without delivered_at",
                order.id, order.state
            ));
        }
        if order.state == "queued" && order.delivered_at.is_some() {
            problems.push(format!("order {} is queued with delivered_at", order.id));
        }
    }
    for order in by_order.keys() {
        problems.push(format!("events name order {order}, which does not exist"));
    }
    problems
}

async fn read_only(db: &Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", db.display()))
}

/// Every order in the database at `db`, by id.
///
/// # Panics
/// When the database cannot be read.
pub async fn committed_orders(db: &Path) -> Vec<CommittedOrder> {
    let mut conn = read_only(db).await;
    sqlx::query(
        "SELECT id, incident_id, unit_id, device_id, state, delivered_at FROM orders ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| CommittedOrder {
        id: r.get("id"),
        incident_id: r.get("incident_id"),
        unit_id: r.get("unit_id"),
        device_id: r.get("device_id"),
        state: r.get("state"),
        delivered_at: r.get("delivered_at"),
    })
    .collect()
}

/// Every timeline event that names an order, by id.
///
/// # Panics
/// When the database cannot be read.
pub async fn order_events(db: &Path) -> Vec<OrderEvent> {
    let mut conn = read_only(db).await;
    sqlx::query(
        "SELECT id, order_id, incident_id, kind FROM events WHERE order_id IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| OrderEvent {
        id: r.get("id"),
        order_id: r.get("order_id"),
        incident_id: r.get("incident_id"),
        kind: r.get("kind"),
    })
    .collect()
}

/// Reads the database at `db` and checks it against `seen`: the exactly-once report and the
/// timeline's problems.
pub async fn check(db: &Path, seen: &BTreeMap<i64, Vec<i64>>) -> (Report, Vec<String>) {
    let orders = committed_orders(db).await;
    let events = order_events(db).await;
    (compare(&orders, seen), timeline_problems(&orders, &events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: i64, device_id: i64, state: &str) -> CommittedOrder {
        CommittedOrder {
            id,
            incident_id: id * 10,
            unit_id: device_id,
            device_id,
            state: state.into(),
            delivered_at: (state != "queued").then_some(1),
        }
    }

    fn events(order_id: i64, kinds: &[&str]) -> Vec<OrderEvent> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, k)| OrderEvent {
                id: order_id * 100 + i64::try_from(i).unwrap(),
                order_id,
                incident_id: Some(order_id * 10),
                kind: (*k).into(),
            })
            .collect()
    }

    #[test]
    fn counts_lost_duplicated_misrouted_and_phantom_orders() {
        let committed = [
            order(1, 7, "delivered"),
            order(2, 7, "queued"),
            order(3, 8, "delivered"),
            order(4, 8, "delivered"),
        ];
        let seen = BTreeMap::from([(7, vec![1, 3, 99]), (8, vec![4, 4, 4])]);
        let report = compare(&committed, &seen);
        assert_eq!(report.ok, 1);
        assert_eq!(report.lost, [2, 3]);
        assert_eq!(report.duplicated, [(4, 3)]);
        assert_eq!(report.misrouted, [(3, 7)]);
        assert_eq!(report.phantom, [99]);
        assert!(!report.is_clean());
        assert!(report.to_string().starts_with("lost 2, duplicated 1, ok 1"));

        let seen = BTreeMap::from([(7, vec![1, 2]), (8, vec![3, 4])]);
        let report = compare(&committed, &seen);
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.to_string(), "lost 0, duplicated 0, ok 4");
    }

    #[test]
    fn a_consistent_timeline_has_no_problems() {
        let orders = [
            order(1, 7, "completed"),
            order(2, 7, "accepted"),
            order(3, 7, "queued"),
            order(4, 7, "declined"),
        ];
        let mut all = events(
            1,
            &[
                "order_queued",
                "order_delivered",
                "order_accepted",
                "unit_en_route",
                "order_completed",
            ],
        );
        // Accepted before the receipt arrived: no order_delivered event.
        all.extend(events(
            2,
            &["order_queued", "order_escalated", "order_accepted"],
        ));
        all.extend(events(3, &["order_queued"]));
        // Displayed, acknowledged, cancelled and expired orders, some having skipped steps.
        let more = [
            (5, "displayed", &["order_queued", "order_displayed"][..]),
            (
                6,
                "acknowledged",
                &["order_queued", "order_delivered", "order_acknowledged"],
            ),
            (
                7,
                "cancelled",
                &["order_queued", "order_accepted", "order_cancelled"],
            ),
            (
                8,
                "expired",
                &["order_queued", "order_displayed", "order_expired"],
            ),
        ];
        let mut orders = orders.to_vec();
        for (id, state, kinds) in more {
            orders.push(order(id, 7, state));
            all.extend(events(id, kinds));
        }
        all.extend(events(
            4,
            &["order_queued", "order_delivered", "order_declined"],
        ));
        assert_eq!(timeline_problems(&orders, &all), Vec::<String>::new());
    }

    #[test]
    fn inconsistent_timelines_are_reported() {
        let cases: [(&str, &[&str], &str); 9] = [
            (
                "displayed",
                &["order_queued", "order_displayed", "order_acknowledged"],
                "1 order_acknowledged",
            ),
            (
                "expired",
                &["order_queued", "order_accepted", "order_expired"],
                "1 order_accepted",
            ),
            ("delivered", &["order_queued"], "0 order_delivered"),
            ("queued", &[], "0 order_queued"),
            (
                "accepted",
                &["order_queued", "order_accepted", "order_accepted"],
                "2 order_accepted",
            ),
            (
                "queued",
                &["order_queued", "order_delivered"],
                "1 order_delivered",
            ),
            (
                "completed",
                &["order_queued", "order_completed"],
                "0 order_accepted",
            ),
            (
                "accepted",
                &["order_accepted", "order_queued"],
                "not its first",
            ),
            (
                "declined",
                &["order_queued", "order_declined", "order_delivered"],
                "out of order",
            ),
        ];
        for (state, kinds, word) in cases {
            let problems = timeline_problems(&[order(1, 7, state)], &events(1, kinds));
            assert!(
                problems.iter().any(|p| p.contains(word)),
                "{state} {kinds:?}: {problems:?} should mention {word:?}"
            );
        }
        let stray = timeline_problems(&[], &events(5, &["order_queued"]));
        assert_eq!(stray, ["events name order 5, which does not exist"]);
        let mut undelivered = order(1, 7, "accepted");
        undelivered.delivered_at = None;
        let problems = timeline_problems(
            &[undelivered],
            &events(1, &["order_queued", "order_accepted"]),
        );
        assert_eq!(problems, ["order 1 is accepted without delivered_at"]);
    }
}
