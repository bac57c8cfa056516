//! Two `dispatchd` nodes on one PostgreSQL database (issue 13, item 3): what one node commits
//! reaches the devices, live index and consoles of the other; a device's newest connection wins
//! across nodes (4009 closes the older one); two operators on two nodes dispatching one unit at
//! the same moment never both win, and an idempotency key holds across nodes. Skipped, saying
//! so, when `DATABASE_URL` is unset (`make test` sets it).

use std::time::Duration;

use dispatch_tests::backend::TestDatabase;
use dispatch_tests::{
    console_socket, enrolled, expect_close, next_frame, next_json_matching, say_hello, send_text,
    session_cookie, spawn_cluster, spawn_cluster_with, within, Operator, RawSocket, TestApp, ADMIN,
    ADMIN_PASSWORD,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The cluster's two nodes, or `None` (and a note) without `DATABASE_URL`.
async fn cluster() -> Option<(TestApp, TestApp)> {
    Some(spawn_cluster(database().await?).await)
}

/// A database of the test's own, or `None` (and a note) without `DATABASE_URL`.
async fn database() -> Option<TestDatabase> {
    let database = TestDatabase::on_database_url().await;
    if database.is_none() {
        eprintln!("DATABASE_URL is unset: the cluster tests need PostgreSQL; skipped");
    }
    database
}

/// The next `deliver` frame, skipping any other.
async fn delivery(ws: &mut RawSocket) -> Value {
    within("a delivery", async {
        loop {
            let frame = next_frame(ws).await;
            if frame["type"] == "deliver" {
                return frame;
            }
        }
    })
    .await
}

async fn new_incident(operator: &Operator) -> i64 {
    let (status, incident) = operator
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 1, "lat": 60.1695, "lon": 24.9524,
                    "address": "Senaatintori 1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    incident["id"].as_i64().unwrap()
}

async fn assign(
    operator: &Operator,
    incident: i64,
    unit: i64,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let path = format!("/api/incidents/{incident}/assignments");
    let body = json!({ "unit_id": unit });
    match key {
        Some(key) => operator.post_keyed(&path, key, body).await,
        None => operator.post(&path, body).await,
    }
}

/// Polls `until` on `operator`'s node until it answers `Some`.
async fn eventually<T, F>(what: &str, mut until: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(found) = until().await {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_positions_and_connections_cross_nodes() {
    let Some((a, b)) = cluster().await else {
        return;
    };
    let (on_a, on_b) = (a.admin().await, b.admin().await);
    let (unit, device, token) = enrolled(&a, &on_a, "X-1").await;
    // A console on B, watching.
    let cookie = session_cookie(&b.base, ADMIN, ADMIN_PASSWORD).await;
    let mut console_b = console_socket(b.addr, &b.fingerprint, Some(&cookie), Some(&b.base))
        .await
        .unwrap();
    next_json_matching(&mut console_b, "snapshot", |v| v["type"] == "snapshot").await;

    // Connected to B; its position, sent to B, reaches A's live index.
    let (mut ws_b, welcome) = say_hello(&b, device, &token, None, 0).await;
    let epoch = welcome["epoch"].as_str().unwrap().to_owned();
    send_text(
        &mut ws_b,
        &json!({ "type": "location", "lat": 60.1699, "lon": 24.9384, "accuracy_m": 5.0,
                 "fix_time_ms": field_client::unix_ms() })
        .to_string(),
    )
    .await;
    let around =
        json!({ "polygon": [[60.16, 24.92], [60.18, 24.92], [60.18, 24.96], [60.16, 24.96]] });
    eventually("A's live index to hold the position sent to B", || {
        let (on_a, around) = (on_a.clone(), around.clone());
        async move {
            let (status, units) = on_a.post("/api/units/within", around).await;
            assert_eq!(status, StatusCode::OK, "{units}");
            units
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["id"] == unit)
                .then_some(())
        }
    })
    .await;

    // An order made on A reaches the device on B, and its receipt on B is seen on A; B's
    // console sees the incident and the order made on A.
    let incident = new_incident(&on_a).await;
    let (status, order) = assign(&on_a, incident, unit, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_i64().unwrap();
    let frame = delivery(&mut ws_b).await;
    assert_eq!(frame["message_id"], format!("order-{order_id}"));
    let seq = frame["seq"].as_u64().unwrap();
    send_text(
        &mut ws_b,
        &json!({ "type": "ack", "upto": seq }).to_string(),
    )
    .await;
    on_a.wait_order_state(order_id, "delivered").await;
    next_json_matching(&mut console_b, "the order made on A", |v| {
        v["type"] == "event"
            && v["event"]["kind"] == "order_queued"
            && v["orders"][0]["id"] == order_id
    })
    .await;

    // The unit is assigned on B too: B refuses a second order for it, naming the unit.
    let other = new_incident(&on_b).await;
    let (status, refused) = assign(&on_b, other, unit, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "unit_unavailable");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-1"));

    // The device reconnects to A: B closes its older connection with 4009.
    let (_ws_a, welcome) = say_hello(&a, device, &token, Some(&epoch), seq).await;
    assert_eq!(welcome["resync"], false);
    let (code, reason) = expect_close(&mut ws_b).await;
    assert_eq!(code, dispatch_protocol::close::SUPERSEDED, "{reason}");
    a.stop().await;
    b.stop().await;
}

/// 1,000 races: both nodes assign the same available unit at the same moment. Exactly one
/// wins each race; the other is told 409 `unit_unavailable`; the winner's order is then
/// cancelled so the unit is free for the next race. The database ends with one order per race.
/// An idempotency key sent to both nodes at once makes one order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_one_unit_never_both_win() {
    let Some((a, b)) = cluster().await else {
        return;
    };
    let (on_a, on_b) = (a.admin().await, b.admin().await);
    const UNITS: usize = 10;
    const ROUNDS: usize = 100;
    let mut units = Vec::new();
    for n in 0..UNITS {
        units.push(enrolled(&a, &on_a, &format!("R-{n}")).await.0);
    }
    let incident = new_incident(&on_a).await;
    let mut tasks = Vec::new();
    for unit in units.clone() {
        let (on_a, on_b) = (on_a.clone(), on_b.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let (from_a, from_b) = tokio::join!(
                    assign(&on_a, incident, unit, None),
                    assign(&on_b, incident, unit, None)
                );
                let (won, lost) = match (from_a.0, from_b.0) {
                    (StatusCode::CREATED, StatusCode::CONFLICT) => (from_a.1, from_b.1),
                    (StatusCode::CONFLICT, StatusCode::CREATED) => (from_b.1, from_a.1),
                    other => panic!("unit {unit} round {round}: {other:?} {from_a:?} {from_b:?}"),
                };
                assert_eq!(lost["error"]["code"], "unit_unavailable", "{lost}");
                let order = won["id"].as_i64().unwrap();
                let (status, body) = on_a
                    .post(
                        &format!("/api/orders/{order}/cancel"),
                        json!({ "reason": "race over" }),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counts = a
        .query_texts(vec![
            "SELECT count(*)::text FROM orders".into(),
            "SELECT count(DISTINCT unit_id)::text FROM orders".into(),
        ])
        .await;
    assert_eq!(counts, [(UNITS * ROUNDS).to_string(), UNITS.to_string()]);

    // One key, both nodes, one order.
    let (from_a, from_b) = tokio::join!(
        assign(&on_a, incident, units[0], Some("race-key")),
        assign(&on_b, incident, units[0], Some("race-key"))
    );
    assert!(
        from_a.0.is_success() && from_b.0.is_success(),
        "{from_a:?} {from_b:?}"
    );
    assert_eq!(from_a.1["id"], from_b.1["id"]);
    a.stop().await;
    b.stop().await;
}

/// A high-availability installation refuses to start on a primary without a synchronous
/// standby (the test server has none), saying why.
#[tokio::test]
async fn a_required_synchronous_standby_that_is_missing_stops_the_start() {
    let Some(database) = database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = dispatch_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        ..dispatch_server::Config::default()
    };
    config.store.backend = dispatch_server::config::Backend::Postgres;
    config.store.postgres_url = Some(database.url());
    config.store.require_synchronous_standby = true;
    let refused = dispatch_server::Application::build(config)
        .await
        .err()
        .unwrap();
    assert!(
        format!("{refused:#}").contains("require_synchronous_standby"),
        "{refused:#}"
    );
}

/// Both nodes run the escalation sweep, every 100 ms: an order nobody receives escalates once
/// per stage all the same, whichever node records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_escalation_step_is_recorded_once_across_nodes() {
    let Some(database) = database().await else {
        return;
    };
    let (a, b) = spawn_cluster_with(database, |c| {
        c.escalation.receipt_secs = [1; 5];
        c.escalation.acknowledge_secs = [2; 5];
        c.escalation.sweep_millis = 100;
    })
    .await;
    let on_a = a.admin().await;
    let (unit, _, _) = enrolled(&a, &on_a, "E-1").await;
    let incident = new_incident(&on_a).await;
    let (status, order) = assign(&on_a, incident, unit, None).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let escalations = || async {
        on_a.timeline_kinds(incident)
            .await
            .iter()
            .filter(|kind| *kind == "order_escalated")
            .count()
    };
    eventually("both stages to escalate", || async {
        (escalations().await >= 2).then_some(())
    })
    .await;
    // Many more sweeps of both nodes: nothing is recorded again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        escalations().await,
        2,
        "{:?}",
        on_a.timeline_kinds(incident).await
    );
    a.stop().await;
    b.stop().await;
}
