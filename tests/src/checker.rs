//! The exactly-once checker: compares the orders the server committed (read from its database,
//! SQLite or PostgreSQL: [`Database`]) with the orders that reached each device's application layer, counting lost,
//! duplicated and ok orders, and checks that every order's timeline matches its state (each
//! state change recorded once, in order; each escalation stage at most once).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dispatch_server::store::sql::Dialect;
use sqlx::Row;

/// Where a test server keeps its data, to read it behind the server's back.
#[derive(Debug, Clone)]
pub enum Database {
    /// The SQLite file.
    Sqlite(PathBuf),
    /// The PostgreSQL database's URL.
    Postgres(String),
}

impl Database {
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Every row of `sql`, each column's value as text (`None` for NULL): the query must
    /// select text (`CAST(… AS TEXT)`).
    ///
    /// # Panics
    /// When the database cannot be read.
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        match self {
            Self::Sqlite(path) => {
                use sqlx::ConnectOptions;
                let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true)
                    .connect()
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                sqlx::query(sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .iter()
                    .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                    .collect()
            }
            Self::Postgres(url) => {
                let (url, sql) = (url.clone(), sql.to_owned());
                tokio::task::spawn_blocking(move || {
                    let mut client = postgres::Client::connect(&url, postgres::NoTls)
                        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
                    client
                        .query(&sql, &[])
                        .unwrap_or_else(|e| panic!("{sql}: {e}"))
                        .iter()
                        .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                        .collect()
                })
                .await
                .unwrap()
            }
        }
    }
}

/// A column read as text, as an integer.
fn int(value: Option<&String>) -> Option<i64> {
    value.map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{v:?} is not an integer: {e}"))
    })
}

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
    /// `detail.stage` of an `order_escalated` event.
    pub stage: Option<String>,
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

/// Every way the timeline disagrees with the orders' final states, and escalations repeated at
/// one stage; empty when consistent. Other event kinds (unit statuses, texts) are not judged.
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
    problems.extend(repeated_escalations(events));
    for order in by_order.keys() {
        problems.push(format!("events name order {order}, which does not exist"));
    }
    problems
}

/// An order escalates at most once per stage, however often the sweep runs or the server
/// restarts.
fn repeated_escalations(events: &[OrderEvent]) -> Vec<String> {
    let mut stages: BTreeMap<(i64, &str), usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.kind == "order_escalated") {
        *stages
            .entry((e.order_id, e.stage.as_deref().unwrap_or("")))
            .or_default() += 1;
    }
    stages
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((order, stage), n)| format!("order {order} escalated {n} times at stage {stage:?}"))
        .collect()
}

/// Every order in the database, by id.
///
/// # Panics
/// When the database cannot be read.
pub async fn committed_orders(db: &Database) -> Vec<CommittedOrder> {
    db.rows(
        "SELECT CAST(id AS TEXT), CAST(incident_id AS TEXT), CAST(unit_id AS TEXT),
                CAST(device_id AS TEXT), state, CAST(delivered_at AS TEXT)
         FROM orders ORDER BY id",
    )
    .await
    .iter()
    .map(|r| CommittedOrder {
        id: int(r[0].as_ref()).unwrap(),
        incident_id: int(r[1].as_ref()).unwrap(),
        unit_id: int(r[2].as_ref()).unwrap(),
        device_id: int(r[3].as_ref()).unwrap(),
        state: r[4].clone().unwrap(),
        delivered_at: int(r[5].as_ref()),
    })
    .collect()
}

/// Every timeline event that names an order, by id.
///
/// # Panics
/// When the database cannot be read.
pub async fn order_events(db: &Database) -> Vec<OrderEvent> {
    let sql = format!(
        "SELECT CAST(id AS TEXT), CAST(order_id AS TEXT), CAST(incident_id AS TEXT), kind, {}
         FROM events WHERE order_id IS NOT NULL ORDER BY id",
        db.dialect().json_text("detail", "stage")
    );
    db.rows(&sql)
        .await
        .iter()
        .map(|r| OrderEvent {
            id: int(r[0].as_ref()).unwrap(),
            order_id: int(r[1].as_ref()).unwrap(),
            incident_id: int(r[2].as_ref()),
            kind: r[3].clone().unwrap(),
            stage: r[4].clone(),
        })
        .collect()
}

/// Reads the database at `db` and checks it against `seen`: the exactly-once report and the
/// timeline's problems.
pub async fn check(db: &Database, seen: &BTreeMap<i64, Vec<i64>>) -> (Report, Vec<String>) {
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
                stage: None,
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
        let mut twice = events(1, &["order_queued", "order_escalated", "order_escalated"]);
        twice[1].stage = Some("no_receipt".into());
        twice[2].stage = Some("no_acknowledgement".into());
        assert_eq!(
            timeline_problems(&[order(1, 7, "queued")], &twice),
            Vec::<String>::new()
        );
        twice[2].stage = Some("no_receipt".into());
        assert_eq!(
            timeline_problems(&[order(1, 7, "queued")], &twice),
            ["order 1 escalated 2 times at stage \"no_receipt\""]
        );
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
