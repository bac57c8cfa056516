//! Network faults between a field client and the server, injected by a TCP proxy the test
//! controls: a black hole (the server finds the dead link by its heartbeats, the undelivered
//! order escalates, and after healing the order arrives exactly once), connection resets and
//! added latency (nothing lost, nothing surfaced twice, every action applied once).

use std::time::Duration;

use dispatch_protocol::ReportedStatus;
use dispatch_tests::checker::{self, AppLayer};
use dispatch_tests::proxy::{FaultProxy, Mode};
use dispatch_tests::{quick_reconnect, spawn_app_with, within, Device, Operator, TestApp};
use field_client::Event;
use serde_json::Value;

/// Heartbeat of the server under test: a dead link is found after about three of these.
const HEARTBEAT_SECS: u64 = 1;
/// T1 of the escalation ladder per priority 0 … 4: short for priority 1, long for the others.
const RECEIPT_SECS: [u64; 5] = [10, 2, 20, 30, 60];
/// Added latency each way: a round trip stays well inside three heartbeats.
const LATENCY: Duration = Duration::from_millis(700);

/// A device whose every surfaced order is recorded for the exactly-once check.
struct Tablet {
    device: Device,
    app: AppLayer,
}

impl Tablet {
    /// Enrols a unit directly with the server, then runs its client through `proxy`.
    async fn behind(proxy: &FaultProxy, admin: &Operator, app: &TestApp, call_sign: &str) -> Self {
        let url = proxy.url();
        let device = admin
            .unit_with_device_using(&app.fingerprint, call_sign, &["patrol"], |options| {
                quick_reconnect(options);
                // Handshakes take several round trips, each slowed by the added latency.
                options.connect_timeout = Duration::from_secs(10);
                options.credential.server_url = url;
            })
            .await;
        let mut tablet = Self {
            device,
            app: AppLayer::default(),
        };
        tablet
            .until("welcome", |e| {
                matches!(e, Event::Connected(_)).then_some(())
            })
            .await;
        tablet
    }

    /// The next event `pick` chooses; orders passing by on the way are recorded.
    async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        let (app, device_id) = (self.app.clone(), self.device.device_id);
        self.device
            .wait_for(what, |e| {
                if let Event::Order(o) = e {
                    app.record(device_id, o.order.order_id);
                }
                pick(e)
            })
            .await
    }

    async fn order(&mut self, order_id: i64) {
        self.until(&format!("order {order_id}"), |e| match e {
            Event::Order(o) if o.order.order_id == order_id => Some(()),
            _ => None,
        })
        .await;
    }

    async fn action_done(&mut self, action_id: &str) {
        let what = format!("action {action_id} done");
        self.until(&what, |e| match e {
            Event::ActionDone { action_id: done } if done == action_id => Some(()),
            Event::ActionRejected { code, message, .. } => {
                panic!("action {action_id} rejected: {code} {message}")
            }
            _ => None,
        })
        .await;
    }

    /// Waits a little for more events; every order among them counts.
    async fn linger(&mut self, period: Duration) {
        let _ = tokio::time::timeout(period, self.until("nothing", |_| None::<()>)).await;
    }
}

async fn connected_devices(app: &TestApp) -> u64 {
    let (_, body) = Operator::anonymous(&app.base).get("/readyz").await;
    body["connected_devices"].as_u64().unwrap()
}

async fn wait_connected(app: &TestApp, n: u64, what: &str) {
    within(what, async {
        while connected_devices(app).await != n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// How many device actions the server has applied (and recorded for deduplication).
async fn applied_actions(app: &TestApp) -> i64 {
    dispatch_tests::db_snapshot(app).await["device_actions"]
}

/// Creates an incident of `priority` and assigns `unit_id` to it; returns the incident and
/// order ids.
async fn dispatch(admin: &Operator, unit_id: i64, priority: u8, address: &str) -> (i64, i64) {
    let (status, incident) = admin
        .post(
            "/api/incidents",
            serde_json::json!({ "kind": "burglary", "priority": priority, "lat": 60.17,
                                "lon": 24.94, "address": address }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{incident}");
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{}/assignments", incident["id"]),
            serde_json::json!({ "unit_id": unit_id }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{order}");
    (
        incident["id"].as_i64().unwrap(),
        order["id"].as_i64().unwrap(),
    )
}

/// Waits until the device's receipt (or a later step) moved the order on from `queued`.
async fn wait_received(admin: &Operator, order_id: i64) {
    within(&format!("order {order_id} to be received"), async {
        while order_state(admin, order_id).await == "queued" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn order_state(admin: &Operator, order_id: i64) -> String {
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    order["state"].as_str().unwrap().to_owned()
}

/// The incident's timeline events of `kind`.
async fn events_of(admin: &Operator, incident_id: i64, kind: &str) -> Vec<Value> {
    let (_, timeline) = admin
        .get(&format!("/api/incidents/{incident_id}/timeline"))
        .await;
    timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Every order in the database reached its device exactly once and the timeline is consistent.
async fn assert_exactly_once(app: &TestApp, tablet: &Tablet) {
    let (report, problems) = checker::check(&app.database_at(), &tablet.app.snapshot()).await;
    println!("channel faults: {report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(problems, Vec::<String>::new());
}

#[tokio::test]
async fn a_black_hole_is_found_by_heartbeats_escalates_and_the_order_arrives_once_after_healing() {
    let app = spawn_app_with(|c| {
        c.heartbeat_secs = HEARTBEAT_SECS;
        c.escalation.receipt_secs = RECEIPT_SECS;
        c.escalation.sweep_millis = 100;
    })
    .await;
    let admin = app.admin().await;
    let proxy = FaultProxy::start(app.addr).await.unwrap();
    let mut tablet = Tablet::behind(&proxy, &admin, &app, "NF-1").await;
    let mut other = Tablet::behind(&proxy, &admin, &app, "NF-1B").await;
    other.app = tablet.app.clone();
    let (unit, other_unit) = (tablet.device.unit_id, other.device.unit_id);

    let (control_incident, first) = dispatch(&admin, unit, 3, "Mannerheimintie 1").await;
    tablet.order(first).await;
    wait_received(&admin, first).await;
    let action = tablet
        .device
        .client
        .decline(first, "other", Some("testing"))
        .await
        .unwrap();
    tablet.action_done(&action).await;

    // The cable is cut: both orders go out into nothing. T1 is short for priority 1 and long
    // for priority 4.
    proxy.set(Mode::BlackHole);
    let (incident, order) = dispatch(&admin, unit, 1, "Aleksanterinkatu 52").await;
    let (slow_incident, slow_order) = dispatch(&admin, other_unit, 4, "Kaivokatu 8").await;
    // The proxy passes no close on, so only the server's heartbeats can find the dead link.
    wait_connected(&app, 0, "the server to drop the dead links").await;
    tablet
        .until("the client to give up the silent link", |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
    assert_eq!(order_state(&admin, order).await, "queued");
    assert!(proxy.stats().swallowed_bytes() > 0, "{:?}", proxy.stats());

    // No receipt within T1 of priority 1: the order escalates, not before T1 (server clock),
    // while it is still undelivered; the priority 4 order waits for its own, longer T1.
    let escalation = within("the no-receipt escalation", async {
        loop {
            if let Some(e) = events_of(&admin, incident, "order_escalated").await.pop() {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, created) = admin.get(&format!("/api/orders/{order}")).await;
    let t1_ms = RECEIPT_SECS[1] * 1000;
    assert_eq!(escalation["order_id"], order, "{escalation}");
    assert_eq!(escalation["detail"]["stage"], "no_receipt", "{escalation}");
    assert_eq!(escalation["detail"]["threshold_ms"], t1_ms, "{escalation}");
    let waited = escalation["at_ms"].as_i64().unwrap() - created["created_at_ms"].as_i64().unwrap();
    assert!(
        waited >= i64::try_from(t1_ms).unwrap(),
        "escalated after {waited} ms, before T1: {escalation}"
    );
    assert!(
        escalation["detail"]["waited_ms"].as_u64().unwrap() >= t1_ms,
        "{escalation}"
    );
    assert_eq!(order_state(&admin, order).await, "queued");
    assert_eq!(order_state(&admin, slow_order).await, "queued");
    assert!(events_of(&admin, slow_incident, "order_escalated")
        .await
        .is_empty());

    // Still cut off: the clients keep trying and nothing arrives.
    tablet.linger(Duration::from_secs(HEARTBEAT_SECS * 2)).await;
    assert_eq!(order_state(&admin, order).await, "queued");
    assert_eq!(connected_devices(&app).await, 0);

    proxy.set(Mode::Pass);
    tablet.order(order).await;
    other.order(slow_order).await;
    wait_received(&admin, order).await;
    let action = tablet.device.client.accept(order).await.unwrap();
    tablet.action_done(&action).await;
    tablet.linger(Duration::from_millis(300)).await;
    other.linger(Duration::from_millis(300)).await;
    assert!(proxy.stats().resets() >= 1, "{:?}", proxy.stats());
    assert_eq!(events_of(&admin, incident, "order_accepted").await.len(), 1);
    // Escalated once, and only the order that waited past its T1.
    assert_eq!(
        events_of(&admin, incident, "order_escalated").await.len(),
        1
    );
    assert!(events_of(&admin, slow_incident, "order_escalated")
        .await
        .is_empty());
    assert!(events_of(&admin, control_incident, "order_escalated")
        .await
        .is_empty());
    assert_exactly_once(&app, &tablet).await;
    app.stop().await;
}

#[tokio::test]
async fn resets_and_latency_lose_no_order_and_apply_each_action_once() {
    let app = spawn_app_with(|c| c.heartbeat_secs = HEARTBEAT_SECS).await;
    let admin = app.admin().await;
    let proxy = FaultProxy::start(app.addr).await.unwrap();
    let mut tablet = Tablet::behind(&proxy, &admin, &app, "NF-2").await;
    let unit = tablet.device.unit_id;

    // Every connection is reset, and every reconnect too, while the order is queued.
    proxy.set(Mode::Reset);
    tablet
        .until("the reset", |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
    let (incident, order) = admin.dispatch_to(unit, "Kaivokatu 1").await;
    let resets = proxy.stats().resets();
    within("reconnects to be reset", async {
        while proxy.stats().resets() < resets + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(order_state(&admin, order).await, "queued");
    // An action taken offline waits in the device's outbox.
    let accept = tablet.device.client.accept(order).await.unwrap();
    proxy.set(Mode::Pass);
    tablet.order(order).await;
    tablet.action_done(&accept).await;
    assert_eq!(order_state(&admin, order).await, "accepted");

    // A slow link: everything arrives late but once.
    proxy.set(Mode::Latency(LATENCY));
    let en_route = tablet
        .device
        .client
        .status(ReportedStatus::EnRoute, Some(order))
        .await
        .unwrap();
    tablet.action_done(&en_route).await;
    // The link breaks after the server applied an action but before its `done` (held back by
    // the latency) reached the device: the device sends it again, the server answers `done`
    // again and applies it once. Tried until the break falls into that window.
    let mut on_scene_reports = 0;
    let resent = 'caught: {
        for _ in 0..5 {
            let applied = applied_actions(&app).await;
            let action = tablet
                .device
                .client
                .status(ReportedStatus::OnScene, Some(order))
                .await
                .unwrap();
            on_scene_reports += 1;
            within("the server to apply the action", async {
                while applied_actions(&app).await == applied {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            proxy.set(Mode::Reset);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let pending = tablet.device.client.pending_actions().await.unwrap();
            proxy.set(Mode::Latency(LATENCY));
            if pending.iter().any(|p| p.action_id == action) {
                println!("done lost in flight after {on_scene_reports} on-scene report(s)");
                break 'caught action;
            }
            tablet.action_done(&action).await;
        }
        panic!("the reset never fell between the server's commit and the device's done");
    };
    tablet.action_done(&resent).await;
    let cleared = tablet
        .device
        .client
        .status(ReportedStatus::Cleared, Some(order))
        .await
        .unwrap();
    tablet.action_done(&cleared).await;
    assert!(
        tablet
            .device
            .client
            .pending_actions()
            .await
            .unwrap()
            .is_empty(),
        "every action answered"
    );

    let (second_incident, second) = admin.dispatch_to(unit, "Pohjoisesplanadi 11").await;
    tablet.order(second).await;
    wait_received(&admin, second).await;
    tablet.linger(Duration::from_millis(900)).await;

    assert_eq!(events_of(&admin, incident, "order_accepted").await.len(), 1);
    assert_eq!(
        events_of(&admin, incident, "unit_on_scene").await.len(),
        on_scene_reports,
        "each on-scene report applied once"
    );
    assert_eq!(events_of(&admin, incident, "unit_cleared").await.len(), 1);
    assert_eq!(
        events_of(&admin, incident, "order_completed").await.len(),
        1
    );
    assert_eq!(
        events_of(&admin, second_incident, "order_queued")
            .await
            .len(),
        1
    );
    assert!(proxy.stats().resets() >= resets + 3, "{:?}", proxy.stats());
    assert_exactly_once(&app, &tablet).await;
    app.stop().await;
}
