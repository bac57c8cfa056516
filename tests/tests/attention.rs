//! No call falls through the cracks: a real `dispatchd` raises every reason an incident needs an
//! operator (an undispatched P0 past its target, a declined order with no replacement, an
//! unread text, an officer on scene who went quiet, a cleared incident left open), keeps them
//! through kill -9, records who acknowledged them, and resolves them when the reason goes away.

use std::time::{Duration, Instant};

use dispatch_protocol::ReportedStatus;
use dispatch_tests::{free_addr, within, Device, Operator, ServerProcess};
use field_client::Event;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Attention rules short enough for a test: P0 must have an order within 1 s, an officer on
/// scene must be heard from every 2 s.
const CONFIG: &str = "
[escalation]
sweep_millis = 200

[attention]
dispatch_target_secs = [1, 60, 180, 600, 1800]
welfare_check_secs = 2
";

/// Polls `GET /api/attention` until an open item satisfies `pick`; returns it.
async fn attention_where(admin: &Operator, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
    within(what, async {
        loop {
            let (status, open) = admin.get("/api/attention").await;
            assert_eq!(status, StatusCode::OK, "{open}");
            if let Some(item) = open.as_array().unwrap().iter().find(|a| pick(a)) {
                return item.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Polls until no open item satisfies `pick`.
async fn attention_gone(admin: &Operator, what: &str, pick: impl Fn(&Value) -> bool) {
    within(what, async {
        loop {
            let (_, open) = admin.get("/api/attention").await;
            if !open.as_array().unwrap().iter().any(&pick) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn is(reason: &'static str, incident: i64) -> impl Fn(&Value) -> bool {
    move |a| a["reason"] == reason && a["incident_id"] == incident
}

/// The details of the incident's timeline events of `kind`.
async fn events(admin: &Operator, incident: i64, kind: &str) -> Vec<Value> {
    let (_, timeline) = admin
        .get(&format!("/api/incidents/{incident}/timeline"))
        .await;
    timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

async fn create_incident(admin: &Operator, priority: u8, address: &str) -> i64 {
    let (status, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "assault", "priority": priority, "lat": 60.17, "lon": 24.94,
                    "address": address }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    incident["id"].as_i64().unwrap()
}

async fn order_arrives(device: &mut Device, order_id: i64) {
    device
        .wait_for("the order on the tablet", |e| match e {
            Event::Order(o) if o.order.order_id == order_id => Some(()),
            _ => None,
        })
        .await;
}

async fn assign(admin: &Operator, incident: i64, unit: i64) -> i64 {
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{incident}/assignments"),
            json!({ "unit_id": unit }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_i64().unwrap()
}

#[tokio::test]
async fn every_call_that_needs_someone_raises_attention_and_it_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dispatchd.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let data = dir.path().join("data");
    let addr = free_addr();
    let server = ServerProcess::start_configured(&data, addr, &config)
        .await
        .unwrap();
    let fingerprint = server.fingerprint();
    let admin = Operator::login(&server.base, "admin", dispatch_tests::ADMIN_PASSWORD)
        .await
        .unwrap();
    let mut device = admin.unit_with_device(&fingerprint, "P-31", &[]).await;
    let unit = device.unit_id;

    // A P0 call nobody dispatched: raised once its 1 s target passes, as a severe alert.
    let p0 = create_incident(&admin, 0, "Mannerheimintie 5").await;
    let created = Instant::now();
    let overdue = attention_where(&admin, "the undispatched P0", is("dispatch_overdue", p0)).await;
    assert!(created.elapsed() < Duration::from_secs(5), "raised late");
    assert_eq!(overdue["severity"], "severe");
    assert_eq!(overdue["target_ms"], 1000);
    let overdue_alert = overdue["alert_event_id"].as_i64().unwrap();
    let (_, alerts) = admin.get("/api/alerts").await;
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["event_id"] == overdue_alert && a["kind"] == "attention_raised"),
        "{alerts}"
    );

    // A declined order with no replacement: raised within 5 s, naming the unit and the reason.
    let p2 = create_incident(&admin, 2, "Aleksanterinkatu 1").await;
    let declined = assign(&admin, p2, unit).await;
    order_arrives(&mut device, declined).await;
    device
        .client
        .decline(declined, "vehicle_problem", None)
        .await
        .unwrap();
    let decided = Instant::now();
    let unreplaced =
        attention_where(&admin, "the declined order", is("order_unreplaced", p2)).await;
    assert!(decided.elapsed() < Duration::from_secs(5), "raised late");
    assert_eq!(unreplaced["order_id"], declined);
    assert_eq!(unreplaced["detail"]["call_sign"], "P-31");
    assert_eq!(unreplaced["detail"]["order_state"], "declined");
    assert_eq!(unreplaced["detail"]["why"], "vehicle_problem");

    // A text from the unit: unread until an operator reads it.
    device
        .client
        .text("need backup at the back door", Some(p2))
        .await
        .unwrap();
    let unread = attention_where(&admin, "the unread text", is("unread_text", p2)).await;
    assert_eq!(unread["severity"], "notice");
    assert_eq!(unread["detail"]["text"], "need backup at the back door");

    // kill -9: everything open is still open afterwards, and nothing is raised twice.
    server.kill9().await;
    let server = ServerProcess::start_configured(&data, addr, &config)
        .await
        .unwrap();
    let admin = Operator::login(&server.base, "admin", dispatch_tests::ADMIN_PASSWORD)
        .await
        .unwrap();
    let (_, open) = admin.get("/api/attention").await;
    for (reason, incident) in [
        ("dispatch_overdue", p0),
        ("order_unreplaced", p2),
        ("unread_text", p2),
    ] {
        assert!(
            open.as_array().unwrap().iter().any(is(reason, incident)),
            "{reason} of #{incident} lost in the restart: {open}"
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(events(&admin, p0, "attention_raised").await.len(), 1);

    // Reading the unit's texts resolves the unread text.
    let (status, read) = admin
        .post(&format!("/api/units/{unit}/messages/read"), json!({}))
        .await;
    assert_eq!((status, read), (StatusCode::OK, json!({ "read": 1 })));
    attention_gone(&admin, "the text to count as read", is("unread_text", p2)).await;
    let (_, texts) = admin.get(&format!("/api/units/{unit}/messages")).await;
    assert!(texts[0]["read_at_ms"].is_i64(), "{texts}");

    // An operator acknowledges the P0 alert: it leaves the alarm, stays in the queue with who
    // took it, and the timeline names them.
    let (status, acked) = admin
        .post(
            &format!("/api/alerts/{overdue_alert}/acknowledge"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    let (_, alerts) = admin.get("/api/alerts").await;
    assert!(!alerts
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["event_id"] == overdue_alert));
    let taken = attention_where(&admin, "the acknowledged P0", is("dispatch_overdue", p0)).await;
    assert_eq!(taken["acknowledged_by"], "admin");
    assert_eq!(
        events(&admin, p0, "alert_acknowledged").await[0]["actor"],
        "operator:admin"
    );

    // The unit goes to the P0 call: the overdue dispatch is resolved; the declined order of
    // the other incident still waits for a replacement.
    let order = assign(&admin, p0, unit).await;
    attention_gone(
        &admin,
        "the P0 to count as dispatched",
        is("dispatch_overdue", p0),
    )
    .await;
    let resolved = events(&admin, p0, "attention_resolved").await;
    assert_eq!(resolved[0]["detail"]["reason"], "dispatch_overdue");
    assert_eq!(resolved[0]["detail"]["alert_event_id"], overdue_alert);
    attention_where(
        &admin,
        "the declined order, still",
        is("order_unreplaced", p2),
    )
    .await;

    // On scene and then silent past the welfare timer: a welfare check, resolved by the next
    // word from the officer.
    order_arrives(&mut device, order).await;
    device.client.accept(order).await.unwrap();
    device
        .client
        .status(ReportedStatus::OnScene, Some(order))
        .await
        .unwrap();
    let welfare = attention_where(&admin, "the welfare check", is("welfare_check", p0)).await;
    assert_eq!(welfare["severity"], "severe");
    assert_eq!(welfare["unit_id"], unit);
    assert_eq!(welfare["target_ms"], 2000);
    device.client.text("all fine here", Some(p0)).await.unwrap();
    within("the welfare check to be resolved", async {
        loop {
            let resolved = events(&admin, p0, "attention_resolved").await;
            if resolved
                .iter()
                .any(|e| e["detail"]["reason"] == "welfare_check")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Every unit cleared but the incident still open: a notice until someone closes it.
    device
        .client
        .status(ReportedStatus::Cleared, Some(order))
        .await
        .unwrap();
    let cleared = attention_where(&admin, "the cleared incident", is("all_cleared", p0)).await;
    assert_eq!(cleared["severity"], "notice");
    let (status, closed) = admin
        .post(
            &format!("/api/incidents/{p0}/close"),
            json!({ "disposition": "handled" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    attention_gone(&admin, "the closed incident to need nothing", |a| {
        a["incident_id"] == p0 && a["reason"] != "unread_text"
    })
    .await;
    server.kill9().await;
}
