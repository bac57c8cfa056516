//! The console's server side: the live channel (session, origin, snapshot, deltas, positions),
//! response-time statistics, the incident export, the admin device list and revocation, and
//! how the console's files are served (CSP, SPA fallback, API 404s).

use dispatch_protocol::{Location, ReportedStatus};
use dispatch_tests::{
    console_socket, next_json_matching, session_cookie, spawn_app, Device, Operator, ADMIN,
    ADMIN_PASSWORD,
};
use field_client::Event;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn at(lat: f64, lon: f64) -> Location {
    Location {
        lat,
        lon,
        accuracy_m: Some(5.0),
        heading_deg: None,
        speed_mps: None,
        fix_time_ms: field_client::unix_ms(),
    }
}

async fn order_received(device: &mut Device) -> i64 {
    device
        .wait_for("order", |e| match e {
            Event::Order(o) => Some(o.order.order_id),
            _ => None,
        })
        .await
}

fn is_event(kind: &'static str) -> impl FnMut(&Value) -> bool {
    move |v| v["type"] == "event" && v["event"]["kind"] == kind
}

#[tokio::test]
async fn live_channel_sends_a_snapshot_then_deltas() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-31", &["patrol"])
        .await;
    device.client.location(at(60.17, 24.94)).await.unwrap();
    let (_, pre) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "theft", "priority": 3, "lat": 60.16, "lon": 24.93 }),
        )
        .await;

    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let origin = format!("https://{}", app.addr);
    let mut ws = console_socket(app.addr, &app.fingerprint, Some(&cookie), Some(&origin))
        .await
        .unwrap();
    let snapshot = next_json_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot").await;
    assert_eq!(snapshot["operator"]["username"], ADMIN);
    assert_eq!(snapshot["operator"]["role"], "admin");
    assert!(snapshot["cursor"].as_i64().unwrap() > 0);
    let units = snapshot["units"].as_array().unwrap();
    assert!(units.iter().any(|u| u["call_sign"] == "P-31"), "{snapshot}");
    let incidents = snapshot["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["id"], pre["id"]);

    // A new incident and an order arrive as deltas carrying the current objects.
    let (incident_id, order_id) = admin.dispatch_to(device.unit_id, "Mannerheimintie 1").await;
    let created =
        next_json_matching(&mut ws, "incident_created", is_event("incident_created")).await;
    assert_eq!(created["incident"]["id"], incident_id);
    let queued = next_json_matching(&mut ws, "order_queued", is_event("order_queued")).await;
    assert_eq!(queued["orders"][0]["id"], order_id);
    assert_eq!(queued["unit"]["call_sign"], "P-31");

    // The field client receives and accepts: the console sees the order's new state.
    assert_eq!(order_received(&mut device).await, order_id);
    device.client.accept(order_id).await.unwrap();
    let accepted = next_json_matching(&mut ws, "order_accepted", is_event("order_accepted")).await;
    let order = accepted["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == order_id)
        .unwrap();
    assert_eq!(order["state"], "accepted");

    // Movements arrive as position deltas.
    device.client.location(at(60.1712, 24.9415)).await.unwrap();
    let moved = next_json_matching(&mut ws, "positions", |v| {
        v["type"] == "positions"
            && v["positions"].as_array().unwrap().iter().any(|p| {
                p["unit_id"] == device.unit_id
                    && (p["lat"].as_f64().unwrap() - 60.1712).abs() < 1e-9
            })
    })
    .await;
    assert!(moved["positions"][0]["received_ms"].as_i64().unwrap() > 0);
    app.stop().await;
}

#[tokio::test]
async fn live_channel_needs_a_session_and_our_own_origin() {
    let app = spawn_app().await;
    let err = console_socket(app.addr, &app.fingerprint, None, None)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("401"), "{err:#}");

    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let err = console_socket(
        app.addr,
        &app.fingerprint,
        Some(&cookie),
        Some("https://evil.example"),
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("403"), "{err:#}");

    let bad = console_socket(
        app.addr,
        &app.fingerprint,
        Some("dispatch_session=not-a-session"),
        None,
    )
    .await
    .unwrap_err();
    assert!(format!("{bad:#}").contains("401"), "{bad:#}");
    app.stop().await;
}

#[tokio::test]
async fn response_times_and_export_follow_the_timeline() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-41", &["patrol"])
        .await;
    let (incident_id, order_id) = admin
        .dispatch_to(device.unit_id, "Kalevankatu 3, \"B\"")
        .await;
    assert_eq!(order_received(&mut device).await, order_id);
    device.client.accept(order_id).await.unwrap();
    admin.wait_order_state(order_id, "accepted").await;
    device
        .client
        .status(ReportedStatus::OnScene, Some(order_id))
        .await
        .unwrap();
    dispatch_tests::within("on scene", async {
        while !admin
            .timeline_kinds(incident_id)
            .await
            .contains(&"unit_on_scene".to_owned())
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    // A second incident never dispatched: counted, but in no step.
    admin
        .post(
            "/api/incidents",
            json!({ "kind": "theft", "priority": 3, "lat": 60.16, "lon": 24.93 }),
        )
        .await;

    let (status, stats) = admin.get("/api/stats/response-times").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["all"]["incidents"], 2);
    assert_eq!(stats["all"]["call_to_dispatch"]["count"], 1);
    assert_eq!(stats["all"]["dispatch_to_acknowledgement"]["count"], 1);
    assert_eq!(stats["all"]["acknowledgement_to_arrival"]["count"], 1);
    assert_eq!(stats["all"]["call_to_arrival"]["count"], 1);
    let by_priority = stats["by_priority"].as_array().unwrap();
    assert_eq!(by_priority.len(), 2);
    assert_eq!(by_priority[0]["priority"], 1);
    assert_eq!(by_priority[0]["call_to_arrival"]["count"], 1);
    assert!(by_priority[0]["call_to_arrival"]["p90_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(by_priority[1]["priority"], 3);
    assert_eq!(by_priority[1]["call_to_dispatch"]["p50_s"], Value::Null);

    let (status, body) = admin
        .patch(
            &format!("/api/incidents/{incident_id}"),
            json!({ "caller": "Kim", "callback": "010-1234-5678", "notes": "gate code 1234" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, rows) = admin.get("/api/export/incidents?format=json").await;
    assert_eq!(status, StatusCode::OK);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["incident_id"] == incident_id)
        .unwrap();
    assert_eq!(row["units"], json!(["P-41"]));
    assert_eq!(
        (&row["caller"], &row["callback"], &row["notes"]),
        (
            &json!("Kim"),
            &json!("010-1234-5678"),
            &json!("gate code 1234")
        )
    );
    // Every milestone the response reached has its time, in order; the ones it did not are null.
    let times: Vec<i64> = [
        "created_at_ms",
        "dispatched_at_ms",
        "delivered_at_ms",
        "acknowledged_at_ms",
        "accepted_at_ms",
        "arrived_at_ms",
    ]
    .iter()
    .map(|k| row[k].as_i64().unwrap_or_else(|| panic!("no {k}: {row}")))
    .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{row}");
    assert_eq!(
        (
            &row["en_route_at_ms"],
            &row["cleared_at_ms"],
            &row["closed_at_ms"]
        ),
        (&Value::Null, &Value::Null, &Value::Null)
    );

    let res = admin
        .http
        .get(format!("{}/api/export/incidents?format=csv", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    // Named after the window, readably: incidents_2026-12-04T0341Z_to_2026-12-05T0341Z.csv
    let name = res.headers()["content-disposition"].to_str().unwrap();
    let name = name
        .strip_prefix("attachment; filename=\"incidents_")
        .and_then(|n| n.strip_suffix(".csv\""))
        .unwrap_or_else(|| panic!("{name}"));
    let (from, until) = name.split_once("_to_").unwrap();
    for t in [from, until] {
        assert!(
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H%MZ").is_ok(),
            "{t}"
        );
    }
    let csv = res.text().await.unwrap();
    let mut lines = csv.split("\r\n");
    assert!(lines
        .next()
        .unwrap()
        .starts_with("incident_id,kind,priority,"));
    let line = csv
        .split("\r\n")
        .find(|l| l.starts_with(&format!("{incident_id},")))
        .unwrap();
    assert!(line.contains("\"Kalevankatu 3, \"\"B\"\"\""), "{line}");
    assert!(line.ends_with(",P-41"), "{line}");
    assert!(
        line.contains(",Kim,010-1234-5678,gate code 1234,"),
        "{line}"
    );

    let (status, body) = admin.get("/api/export/incidents?format=xml").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("format"));
    let (status, body) = admin
        .get("/api/stats/response-times?since_ms=10&until_ms=5")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("since_ms"));

    // Plain operators see neither.
    let op = admin
        .add_user("op1", "copper lantern meadow 62", "operator")
        .await;
    assert_eq!(
        op.get("/api/stats/response-times").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        op.get("/api/export/incidents").await.0,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_list_users_and_devices_and_revoke_a_device() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-51", &["patrol"])
        .await;
    device
        .wait_for("connected", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await;

    let (status, users) = admin.get("/api/users").await;
    assert_eq!(status, StatusCode::OK);
    assert!(users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["username"] == ADMIN));
    assert!(users[0].get("password_hash").is_none());

    let (status, devices) = admin.get("/api/devices").await;
    assert_eq!(status, StatusCode::OK);
    let listed = &devices.as_array().unwrap()[0];
    assert_eq!(listed["id"], device.device_id);
    assert_eq!(listed["call_sign"], "P-51");
    assert_eq!(listed["revoked_at_ms"], Value::Null);

    let path = format!("/api/devices/{}/revoke", device.device_id);
    let (status, revoked) = admin.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at_ms"].as_i64().is_some());
    // The tablet is cut off for good.
    device
        .wait_for("revocation", |e| match e {
            Event::Fatal { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    let (status, again) = admin.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(
        admin.post("/api/devices/999/revoke", json!({})).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, unit) = admin.get(&format!("/api/units/{}", device.unit_id)).await;
    assert_eq!(unit["device_id"], Value::Null);

    let sup = admin
        .add_user("sup1", "violet engine cascade 39", "supervisor")
        .await;
    assert_eq!(sup.get("/api/users").await.0, StatusCode::FORBIDDEN);
    assert_eq!(sup.get("/api/devices").await.0, StatusCode::FORBIDDEN);
    assert_eq!(sup.post(&path, json!({})).await.0, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn console_pages_carry_a_strict_policy_and_api_paths_stay_json() {
    let app = spawn_app().await;
    let anon = Operator::anonymous(&app.base);
    let root = anon
        .http
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap();
    let csp = root.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"));
    let root_status = root.status();
    let root_body = root.text().await.unwrap();
    if root_status == StatusCode::OK {
        // Built: an unknown console route gets the same page (the browser routes it).
        assert!(root_body.contains("<div id=\"app\">"), "{root_body}");
        assert!(
            !root_body.contains("<script>"),
            "inline script in {root_body}"
        );
        let deep = anon
            .http
            .get(format!("{}/incidents/42", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(deep.status(), StatusCode::OK);
        assert_eq!(deep.text().await.unwrap(), root_body);
    } else {
        assert_eq!(root_status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            root_body.contains("Console not built; run make"),
            "{root_body}"
        );
    }
    let missing = anon
        .http
        .get(format!("{}/assets/nothing-here.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let (status, body) = anon.get("/api/no-such-route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn logging_out_closes_the_live_channel() {
    let app = spawn_app().await;
    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let mut ws = console_socket(app.addr, &app.fingerprint, Some(&cookie), None)
        .await
        .unwrap();
    next_json_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot").await;
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let res = http
        .post(format!("{}/api/logout", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Within a heartbeat (10 s) the server notices and closes with "session ended".
    let (code, reason) = dispatch_tests::expect_close(&mut ws).await;
    assert_eq!(code, 4001, "{reason}");
    assert!(reason.contains("session"), "{reason}");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_edits_a_unit_with_a_configured_kind_and_every_console_sees_it() {
    let app = dispatch_tests::spawn_app_with(|c| {
        c.unit_kinds = vec!["patrol_car".into(), "motorcycle".into()];
    })
    .await;
    let admin = app.admin().await;
    let (status, kinds) = admin.get("/api/units/kinds").await;
    assert_eq!(status, StatusCode::OK, "{kinds}");
    assert_eq!(kinds["kinds"], json!(["patrol_car", "motorcycle"]));
    let unit = admin.create_unit("P-41", &["patrol"]).await;
    admin.create_unit("P-42", &[]).await;

    // A kind the configuration does not list is named, with the ones it does.
    let (status, body) = admin
        .post("/api/units", json!({ "call_sign": "B-1", "kind": "boat" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("`kind`") && message.contains("patrol_car, motorcycle"),
        "{message}"
    );

    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let origin = format!("https://{}", app.addr);
    let mut ws = console_socket(app.addr, &app.fingerprint, Some(&cookie), Some(&origin))
        .await
        .unwrap();
    next_json_matching(&mut ws, "snapshot", |v| v["type"] == "snapshot").await;

    let edit = json!({ "call_sign": "M-41", "kind": "motorcycle", "capabilities": ["patrol", "traffic"],
                       "home_station": "Pasila" });
    let (status, edited) = admin.put(&format!("/api/units/{unit}"), edit.clone()).await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(
        (
            &edited["call_sign"],
            &edited["kind"],
            &edited["home_station"]
        ),
        (&json!("M-41"), &json!("motorcycle"), &json!("Pasila"))
    );
    assert_eq!(edited["capabilities"], json!(["patrol", "traffic"]));
    let delta = next_json_matching(&mut ws, "unit_updated", is_event("unit_updated")).await;
    assert_eq!(delta["unit"]["call_sign"], "M-41", "{delta}");
    let (_, listed) = admin.get(&format!("/api/units/{unit}")).await;
    assert_eq!(listed["kind"], "motorcycle");

    // Refusals change nothing: another unit's call sign, a bad kind, an unknown unit, a role
    // that may not.
    let (status, body) = admin
        .put(
            &format!("/api/units/{unit}"),
            json!({ "call_sign": "P-42", "kind": "patrol_car" }),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("duplicate")),
        "{body}"
    );
    let (status, _) = admin
        .put(
            &format!("/api/units/{unit}"),
            json!({ "call_sign": "M-41", "kind": "boat" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = admin.put("/api/units/999999", edit.clone()).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "{body}"
    );
    let operator = admin
        .add_user("olli", "amber kettle drifting 58", "operator")
        .await;
    assert_eq!(
        operator.put(&format!("/api/units/{unit}"), edit).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(operator.get("/api/units/kinds").await.0, StatusCode::OK);
    let (_, after) = admin.get(&format!("/api/units/{unit}")).await;
    assert_eq!(
        (&after["call_sign"], &after["kind"]),
        (&json!("M-41"), &json!("motorcycle"))
    );

    // The audit keeps what it was and what it became.
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let updated: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "unit_updated")
        .collect();
    assert_eq!(updated.len(), 1, "{audit}");
    assert_eq!(updated[0]["detail"]["before"]["call_sign"], "P-41");
    assert_eq!(updated[0]["detail"]["after"]["kind"], "motorcycle");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_disables_a_unit_which_is_then_neither_dispatched_nor_enrolled() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-61", &["patrol"])
        .await;
    device
        .wait_for("connected", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await;
    let unit = device.unit_id;
    let (incident, order) = admin.dispatch_to(unit, "Mannerheimintie 1").await;

    // Not while it holds an order: the refusal names it, and nothing changes.
    let disable = format!("/api/units/{unit}/disable");
    let (status, body) = admin.post(&disable, json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("orders_active")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("#{order}")),
        "{body}"
    );
    let (_, still) = admin.get(&format!("/api/units/{unit}")).await;
    assert_eq!(still["disabled_at_ms"], Value::Null);
    assert_eq!(still["device_id"], device.device_id);

    let (status, body) = admin
        .post(
            &format!("/api/orders/{order}/cancel"),
            json!({ "reason": "unit going to the workshop" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, disabled) = admin.post(&disable, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert!(disabled["disabled_at_ms"].as_i64().is_some(), "{disabled}");
    assert_eq!(disabled["status"], "out_of_service");
    assert_eq!(disabled["device_id"], Value::Null);
    // Its tablet is cut off with the revocation code.
    let code = device
        .wait_for("revocation", |e| match e {
            Event::Fatal { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(code, dispatch_protocol::close::REVOKED);

    // Neither dispatched nor enrolled while disabled; each refusal names the unit.
    let (status, body) = admin
        .post(
            &format!("/api/incidents/{incident}/assignments"),
            json!({ "unit_id": unit }),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("unit_disabled")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("P-61"));
    let enrol = format!("/api/units/{unit}/enrolment-code");
    let (status, body) = admin.post(&enrol, json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("unit_disabled")),
        "{body}"
    );

    // Asking again changes nothing; other roles may not; unknown units are named.
    let (status, again) = admin.post(&disable, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["disabled_at_ms"], disabled["disabled_at_ms"]);
    let operator = admin
        .add_user("olli", "amber kettle drifting 58", "operator")
        .await;
    assert_eq!(
        operator.post(&disable, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = admin.post("/api/units/999999/disable", json!({})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "{body}"
    );

    // Enabled again it stays out of service until a tablet is enrolled and reports in.
    let (status, enabled) = admin
        .post(&format!("/api/units/{unit}/enable"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    assert_eq!(enabled["disabled_at_ms"], Value::Null);
    assert_eq!(enabled["status"], "out_of_service");
    assert_eq!(admin.post(&enrol, json!({})).await.0, StatusCode::CREATED);

    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["unit_id"] == unit)
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("unit_"))
        .collect();
    assert_eq!(
        kinds,
        ["unit_created", "unit_disabled", "unit_enabled"],
        "{audit}"
    );
    app.stop().await;
}
