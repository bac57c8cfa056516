//! Losing a `dispatchd` node (issue 13, item 4a): two `dispatchd` processes on one PostgreSQL
//! database, sharing one certificate, each naming both addresses (`server_urls`). Fifty
//! tablets (the reference client) connect, half to each node; a dispatcher on each node keeps
//! assigning units and cancelling each order once its tablet has it. Node A is killed with
//! SIGKILL: its tablets move to node B by themselves, B's dispatcher goes on for every unit, and
//! every order answered 201 (by either node, before or after the kill) reaches its tablet
//! exactly once. Skipped, saying so, when `DATABASE_URL` is unset (`make test` sets it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_tests::backend::TestDatabase;
use dispatch_tests::{free_addr, quick_reconnect, within, Device, Operator, ServerProcess};
use field_client::{Event, Trust};
use reqwest::StatusCode;
use serde_json::json;

const TABLETS: usize = 50;

/// Orders answered 201, and orders each tablet reported (once per report).
#[derive(Default)]
struct Ledger {
    confirmed: Mutex<BTreeMap<i64, i64>>,
    seen: Mutex<Vec<(i64, i64)>>,
}

impl Ledger {
    fn seen_by(&self, unit: i64, order: i64) -> bool {
        self.seen.lock().unwrap().contains(&(unit, order))
    }
}

fn write_config(dir: &Path, url: &str, servers: &[String]) -> std::path::PathBuf {
    let path = dir.join("dispatchd.toml");
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    std::fs::write(
        &path,
        format!(
            "server_urls = [{}]\n\n[store]\nbackend = \"postgres\"\npostgres_url = {url:?}\n",
            servers.join(", ")
        ),
    )
    .unwrap();
    path
}

/// A POST's status and body; `None` when the node did not answer.
async fn try_post(
    operator: &Operator,
    path: &str,
    body: serde_json::Value,
) -> Option<(StatusCode, serde_json::Value)> {
    let response = operator
        .http
        .post(format!("{}{path}", operator.base))
        .json(&body)
        .send()
        .await
        .ok()?;
    let status = response.status();
    Some((status, response.json().await.ok()?))
}

/// Assigns `unit` to a new incident through `operator`; the order's id once answered 201,
/// `None` when the node did not answer.
async fn assign(operator: &Operator, unit: i64) -> Option<i64> {
    let (status, incident) = try_post(
        operator,
        "/api/incidents",
        json!({ "kind": "burglary", "priority": 1, "lat": 60.17, "lon": 24.94 }),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let incident = incident["id"].as_i64()?;
    let (status, order) = try_post(
        operator,
        &format!("/api/incidents/{incident}/assignments"),
        json!({ "unit_id": unit }),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_i64()
}

/// Until `stop`, for each of `units` in turn: assign it, wait until its tablet has the order,
/// cancel it. Ends when the node stops answering.
async fn dispatcher(
    operator: Operator,
    units: Vec<i64>,
    ledger: Arc<Ledger>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    'rounds: while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        for &unit in &units {
            let Some(order) = assign(&operator, unit).await else {
                break 'rounds;
            };
            ledger.confirmed.lock().unwrap().insert(order, unit);
            within("the tablet to report the order", async {
                while !ledger.seen_by(unit, order) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            match try_post(
                &operator,
                &format!("/api/orders/{order}/cancel"),
                json!({ "reason": "next round" }),
            )
            .await
            {
                Some((status, body)) => assert_eq!(status, StatusCode::OK, "{body}"),
                None => break 'rounds,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_tablets_carry_on_through_the_other() {
    let Some(database) = TestDatabase::on_database_url().await else {
        eprintln!("DATABASE_URL is unset: the cluster tests need PostgreSQL; skipped");
        return;
    };
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let servers = [format!("https://{addr_a}"), format!("https://{addr_b}")];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config_a = write_config(dir_a.path(), &database.url(), &servers);
    let config_b = write_config(dir_b.path(), &database.url(), &servers);
    let (data_a, data_b) = (dir_a.path().join("data"), dir_b.path().join("data"));
    let node_a = ServerProcess::start_configured(&data_a, addr_a, &config_a)
        .await
        .unwrap();
    // One certificate for the service: the tablets pin it whichever node they reach.
    std::fs::create_dir_all(data_b.join("tls")).unwrap();
    for file in std::fs::read_dir(data_a.join("tls")).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), data_b.join("tls").join(file.file_name())).unwrap();
    }
    let node_b = ServerProcess::start_configured(&data_b, addr_b, &config_b)
        .await
        .unwrap();
    let fingerprint = node_a.fingerprint();
    assert_eq!(node_b.fingerprint(), fingerprint);
    let on_a = Operator::login(&node_a.base, "admin", dispatch_tests::ADMIN_PASSWORD)
        .await
        .unwrap();
    let on_b = Operator::login(&node_b.base, "admin", dispatch_tests::ADMIN_PASSWORD)
        .await
        .unwrap();

    // Tablets 0–9 enrolled at A, 10–19 at B; each knows the other address too.
    let ledger = Arc::new(Ledger::default());
    let trust = Trust::pin(&fingerprint).unwrap();
    let mut units = Vec::new();
    let mut watchers = Vec::new();
    let (connected_tx, mut connected) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..TABLETS {
        let unit = on_a.create_unit(&format!("F-{n}"), &["patrol"]).await;
        let code = on_a.enrolment_code(unit).await;
        let home = if n < TABLETS / 2 { &node_a } else { &node_b };
        let credential = field_client::enroll(&home.base, &trust, &code, None)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        credential.save(dir.path()).unwrap();
        let mut device = Device::start_with(dir, quick_reconnect).await;
        let (ledger, connected_tx) = (ledger.clone(), connected_tx.clone());
        watchers.push(tokio::spawn(async move {
            while let Some(event) = device.events.recv().await {
                match event {
                    Event::Order(order) => ledger
                        .seen
                        .lock()
                        .unwrap()
                        .push((unit, order.order.order_id)),
                    Event::Connected(_) => {
                        let _ = connected_tx.send((unit, Instant::now()));
                    }
                    _ => {}
                }
            }
        }));
        units.push(unit);
    }
    let mut first_connected = BTreeSet::new();
    within("every tablet to connect", async {
        while first_connected.len() < TABLETS {
            first_connected.insert(connected.recv().await.unwrap().0);
        }
    })
    .await;

    // Dispatchers on both nodes, each for half the units, across the halves' homes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (evens, odds): (Vec<i64>, Vec<i64>) = units.iter().partition(|u| *u % 2 == 0);
    let from_a = tokio::spawn(dispatcher(
        on_a.clone(),
        evens.clone(),
        ledger.clone(),
        stop.clone(),
    ));
    let from_b = tokio::spawn(dispatcher(on_b.clone(), odds, ledger.clone(), stop.clone()));
    within("orders from both nodes", async {
        while ledger.confirmed.lock().unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let killed = Instant::now();
    node_a.kill9().await;
    from_a.await.unwrap();
    // A's tablets reconnect to B.
    let moved_units: BTreeSet<i64> = units[..TABLETS / 2].iter().copied().collect();
    let mut moved = BTreeSet::new();
    within("A's tablets to reconnect through B", async {
        while moved.len() < moved_units.len() {
            let (unit, at) = connected.recv().await.unwrap();
            if moved_units.contains(&unit) && at > killed {
                moved.insert(unit);
            }
        }
    })
    .await;
    let reconnected = killed.elapsed();

    // B takes over A's units: every open order of theirs (answered 201 or not: it is
    // committed) reaches its tablet, and is cancelled through B; then B assigns them anew.
    let open = database
        .query_texts(vec![
            "SELECT COALESCE(string_agg(id::text || ':' || unit_id::text, ','), '') FROM orders
             WHERE state IN ('queued', 'delivered', 'displayed', 'acknowledged', 'accepted')"
                .into(),
        ])
        .await;
    for pair in open[0].split(',').filter(|p| !p.is_empty()) {
        let (order, unit) = pair.split_once(':').unwrap();
        let (order, unit): (i64, i64) = (order.parse().unwrap(), unit.parse().unwrap());
        within("an open order to reach its tablet", async {
            while !ledger.seen_by(unit, order) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if evens.contains(&unit) {
            let (status, body) = try_post(
                &on_b,
                &format!("/api/orders/{order}/cancel"),
                json!({ "reason": "node lost" }),
            )
            .await
            .unwrap();
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "{body}"
            );
        }
    }
    let before = ledger.confirmed.lock().unwrap().clone();
    let from_b_all = tokio::spawn(dispatcher(
        on_b.clone(),
        evens.clone(),
        ledger.clone(),
        stop.clone(),
    ));
    let first_delivered = within("the first new order to reach a tablet of A", async {
        loop {
            let seen = ledger.seen.lock().unwrap().clone();
            if seen
                .iter()
                .any(|(unit, order)| evens.contains(unit) && !before.contains_key(order))
            {
                return killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    within("orders to A's units through B", async {
        while ledger.confirmed.lock().unwrap().len() < before.len() + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    from_b.await.unwrap();
    from_b_all.await.unwrap();

    // Every order answered 201 reached its own tablet, and none twice.
    let confirmed = ledger.confirmed.lock().unwrap().clone();
    within("every confirmed order to be reported", async {
        loop {
            let seen = ledger.seen.lock().unwrap().clone();
            if confirmed
                .iter()
                .all(|(order, unit)| seen.contains(&(*unit, *order)))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let seen = ledger.seen.lock().unwrap().clone();
    let distinct: BTreeSet<(i64, i64)> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "an order was reported twice");
    eprintln!(
        "cluster failover: {} orders answered 201, 0 lost, 0 duplicated; A's tablets back \
         through B {reconnected:?} after the kill, first new order at a tablet of A after {first_delivered:?}",
        confirmed.len()
    );
    drop(node_b);
    for watcher in watchers {
        watcher.abort();
    }
}
