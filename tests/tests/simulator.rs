//! The fleet simulator at scale: `field-client simulate --units 1000` (one process, one library
//! `Client` + `EventLoop` per unit) enrols every unit, brings it online, and answers every order
//! it is sent — accepting most and declining some — with no order lost.

use std::collections::HashMap;
use std::time::Duration;

use dispatch_tests::{binary, ADMIN, ADMIN_PASSWORD};
use serde_json::{json, Value};

const UNITS: usize = 1000;
const ORDERS: usize = 60;
/// Generous bounds for a loaded two-core CI machine; reaching them fails the test.
const ONLINE_WITHIN: Duration = Duration::from_secs(420);
const ANSWERED_WITHIN: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_simulated_units_answer_every_order() {
    let app = spawn_app_with_slow_heartbeat().await;
    let admin = app.admin().await;
    let state = tempfile::tempdir().unwrap();
    let mut sim = tokio::process::Command::new(binary("field-client"))
        .args([
            "simulate",
            "--units",
            &UNITS.to_string(),
            "--server",
            &app.base,
        ])
        .args([
            "--pin",
            &app.fingerprint,
            "--login",
            &format!("{ADMIN}:{ADMIN_PASSWORD}"),
        ])
        .args(["--decline-rate", "0.2", "--fix-every", "30", "--state-dir"])
        .arg(state.path())
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Every unit is enrolled and online: its first position reached the server.
    let units: Vec<Value> = tokio::time::timeout(ONLINE_WITHIN, async {
        loop {
            if let Ok(Some(status)) = sim.try_wait() {
                panic!("the simulator exited early: {status}");
            }
            let (_, units) = admin.get("/api/units").await;
            let units = units.as_array().cloned().unwrap_or_default();
            let online = units.iter().filter(|u| !u["position"].is_null()).count();
            if online == UNITS {
                return units;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("all units online in time");

    // Orders to distinct units, all at once.
    let mut orders = Vec::new();
    for (n, unit) in units
        .iter()
        .step_by(UNITS / ORDERS)
        .take(ORDERS)
        .enumerate()
    {
        let (status, incident) = admin
            .post(
                "/api/incidents",
                json!({ "kind": "disturbance", "priority": 2, "lat": 60.17, "lon": 24.94,
                        "address": format!("Simulated street {n}") }),
            )
            .await;
        assert_eq!(status, 201, "{incident}");
        let (status, order) = admin
            .post(
                &format!("/api/incidents/{}/assignments", incident["id"]),
                json!({ "unit_id": unit["id"] }),
            )
            .await;
        assert_eq!(status, 201, "{order}");
        orders.push(order["id"].as_i64().unwrap());
    }

    // Every order is answered: none stays waiting (queued, delivered, displayed, acknowledged).
    let outcome: HashMap<i64, String> = tokio::time::timeout(ANSWERED_WITHIN, async {
        let mut outcome = HashMap::new();
        loop {
            for &id in &orders {
                if outcome.contains_key(&id) {
                    continue;
                }
                let (_, order) = admin.get(&format!("/api/orders/{id}")).await;
                let state = order["state"].as_str().unwrap_or_default().to_owned();
                assert!(
                    !["cancelled", "expired"].contains(&state.as_str()),
                    "order {id} was never answered: {order}"
                );
                if ["accepted", "declined", "completed"].contains(&state.as_str()) {
                    outcome.insert(id, state);
                }
            }
            if outcome.len() == orders.len() {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await
    .expect("every order answered in time");
    let declined = outcome.values().filter(|s| *s == "declined").count();
    let accepted = outcome.len() - declined;
    assert!(
        declined > 0 && accepted > 0,
        "units decline sometimes and accept mostly: {outcome:?}"
    );
    assert!(
        outcome
            .values()
            .all(|s| ["accepted", "declined", "completed"].contains(&s.as_str())),
        "{outcome:?}"
    );
    assert!(
        sim.try_wait().unwrap().is_none(),
        "the simulator keeps running"
    );
    sim.start_kill().unwrap();
    let _ = sim.wait().await;
}

/// The harness pings every 5 s; for 1000 devices the production default (20 s) is kinder.
async fn spawn_app_with_slow_heartbeat() -> dispatch_tests::TestApp {
    dispatch_tests::spawn_app_with(|c| c.heartbeat_secs = 20).await
}
