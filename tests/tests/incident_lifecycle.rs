//! An incident after intake, against a real `dispatchd` and a real field client: its phase
//! follows the units (pending → dispatched → en route → on scene → cleared → closed); every
//! change, narrative line and further caller is in the timeline and reaches the tablet of the
//! unit working it; intake finds the earlier incident a second call is about; bad input is
//! refused naming the problem and changes nothing.

use dispatch_protocol::{IncidentBrief, Message, ReportedStatus};
use dispatch_tests::{within, Device, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD};
use field_client::Event;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The next incident update the tablet stored, with the incident as it now is.
async fn next_update(device: &mut Device) -> (Vec<String>, IncidentBrief) {
    device
        .wait_for("an incident update", |e| match e {
            Event::Message(m) => match &m.body {
                Message::IncidentUpdate(u) => Some((u.changed.clone(), u.incident.clone())),
                _ => None,
            },
            _ => None,
        })
        .await
}

/// A real `dispatchd` on a new data directory in `dir`, and its admin logged in.
async fn server_with_admin(dir: &tempfile::TempDir) -> (ServerProcess, Operator) {
    let server = ServerProcess::start(&dir.path().join("data"), dispatch_tests::free_addr())
        .await
        .unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    (server, admin)
}

async fn phase(admin: &Operator, incident_id: i64) -> String {
    let (status, incident) = admin.get(&format!("/api/incidents/{incident_id}")).await;
    assert_eq!(status, StatusCode::OK, "{incident}");
    incident["phase"].as_str().unwrap().to_owned()
}

async fn wait_phase(admin: &Operator, incident_id: i64, wanted: &str) {
    within(&format!("incident {incident_id} to be {wanted}"), async {
        while phase(admin, incident_id).await != wanted {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn updates_reach_the_tablet_and_the_phase_follows_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin(&dir).await;
    let mut device = admin
        .unit_with_device(&server.fingerprint(), "P-21", &["patrol"])
        .await;

    let (status, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "assault", "priority": 1, "lat": 60.1699, "lon": 24.9384,
                    "address": "Aleksanterinkatu 52", "caller": "Lee", "callback": "+358 40 123 4567" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let id = incident["id"].as_i64().unwrap();
    assert_eq!(incident["phase"], "pending");
    assert_eq!(incident["callback"], "+358 40 123 4567");
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{id}/assignments"),
            json!({ "unit_id": device.unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_i64().unwrap();
    let delivered = device
        .wait_for("the order", |e| match e {
            Event::Order(o) => Some(o.order.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        delivered.incident.callback.as_deref(),
        Some("+358 40 123 4567")
    );
    assert_eq!(delivered.incident.caller.as_deref(), Some("Lee"));
    assert_eq!(phase(&admin, id).await, "dispatched");

    // A change of priority and callback number: one update naming both.
    let (status, body) = admin
        .patch(
            &format!("/api/incidents/{id}"),
            json!({ "priority": 0, "callback": "+358 40 765 4321" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (changed, now) = next_update(&mut device).await;
    assert_eq!(changed, ["priority", "callback"]);
    assert_eq!(now.priority, 0);
    assert_eq!(now.callback.as_deref(), Some("+358 40 765 4321"));
    assert_eq!(now.address.as_deref(), Some("Aleksanterinkatu 52"));

    // A narrative line, then a second caller: each an update carrying every entry so far.
    let (status, line) = admin
        .post_keyed(
            &format!("/api/incidents/{id}/narrative"),
            "narrative-1",
            json!({ "text": "Suspect has a knife, heading north" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!(line["author"], ADMIN);
    let (changed, now) = next_update(&mut device).await;
    assert_eq!(changed, ["narrative"]);
    assert_eq!(
        now.narrative[0].text.as_deref(),
        Some("Suspect has a knife, heading north")
    );
    // The same request again (a retry): the same entry, nothing new on the tablet.
    let (status, again) = admin
        .post_keyed(
            &format!("/api/incidents/{id}/narrative"),
            "narrative-1",
            json!({ "text": "Suspect has a knife, heading north" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], line["id"]);
    let (status, caller) = admin
        .post(
            &format!("/api/incidents/{id}/callers"),
            json!({ "caller": "Park", "callback": "010-1234-5678", "text": "saw the car" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{caller}");
    let (_, now) = next_update(&mut device).await;
    let kinds: Vec<&str> = now.narrative.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["narrative", "caller"], "the retry added nothing");
    assert_eq!(now.narrative[1].callback.as_deref(), Some("010-1234-5678"));
    let (_, entries) = admin.get(&format!("/api/incidents/{id}/entries")).await;
    assert_eq!(entries.as_array().unwrap().len(), 2, "{entries}");

    // The phase follows the unit.
    device.client.accept(order_id).await.unwrap();
    admin.wait_order_state(order_id, "accepted").await;
    assert_eq!(phase(&admin, id).await, "dispatched");
    for (status, wanted) in [
        (ReportedStatus::EnRoute, "en_route"),
        (ReportedStatus::OnScene, "on_scene"),
        (ReportedStatus::Cleared, "cleared"),
    ] {
        device.client.status(status, Some(order_id)).await.unwrap();
        wait_phase(&admin, id, wanted).await;
    }
    let (status, closed) = admin
        .post(
            &format!("/api/incidents/{id}/close"),
            json!({ "disposition": "arrest" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["phase"], "closed");

    let kinds = admin.timeline_kinds(id).await;
    for kind in [
        "incident_updated",
        "narrative_added",
        "caller_added",
        "incident_closed",
    ] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            1,
            "{kind} once in {kinds:?}"
        );
    }
    // Closed: nothing more can be added.
    let (status, body) = admin
        .post(
            &format!("/api/incidents/{id}/narrative"),
            json!({ "text": "late" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "incident_closed");
}

#[tokio::test]
async fn a_second_call_nearby_or_at_the_same_address_finds_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, admin) = server_with_admin(&dir).await;
    let (_, first) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "fire", "priority": 0, "lat": 60.1699, "lon": 24.9384,
                    "address": "Aleksanterinkatu 52, Helsinki" }),
        )
        .await;
    let first_id = first["id"].as_i64().unwrap();
    let found = |body: &Value| -> Vec<i64> {
        body.as_array()
            .unwrap()
            .iter()
            .map(|d| d["incident"]["id"].as_i64().unwrap())
            .collect()
    };

    // 100 m north: found by distance.
    let (status, near) = admin
        .get("/api/incidents/duplicates?lat=60.1708&lon=24.9384")
        .await;
    assert_eq!(status, StatusCode::OK, "{near}");
    assert_eq!(found(&near), [first_id]);
    let distance = near[0]["distance_m"].as_f64().unwrap();
    assert!((90.0..110.0).contains(&distance), "{distance}");
    assert_eq!(near[0]["same_address"], false);

    // 2 km away but the same address, written differently: found by address.
    let (_, same) = admin
        .get("/api/incidents/duplicates?lat=60.1880&lon=24.9384&address=aleksanterinkatu%2052%20helsinki")
        .await;
    assert_eq!(found(&same), [first_id]);
    assert_eq!(same[0]["same_address"], true);

    // 2 km away at another address: nothing.
    let (_, far) = admin
        .get("/api/incidents/duplicates?lat=60.1880&lon=24.9384&address=Mannerheimintie%205")
        .await;
    assert!(found(&far).is_empty(), "{far}");

    // Recently closed still counts (the window is an hour).
    let (status, _) = admin
        .post(&format!("/api/incidents/{first_id}/close"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, near) = admin
        .get("/api/incidents/duplicates?lat=60.1708&lon=24.9384")
        .await;
    assert_eq!(near[0]["incident"]["phase"], "closed");

    // Bad input names the problem.
    let (status, body) = admin.get("/api/incidents/duplicates?lat=91&lon=24.9").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("lat"),
        "{body}"
    );
    let (status, body) = admin.get("/api/incidents/duplicates?lat=60.1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn bad_entries_and_updates_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, admin) = server_with_admin(&dir).await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "theft", "priority": 3, "lat": 60.17, "lon": 24.94 }),
        )
        .await;
    let id = incident["id"].as_i64().unwrap();
    let before = admin.timeline_kinds(id).await;
    let cases = [
        (
            format!("/api/incidents/{id}/narrative"),
            json!({ "text": "   " }),
            "text",
        ),
        (
            format!("/api/incidents/{id}/narrative"),
            json!({ "text": "x".repeat(2001) }),
            "text",
        ),
        (
            format!("/api/incidents/{id}/narrative"),
            json!({ "text": 5 }),
            "text",
        ),
        (format!("/api/incidents/{id}/callers"), json!({}), "caller"),
        (
            format!("/api/incidents/{id}/callers"),
            json!({ "callback": "call me" }),
            "callback",
        ),
        (
            "/api/incidents".to_owned(),
            json!({ "kind": "theft", "priority": 3, "lat": 60.17, "lon": 24.94, "callback": "abc" }),
            "callback",
        ),
    ];
    for (path, body, named) in cases {
        let (status, answer) = admin.post(&path, body.clone()).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{path} {body}: {status} {answer}"
        );
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(named),
            "{path} {body}: {answer}"
        );
    }
    let (status, answer) = admin
        .patch(
            &format!("/api/incidents/{id}"),
            json!({ "callback": "12a" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, answer) = admin
        .post(
            "/api/incidents/999999/narrative",
            json!({ "text": "hello" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(admin.timeline_kinds(id).await, before);
    let (_, entries) = admin.get(&format!("/api/incidents/{id}/entries")).await;
    assert_eq!(entries, json!([]));
}
