//! The officer's emergency button against a real `dispatchd`: pressed while the server is down
//! (killed with -9), it is kept on the tablet, arrives once the server is back, and raises the
//! highest alert on the console with an emergency incident at the officer's position, exactly
//! once however often the tablet resent it.

use std::time::Duration;

use dispatch_protocol::Location;
use dispatch_tests::{
    free_addr, quick_reconnect, within, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD,
};
use field_client::Event;
use serde_json::Value;

/// Where the officer is: Kamppi, Helsinki.
const HERE: (f64, f64) = (60.1687, 24.9316);

async fn emergencies(admin: &Operator) -> Vec<Value> {
    let (_, alerts) = admin.get("/api/alerts").await;
    alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "officer_emergency")
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_emergency_pressed_while_the_server_restarts_still_raises_the_alarm_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = free_addr();
    let server = ServerProcess::start(&data, addr).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let mut device = admin
        .unit_with_device_using(&server.fingerprint(), "P-99", &["patrol"], quick_reconnect)
        .await;
    device
        .wait_for("welcome", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await;
    device
        .client
        .location(Location {
            lat: HERE.0,
            lon: HERE.1,
            accuracy_m: Some(8.0),
            heading_deg: None,
            speed_mps: None,
            fix_time_ms: field_client::unix_ms(),
        })
        .await
        .unwrap();

    // The server dies; the officer presses the button meanwhile.
    server.kill9().await;
    device
        .wait_for("the link to drop", |e| {
            matches!(e, Event::Disconnected { .. }).then_some(())
        })
        .await;
    let action = device.client.emergency().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Back up: the stored press arrives and is recorded.
    let server = ServerProcess::start(&data, addr).await.unwrap();
    device
        .wait_for("the emergency recorded", |e| match e {
            Event::ActionDone { action_id } if *action_id == action => Some(()),
            _ => None,
        })
        .await;
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let raised = within("the emergency alert", async {
        loop {
            if let Some(a) = emergencies(&admin).await.into_iter().next() {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(raised["detail"]["call_sign"], "P-99");
    assert_eq!(raised["detail"]["located_by"], "device");
    assert!((raised["detail"]["lat"].as_f64().unwrap() - HERE.0).abs() < 1e-9);
    assert_eq!(raised["unit_id"], device.unit_id);

    // An emergency incident at the officer's position, priority 0, in the timeline.
    let incident_id = raised["incident_id"]
        .as_i64()
        .expect("an emergency incident");
    let (_, incident) = admin.get(&format!("/api/incidents/{incident_id}")).await;
    assert_eq!(incident["kind"], "officer_emergency");
    assert_eq!(incident["priority"], 0);
    assert!((incident["lon"].as_f64().unwrap() - HERE.1).abs() < 1e-9);
    assert_eq!(incident["emergency_unit_id"], device.unit_id);
    let kinds = admin.timeline_kinds(incident_id).await;
    assert!(kinds.contains(&"officer_emergency".to_owned()), "{kinds:?}");
    // The officer in danger is available and nearest, but never proposed to help themselves.
    let (_, rec) = admin
        .get(&format!("/api/incidents/{incident_id}/recommendations"))
        .await;
    assert!(
        !rec["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["call_sign"] == "P-99"),
        "{rec}"
    );

    // Exactly once: a resend (the same action id) changes nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(emergencies(&admin).await.len(), 1);
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let recorded = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "officer_emergency")
        .count();
    assert_eq!(recorded, 1);

    // Acknowledged by a named operator, it leaves the alarm.
    let (status, acked) = admin
        .post(
            &format!("/api/alerts/{}/acknowledge", raised["event_id"]),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{acked}");
    assert_eq!(acked["acknowledged_by"], ADMIN);
    assert!(emergencies(&admin).await.is_empty());
    server.kill9().await;
}
