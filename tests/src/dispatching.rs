//! A dispatcher that keeps creating orders while a failover test takes the database away, the
//! tablets that receive those orders, and the ledger of both: shared by the failover tests on a
//! primary and its standby promoted by the test (`postgres_failover`) and by Patroni
//! (`patroni_failover`), which check the same thing, that every order answered 201 reaches its
//! tablet exactly once. [`TwoNodes`] puts them together on two `dispatchd` nodes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use field_client::Event;
use reqwest::StatusCode;
use tokio::task::JoinHandle;

use crate::{spawn_cluster_on, within, Operator, TestApp};

/// Waits (at most [`crate::PATIENCE`]) until `done` holds, checking every 10 ms.
///
/// # Panics
/// On timeout, naming `what`.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A POST's status, its `Retry-After` and body.
///
/// # Panics
/// When the node does not answer.
pub async fn post(
    operator: &Operator,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let response = operator
        .http
        .post(format!("{}{path}", operator.base))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("the node answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

/// Orders answered 201 (unit, order, when), orders the tablets reported (unit, order), and the
/// refusals seen.
#[derive(Default)]
pub struct Ledger {
    pub confirmed: Mutex<Vec<(i64, i64, Instant)>>,
    pub seen: Mutex<Vec<(i64, i64)>>,
    pub unavailable: AtomicUsize,
}

impl Ledger {
    /// How many orders were answered 201 so far.
    pub fn confirmed_count(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }

    /// How many requests were refused so far.
    pub fn refusals(&self) -> usize {
        self.unavailable.load(Ordering::Relaxed)
    }

    fn seen_by(&self, unit: i64, order: i64) -> bool {
        self.seen.lock().unwrap().contains(&(unit, order))
    }

    /// Answered 503 `storage_unavailable` with `Retry-After`, as every refusal must be.
    fn refused(
        &self,
        (status, retry_after, body): &(StatusCode, Option<String>, serde_json::Value),
    ) {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
        assert!(retry_after.is_some(), "503 without Retry-After: {body}");
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until every order answered 201 has been reported by its tablet, checks that none
    /// was reported twice, and returns the orders answered 201.
    ///
    /// # Panics
    /// When an order is not reported in time, or is reported twice.
    pub async fn delivered_exactly_once(&self) -> Vec<(i64, i64, Instant)> {
        let confirmed = self.confirmed.lock().unwrap().clone();
        until("every confirmed order to be reported", || {
            let seen = self.seen.lock().unwrap();
            confirmed
                .iter()
                .all(|(unit, order, _)| seen.contains(&(*unit, *order)))
        })
        .await;
        let seen = self.seen.lock().unwrap().clone();
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "an order was reported twice");
        confirmed
    }

    /// How long after `lost_at` the first order was answered 201.
    ///
    /// # Panics
    /// When no order was answered 201 after it.
    pub fn first_confirmed_after(&self, lost_at: Instant) -> Duration {
        self.confirmed
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, at)| *at)
            .filter(|at| *at > lost_at)
            .min()
            .expect("an order answered 201 after the loss")
            - lost_at
    }
}

/// Creates `count` units on `operator`'s node (whose certificate has `fingerprint`), each with
/// an enrolled tablet whose orders are written into `ledger`. Returns the units and the tasks
/// that watch the tablets (to abort at the end).
pub async fn tablets(
    operator: &Operator,
    fingerprint: &str,
    count: usize,
    ledger: &Arc<Ledger>,
) -> (Vec<i64>, Vec<JoinHandle<()>>) {
    let mut units = Vec::new();
    let mut watchers = Vec::new();
    for n in 0..count {
        let mut device = operator
            .unit_with_device(fingerprint, &format!("P-{n}"), &["patrol"])
            .await;
        let (unit, ledger) = (device.unit_id, ledger.clone());
        watchers.push(tokio::spawn(async move {
            while let Some(event) = device.events.recv().await {
                if let Event::Order(order) = event {
                    ledger
                        .seen
                        .lock()
                        .unwrap()
                        .push((unit, order.order.order_id));
                }
            }
        }));
        units.push(unit);
    }
    (units, watchers)
}

/// Until `stop`: for each unit in turn, an incident and an order on `operator`'s node, then,
/// once the tablet has it, its cancellation. A refused request is sent again with the same
/// idempotency key, as the console does: a 503 may leave the outcome unknown (the connection
/// was lost during COMMIT), and the key makes the retry apply it once. (A cancellation takes no
/// key: its retry after a COMMIT that did go through finds the order cancelled.)
pub async fn dispatcher(
    operator: Operator,
    units: Vec<i64>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut requests = 0;
    let mut retried = |path: String, body: serde_json::Value| {
        let (operator, ledger) = (operator.clone(), ledger.clone());
        requests += 1;
        let key = format!("failover-{requests}");
        async move {
            let mut refused = false;
            loop {
                let answer = post(&operator, &path, &key, body.clone()).await;
                let done_before = refused
                    && answer.0 == StatusCode::CONFLICT
                    && answer.2["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("is cancelled"));
                if answer.0.is_success() || done_before {
                    return answer.2;
                }
                ledger.refused(&answer);
                refused = true;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        for &unit in &units {
            let incident = retried(
                "/api/incidents".into(),
                serde_json::json!({ "kind": "burglary", "priority": 1, "lat": 60.17, "lon": 24.94 }),
            )
            .await;
            let path = format!("/api/incidents/{}/assignments", incident["id"]);
            let order = retried(path, serde_json::json!({ "unit_id": unit })).await;
            let order = order["id"].as_i64().unwrap();
            ledger
                .confirmed
                .lock()
                .unwrap()
                .push((unit, order, Instant::now()));
            until("the tablet to report the order", || {
                ledger.seen_by(unit, order)
            })
            .await;
            retried(
                format!("/api/orders/{order}/cancel"),
                serde_json::json!({ "reason": "next round" }),
            )
            .await;
        }
    }
}

/// Two `dispatchd` nodes on the database at `url` (which names the primary and its standby),
/// four tablets on node B and a [`dispatcher`] on node A: what the failover tests run while they
/// take the primary away.
pub struct TwoNodes {
    pub a: TestApp,
    pub b: TestApp,
    /// An admin logged in on node B.
    pub on_b: Operator,
    pub ledger: Arc<Ledger>,
    watchers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    dispatching: JoinHandle<()>,
}

impl TwoNodes {
    /// Starts the nodes, the tablets and the dispatcher.
    ///
    /// # Panics
    /// When a node cannot start or a tablet cannot enrol.
    pub async fn start(url: &str) -> Self {
        let (a, b) = spawn_cluster_on(url).await;
        let (on_a, on_b) = (a.admin().await, b.admin().await);
        let ledger = Arc::new(Ledger::default());
        let (units, watchers) = tablets(&on_b, &b.fingerprint, 4, &ledger).await;
        let stop = Arc::new(AtomicBool::new(false));
        let dispatching = tokio::spawn(dispatcher(on_a, units, ledger.clone(), stop.clone()));
        Self {
            a,
            b,
            on_b,
            ledger,
            watchers,
            stop,
            dispatching,
        }
    }

    /// Stops the dispatcher; returns the orders answered 201 once every one of them reached
    /// its tablet exactly once ([`Ledger::delivered_exactly_once`]).
    ///
    /// # Panics
    /// When an order answered 201 is lost or reported twice.
    pub async fn stop_dispatching(&mut self) -> Vec<(i64, i64, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        (&mut self.dispatching).await.unwrap();
        self.ledger.delivered_exactly_once().await
    }

    /// Stops the tablets and both nodes.
    ///
    /// # Panics
    /// When a node ended with an error.
    pub async fn stop(self) {
        for watcher in self.watchers {
            watcher.abort();
        }
        self.a.stop().await;
        self.b.stop().await;
    }
}
