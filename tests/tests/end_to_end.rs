//! The whole backbone on real sockets: enrol three devices, report positions, create an
//! incident, get the truly nearest capable unit, dispatch it, receive, accept, report status,
//! and read the timeline.

use dispatch_protocol::{Location, ReportedStatus};
use dispatch_tests::{helsinki_map, spawn_app, spawn_app_with, within, Device, Operator};
use field_client::Event;
use reqwest::StatusCode;
use serde_json::json;

/// Incident location: Senate Square, Helsinki.
const SCENE: (f64, f64) = (60.169_52, 24.952_37);

/// A point `north_m` metres north of the scene.
fn north_of_scene(north_m: f64) -> Location {
    Location {
        lat: SCENE.0 + north_m / 111_320.0,
        lon: SCENE.1,
        accuracy_m: Some(5.0),
        heading_deg: None,
        speed_mps: None,
        fix_time_ms: field_client::unix_ms(),
    }
}

async fn wait_connected(d: &mut Device) {
    d.wait_for("welcome", |e| {
        matches!(e, Event::Connected(_)).then_some(())
    })
    .await;
}

async fn wait_positions(admin: &Operator, n: usize) {
    within("positions to arrive", async {
        loop {
            let (_, units) = admin.get("/api/units").await;
            let with_fix = units
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| !u["position"].is_null())
                .count();
            if with_fix == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

async fn done(d: &mut Device, action_id: &str) {
    let got = d
        .wait_for("action result", |e| match e {
            Event::ActionDone { action_id } => Some(Ok(action_id.clone())),
            Event::ActionRejected {
                action_id, code, ..
            } => Some(Err(format!("{action_id}: {code}"))),
            _ => None,
        })
        .await;
    assert_eq!(got, Ok(action_id.to_owned()));
}

#[tokio::test]
async fn incident_to_accepted_order_with_full_timeline() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    // Nearest is P-1, but it lacks the k9 capability the incident needs; K9-3 is the nearest
    // capable unit; K9-2 is capable but farther.
    let mut p1 = admin
        .unit_with_device(&app.fingerprint, "P-1", &["patrol"])
        .await;
    let mut k9_2 = admin
        .unit_with_device(&app.fingerprint, "K9-2", &["patrol", "k9"])
        .await;
    let mut k9_3 = admin
        .unit_with_device(&app.fingerprint, "K9-3", &["k9", "patrol"])
        .await;
    for d in [&mut p1, &mut k9_2, &mut k9_3] {
        wait_connected(d).await;
    }
    p1.client.location(north_of_scene(100.0)).await.unwrap();
    k9_2.client.location(north_of_scene(900.0)).await.unwrap();
    k9_3.client.location(north_of_scene(-400.0)).await.unwrap();
    wait_positions(&admin, 3).await;
    let (south, north) = (SCENE.0 - 600.0 / 111_320.0, SCENE.0 + 300.0 / 111_320.0);
    let square = json!({ "polygon": [[south, SCENE.1 - 0.01], [south, SCENE.1 + 0.01], [north, SCENE.1 + 0.01], [north, SCENE.1 - 0.01]] });
    let (status, inside) = admin.post("/api/units/within", square).await;
    assert_eq!(status, StatusCode::OK, "{inside}");
    let inside: Vec<&str> = inside
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["call_sign"].as_str().unwrap())
        .collect();
    assert_eq!(inside, ["P-1", "K9-3"], "units inside the polygon, by id");
    let (status, body) = admin
        .post(
            "/api/units/within",
            json!({ "polygon": [[60.0, 24.0], [60.1, 24.1]] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, trail) = admin
        .get(&format!("/api/units/{}/trail", k9_3.unit_id))
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    assert_eq!(
        trail.as_array().unwrap().len(),
        1,
        "the first fix is sampled into the trail"
    );

    let (status, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "assault", "priority": 0, "lat": SCENE.0, "lon": SCENE.1,
                    "address": "Senaatintori", "caller": "+358 40 000 0000",
                    "notes": "two people fighting", "required_capabilities": ["k9"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let incident_id = incident["id"].as_i64().unwrap();

    let (status, rec) = admin
        .get(&format!(
            "/api/incidents/{incident_id}/recommendations?count=5"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    let ranked: Vec<&str> = rec["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sign"].as_str().unwrap())
        .collect();
    assert_eq!(ranked, ["K9-3", "K9-2"], "{rec}");
    let best = &rec["candidates"][0];
    assert!(
        (best["distance_m"].as_f64().unwrap() - 400.0).abs() < 5.0,
        "{best}"
    );
    assert_eq!(best["eta_source"], "straight_line_estimate");

    let (status, order) = admin
        .post(
            &format!("/api/incidents/{incident_id}/assignments"),
            json!({ "unit_id": k9_3.unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["state"], "queued");
    let order_id = order["id"].as_i64().unwrap();

    // The device persists the order before the app sees it, and its receipt marks it delivered.
    let received = k9_3
        .wait_for("the order", |e| match e {
            Event::Order(o) => Some(o.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received.order.order_id, order_id);
    assert_eq!(received.order.incident.id, incident_id);
    assert_eq!(
        received.order.incident.address.as_deref(),
        Some("Senaatintori")
    );
    assert_eq!(
        k9_3.client.orders().await.unwrap().len(),
        1,
        "the order is in the durable inbox"
    );
    admin.wait_order_state(order_id, "delivered").await;

    let action = k9_3.client.accept(order_id).await.unwrap();
    done(&mut k9_3, &action).await;
    let accepted = admin.wait_order_state(order_id, "accepted").await;
    assert!(accepted["decided_at_ms"].as_i64().is_some());

    for status in [
        ReportedStatus::EnRoute,
        ReportedStatus::OnScene,
        ReportedStatus::Cleared,
    ] {
        let action = k9_3.client.status(status, Some(order_id)).await.unwrap();
        done(&mut k9_3, &action).await;
    }
    admin.wait_order_state(order_id, "completed").await;
    let (_, unit) = admin.get(&format!("/api/units/{}", k9_3.unit_id)).await;
    assert_eq!(unit["status"], "available");

    // The other devices got nothing.
    assert!(p1.client.orders().await.unwrap().is_empty());
    assert!(k9_2.client.orders().await.unwrap().is_empty());

    let (status, closed) = admin
        .post(
            &format!("/api/incidents/{incident_id}/close"),
            json!({ "disposition": "arrest" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");

    let (_, timeline) = admin
        .get(&format!("/api/incidents/{incident_id}/timeline"))
        .await;
    let events = timeline.as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "incident_created",
            "order_queued",
            "order_delivered",
            "order_accepted",
            "unit_en_route",
            "unit_on_scene",
            "unit_cleared",
            "order_completed",
            "incident_closed",
        ]
    );
    let (status, audit) = admin.get("/api/audit?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let audited: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "login",
        "unit_created",
        "enrolment_code_issued",
        "device_enrolled",
        "incident_created",
        "order_queued",
    ] {
        assert!(
            audited.contains(&kind),
            "{kind} missing from the audit log: {audited:?}"
        );
    }

    let device_actor = format!("device:{}", k9_3.device_id);
    let actors: Vec<&str> = events
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors[0], "operator:admin");
    assert_eq!(actors[1], "operator:admin");
    assert!(
        actors[2..8].iter().all(|a| *a == device_actor),
        "{actors:?}"
    );
    let times: Vec<i64> = events
        .iter()
        .map(|e| e["at_ms"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timestamps in order: {times:?}"
    );
    assert!(events
        .iter()
        .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z'))));
    assert!(events[1..8].iter().all(|e| e["order_id"] == order_id));

    app.stop().await;
}

#[tokio::test]
async fn decline_frees_the_unit_and_is_recorded_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut d = admin
        .unit_with_device(&app.fingerprint, "P-7", &["patrol"])
        .await;
    wait_connected(&mut d).await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 2, "lat": SCENE.0, "lon": SCENE.1 }),
        )
        .await;
    let incident_id = incident["id"].as_i64().unwrap();
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{incident_id}/assignments"),
            json!({ "unit_id": d.unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let order_id = order["id"].as_i64().unwrap();
    d.wait_for("the order", |e| matches!(e, Event::Order(_)).then_some(()))
        .await;

    // The unit is busy until it declines.
    let (status, body) = admin
        .post(
            &format!("/api/incidents/{incident_id}/assignments"),
            json!({ "unit_id": d.unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "unit_unavailable");

    let action = d
        .client
        .decline(order_id, "vehicle_problem", None)
        .await
        .unwrap();
    done(&mut d, &action).await;
    let order = admin.wait_order_state(order_id, "declined").await;
    assert_eq!(order["decline_reason"], "vehicle_problem");
    let (_, unit) = admin.get(&format!("/api/units/{}", d.unit_id)).await;
    assert_eq!(unit["status"], "available");

    // Accepting after declining is refused and changes nothing.
    let action = d.client.accept(order_id).await.unwrap();
    let code = d
        .wait_for("rejection", |e| match e {
            Event::ActionRejected {
                action_id, code, ..
            } if *action_id == action => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "already_decided");
    admin.wait_order_state(order_id, "declined").await;
    app.stop().await;
}

#[tokio::test]
async fn with_a_map_units_are_ranked_by_drive_time() {
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let admin = app.admin().await;
    let mut near = admin
        .unit_with_device(&app.fingerprint, "P-21", &["patrol"])
        .await;
    let mut far = admin
        .unit_with_device(&app.fingerprint, "P-22", &["patrol"])
        .await;
    wait_connected(&mut near).await;
    wait_connected(&mut far).await;
    near.client.location(north_of_scene(-150.0)).await.unwrap();
    far.client.location(north_of_scene(-450.0)).await.unwrap();
    wait_positions(&admin, 2).await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 1, "lat": SCENE.0, "lon": SCENE.1 }),
        )
        .await;
    let (status, rec) = admin
        .get(&format!(
            "/api/incidents/{}/recommendations",
            incident["id"]
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    let candidates = rec["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{rec}");
    assert!(
        candidates.iter().all(|c| c["eta_source"] == "road"),
        "{rec}"
    );
    assert!(
        candidates
            .iter()
            .all(|c| c["eta_s"].as_f64().unwrap() > 0.0),
        "{rec}"
    );

    // The route the console draws for a unit takes exactly the recommendation's time, from
    // where the unit is to the scene.
    let to_scene = format!("route?lat={}&lon={}", SCENE.0, SCENE.1);
    for c in candidates {
        let (status, route) = admin
            .get(&format!("/api/units/{}/{to_scene}", c["unit_id"]))
            .await;
        assert_eq!(status, StatusCode::OK, "{route}");
        let eta = c["eta_s"].as_f64().unwrap();
        let drive = route["eta_s"].as_f64().unwrap();
        assert!(
            (drive - eta).abs() <= 1e-6 * eta,
            "route {drive} s, ETA {eta} s"
        );
        let points = route["coordinates"].as_array().unwrap();
        let [first, last] = [&points[0], &points[points.len() - 1]]
            .map(|p| (p[1].as_f64().unwrap(), p[0].as_f64().unwrap()));
        let (_, unit) = admin.get(&format!("/api/units/{}", c["unit_id"])).await;
        let at = (
            unit["position"]["lat"].as_f64().unwrap(),
            unit["position"]["lon"].as_f64().unwrap(),
        );
        assert!(
            dispatch_geo::haversine_m(first.0, first.1, at.0, at.1) < 150.0,
            "{route}"
        );
        assert!(
            dispatch_geo::haversine_m(last.0, last.1, SCENE.0, SCENE.1) < 150.0,
            "{route}"
        );
    }
    // Refusals name the problem: a place off the Earth, an unknown unit, a unit without a fix.
    let unit = candidates[0]["unit_id"].as_i64().unwrap();
    let (status, body) = admin
        .get(&format!("/api/units/{unit}/route?lat=95&lon=24.9"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = admin.get(&format!("/api/units/999999/{to_scene}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let unplaced = admin.create_unit("P-23", &[]).await;
    let (status, body) = admin
        .get(&format!("/api/units/{unplaced}/{to_scene}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("position of unit P-23"));
    app.stop().await;

    // Without a map there are no roads to route on.
    let plain = spawn_app().await;
    let admin = plain.admin().await;
    let unit = admin.create_unit("P-24", &[]).await;
    let (status, body) = admin.get(&format!("/api/units/{unit}/{to_scene}")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("no_map")),
        "{body}"
    );
    plain.stop().await;
}

#[tokio::test]
async fn response_plan_is_filled_with_the_units_that_arrive_first() {
    let app = spawn_app_with(|c| {
        c.response_plans = vec![dispatch_server::domain::ResponsePlan {
            kind: "assault".into(),
            priorities: Some(vec![0]),
            units: 2,
            capabilities: vec!["patrol".into()],
        }];
    })
    .await;
    let admin = app.admin().await;
    let mut units = Vec::new();
    for (call_sign, north) in [("P-41", 600.0), ("P-42", 100.0), ("P-43", 300.0)] {
        let mut d = admin
            .unit_with_device(&app.fingerprint, call_sign, &["patrol"])
            .await;
        wait_connected(&mut d).await;
        d.client.location(north_of_scene(north)).await.unwrap();
        units.push(d);
    }
    wait_positions(&admin, 3).await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "assault", "priority": 0, "lat": SCENE.0, "lon": SCENE.1 }),
        )
        .await;
    assert_eq!(
        incident["required_capabilities"],
        json!(["patrol"]),
        "the plan's capabilities apply"
    );
    let id = incident["id"].as_i64().unwrap();
    let (_, rec) = admin
        .get(&format!("/api/incidents/{id}/recommendations?count=1"))
        .await;
    assert_eq!(rec["plan"]["units"], 2, "{rec}");
    assert_eq!(
        rec["proposed"],
        json!([units[1].unit_id, units[2].unit_id]),
        "{rec}"
    );

    let (status, dispatched) = admin
        .post(&format!("/api/incidents/{id}/dispatch-plan"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dispatched}");
    assert_eq!(
        dispatched["orders"].as_array().unwrap().len(),
        2,
        "{dispatched}"
    );
    for d in units.iter_mut().skip(1) {
        let order = d
            .wait_for("plan order", |e| match e {
                Event::Order(o) => Some(o.order.incident.id),
                _ => None,
            })
            .await;
        assert_eq!(order, id);
    }
    assert!(units[0].client.orders().await.unwrap().is_empty());
    // The plan is fulfilled: dispatching it again (Alt+D pressed twice) sends nobody more,
    // although P-41 is still available, and says who was sent.
    let (status, body) = admin
        .post(&format!("/api/incidents/{id}/dispatch-plan"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "plan_fulfilled");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("P-42") && message.contains("P-43"),
        "{message}"
    );
    let (_, orders) = admin.get(&format!("/api/incidents/{id}/assignments")).await;
    assert_eq!(orders.as_array().unwrap().len(), 2, "{orders}");
    assert!(units[0].client.orders().await.unwrap().is_empty());
    app.stop().await;
}

/// Many plan dispatches of one incident at the same moment (two operators, a double key
/// press) send exactly the plan's units, however they interleave.
#[tokio::test]
async fn racing_plan_dispatches_never_exceed_the_plan() {
    let app = spawn_app_with(|c| {
        c.response_plans = vec![dispatch_server::domain::ResponsePlan {
            kind: "assault".into(),
            priorities: None,
            units: 2,
            capabilities: vec!["patrol".into()],
        }];
    })
    .await;
    let admin = app.admin().await;
    let mut units = Vec::new();
    for (n, north) in [100.0, 200.0, 300.0, 400.0, 500.0].into_iter().enumerate() {
        let mut d = admin
            .unit_with_device(&app.fingerprint, &format!("P-5{n}"), &["patrol"])
            .await;
        wait_connected(&mut d).await;
        d.client.location(north_of_scene(north)).await.unwrap();
        units.push(d);
    }
    wait_positions(&admin, units.len()).await;
    for round in 0..5 {
        let (_, incident) = admin
            .post(
                "/api/incidents",
                json!({ "kind": "assault", "priority": 1, "lat": SCENE.0, "lon": SCENE.1 }),
            )
            .await;
        let id = incident["id"].as_i64().unwrap();
        let answers = futures_util::future::join_all((0..6).map(|_| {
            let admin = admin.clone();
            async move {
                admin
                    .post(&format!("/api/incidents/{id}/dispatch-plan"), json!({}))
                    .await
            }
        }))
        .await;
        for (status, body) in &answers {
            assert!(
                *status == StatusCode::CREATED
                    || (*status == StatusCode::CONFLICT
                        && ["plan_fulfilled", "no_unit_available"]
                            .contains(&body["error"]["code"].as_str().unwrap_or(""))),
                "round {round}: {status} {body}"
            );
        }
        let (_, orders) = admin.get(&format!("/api/incidents/{id}/assignments")).await;
        assert_eq!(
            orders.as_array().unwrap().len(),
            2,
            "round {round}: {answers:?}"
        );
        // Free the units for the next round.
        for order in orders.as_array().unwrap() {
            let (status, body) = admin
                .post(
                    &format!("/api/orders/{}/cancel", order["id"]),
                    json!({ "reason": "next round" }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    app.stop().await;
}

/// Enrols `unit_id` again, as for a replaced tablet, and starts the new tablet's client.
async fn reenrol(app: &dispatch_tests::TestApp, admin: &Operator, unit_id: i64) -> Device {
    let code = admin.enrolment_code(unit_id).await;
    let trust = field_client::Trust::pin(&app.fingerprint).unwrap();
    let credential = field_client::enroll(&app.base, &trust, &code, Some("replacement"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    credential.save(dir.path()).unwrap();
    Device::start(dir).await
}

/// A tablet replaced mid-incident: the new one receives the unit's active orders on its first
/// sync (an accepted order as accepted, an undecided one to decide), and the officer carries on
/// from it.
#[tokio::test]
async fn a_replaced_tablet_receives_the_units_active_orders() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut old = admin
        .unit_with_device(&app.fingerprint, "P-61", &["patrol"])
        .await;
    let unit = old.unit_id;
    let (incident, order) = admin.dispatch_to(unit, "Mannerheimintie 1").await;
    old.wait_for("the order", |e| matches!(e, Event::Order(_)).then_some(()))
        .await;
    let accepted = old.client.accept(order).await.unwrap();
    done(&mut old, &accepted).await;

    // The tablet breaks; the unit is enrolled on a new one.
    drop(old.crash().await);
    let mut new = reenrol(&app, &admin, unit).await;
    let received = new
        .wait_for("the order on the new tablet", |e| match e {
            Event::Order(o) => Some(o.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received.order.order_id, order);
    assert_eq!(received.order.incident.id, incident);
    assert!(received.order.accepted);
    assert_eq!(
        received.decision,
        Some(field_client::inbox::Decision::Accepted)
    );
    let on_the_way = new
        .client
        .status(ReportedStatus::EnRoute, Some(order))
        .await
        .unwrap();
    done(&mut new, &on_the_way).await;
    let (_, unit_now) = admin.get(&format!("/api/units/{unit}")).await;
    assert_eq!(unit_now["status"], "en_route", "{unit_now}");
    let (_, moved) = admin.get(&format!("/api/orders/{order}")).await;
    assert_eq!(moved["state"], "accepted");
    assert_eq!(moved["device_id"], new.device_id);
    let kinds = admin.timeline_kinds(incident).await;
    assert!(kinds.contains(&"order_transferred".to_owned()), "{kinds:?}");

    // An order still undecided when its tablet was replaced is decided on the new one.
    let mut second = admin
        .unit_with_device(&app.fingerprint, "P-62", &["patrol"])
        .await;
    let other = second.unit_id;
    drop(second.crash().await);
    let (_, waiting) = admin.dispatch_to(other, "Aleksanterinkatu 1").await;
    second = reenrol(&app, &admin, other).await;
    let received = second
        .wait_for("the undecided order on the new tablet", |e| match e {
            Event::Order(o) => Some(o.clone()),
            _ => None,
        })
        .await;
    assert_eq!(received.order.order_id, waiting);
    assert!(!received.order.accepted);
    assert_eq!(received.decision, None);
    let accepted = second.client.accept(waiting).await.unwrap();
    done(&mut second, &accepted).await;
    admin.wait_order_state(waiting, "accepted").await;
    app.stop().await;
}

/// Polls unit `unit_id` until `pick` holds for it.
async fn unit_where(
    admin: &Operator,
    unit_id: i64,
    what: &str,
    pick: impl Fn(&serde_json::Value) -> bool,
) {
    within(what, async {
        loop {
            let (_, unit) = admin.get(&format!("/api/units/{unit_id}")).await;
            if pick(&unit) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The call signs recommended for a new incident at the scene.
async fn recommended(admin: &Operator) -> Vec<String> {
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 2, "lat": SCENE.0, "lon": SCENE.1 }),
        )
        .await;
    let (_, rec) = admin
        .get(&format!(
            "/api/incidents/{}/recommendations?count=5",
            incident["id"]
        ))
        .await;
    rec["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sign"].as_str().unwrap().to_owned())
        .collect()
}

/// A tablet that goes offline past `link_lost_secs` marks its unit as without a link: not
/// recommended, its escalation says the tablet is offline; when it comes back the mark goes,
/// the order is delivered and the missing-receipt alert leaves by itself.
#[tokio::test]
async fn a_unit_whose_tablet_is_offline_is_marked_and_not_recommended() {
    let app = spawn_app_with(|c| {
        c.link_lost_secs = 1;
        c.escalation.receipt_secs = [1; 5];
        c.escalation.sweep_millis = 100;
    })
    .await;
    let admin = app.admin().await;
    let mut near = admin
        .unit_with_device(&app.fingerprint, "P-71", &["patrol"])
        .await;
    let mut far = admin
        .unit_with_device(&app.fingerprint, "P-72", &["patrol"])
        .await;
    wait_connected(&mut near).await;
    wait_connected(&mut far).await;
    near.client.location(north_of_scene(100.0)).await.unwrap();
    far.client.location(north_of_scene(900.0)).await.unwrap();
    wait_positions(&admin, 2).await;
    assert_eq!(recommended(&admin).await, ["P-71", "P-72"]);

    // The near tablet goes dark: past 1 s its unit is marked and left out.
    let unit = near.unit_id;
    let dir = near.crash().await;
    unit_where(&admin, unit, "the lost link to be recorded", |u| {
        u["link_lost_at_ms"].is_i64()
    })
    .await;
    assert_eq!(recommended(&admin).await, ["P-72"]);
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "unit_link_lost" && e["unit_id"] == unit),
        "{audit}"
    );

    // Ordered anyway, the order escalates saying the tablet is offline.
    let (_, order) = admin.dispatch_to(unit, "Senaatintori").await;
    let alert = within("the missing-receipt alert", async {
        loop {
            let (_, alerts) = admin.get("/api/alerts").await;
            if let Some(a) = alerts
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["order_id"] == order)
            {
                return a.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(alert["detail"]["stage"], "no_receipt");
    assert_eq!(alert["detail"]["device_connected"], false);

    // Back online: the mark goes, the order arrives and the alert leaves without anyone.
    let mut back = Device::start(dir).await;
    back.wait_for("the order", |e| matches!(e, Event::Order(_)).then_some(()))
        .await;
    unit_where(&admin, unit, "the link to be restored", |u| {
        u["link_lost_at_ms"].is_null()
    })
    .await;
    within("the alert to leave", async {
        loop {
            let (_, alerts) = admin.get("/api/alerts").await;
            if !alerts
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["order_id"] == order)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "unit_link_restored" && e["unit_id"] == unit),
        "{audit}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_unit_s_trail_is_drawn_along_the_roads_it_drove() {
    let app = spawn_app_with(|c| {
        c.map = Some(helsinki_map());
        c.trail_sample_secs = 0;
    })
    .await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-31", &["patrol"])
        .await;
    wait_connected(&mut device).await;
    // Two fixes at the ends of a real drive of several streets, as a car reporting rarely sends.
    let graph = dispatch_geo::road::import_pbf(&helsinki_map()).unwrap();
    let part = graph.largest_strongly_connected();
    let path = part
        .iter()
        .flat_map(|&a| part.iter().map(move |&b| (a, b)))
        .filter_map(|(a, b)| graph.fastest_path(a, b))
        .find(|p| p.nodes.len() >= 5 && p.drive_ms > 20_000.0)
        .expect("a drive through several junctions");
    // Halfway along the first and the last street of the drive, as a GPS fix would be.
    let halfway = |a: u32, b: u32| {
        let (p, q) = (graph.node_position(a), graph.node_position(b));
        ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0)
    };
    let n = path.nodes.len();
    let ends = [
        halfway(path.nodes[0], path.nodes[1]),
        halfway(path.nodes[n - 2], path.nodes[n - 1]),
    ];
    for (k, (lat, lon)) in ends.into_iter().enumerate() {
        let fix = Location {
            lat,
            lon,
            accuracy_m: Some(5.0),
            heading_deg: None,
            speed_mps: None,
            fix_time_ms: field_client::unix_ms() + i64::try_from(k).unwrap(),
        };
        device.client.location(fix).await.unwrap();
        wait_position_at(&admin, device.unit_id, (lat, lon)).await;
    }

    let (status, line) = admin
        .get(&format!("/api/units/{}/trail/roads", device.unit_id))
        .await;
    assert_eq!(status, StatusCode::OK, "{line}");
    let points: Vec<(f64, f64)> = line["coordinates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[1].as_f64().unwrap(), p[0].as_f64().unwrap()))
        .collect();
    assert!(points.len() > 2, "the drive's junctions are drawn: {line}");
    let near = |a: (f64, f64), b: (f64, f64)| dispatch_geo::haversine_m(a.0, a.1, b.0, b.1) < 1.0;
    assert!(
        near(points[0], ends[0]) && near(points[points.len() - 1], ends[1]),
        "{line}"
    );
    let length: f64 = points
        .windows(2)
        .map(|w| dispatch_geo::haversine_m(w[0].0, w[0].1, w[1].0, w[1].1))
        .sum();
    let straight = dispatch_geo::haversine_m(ends[0].0, ends[0].1, ends[1].0, ends[1].1);
    assert!(
        length > straight,
        "along the roads, not across the blocks: {length} m vs {straight} m"
    );
    // The plain trail has just the two fixes.
    let (_, fixes) = admin
        .get(&format!("/api/units/{}/trail", device.unit_id))
        .await;
    assert_eq!(fixes.as_array().unwrap().len(), 2, "{fixes}");
    app.stop().await;
}

async fn wait_position_at(admin: &Operator, unit_id: i64, (lat, lon): (f64, f64)) {
    within("the fix to be stored", async {
        loop {
            let (_, unit) = admin.get(&format!("/api/units/{unit_id}")).await;
            if unit["position"]["lat"].as_f64() == Some(lat)
                && unit["position"]["lon"].as_f64() == Some(lon)
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}
