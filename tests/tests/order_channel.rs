//! The order channel beyond the basics: every delivery state up to the officer's
//! acknowledgement, cancel and expiry, the escalation ladder with the SMS fallback against a fake
//! gateway, console alerts, texts both ways, CAP broadcasts tracked per recipient, idempotency
//! keys on dispatcher actions and the in-flight window. Devices here are raw sockets, so the
//! test decides exactly which frames are sent and when.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispatch_server::config::Escalation;
use dispatch_tests::{
    raw_channel, send_text, spawn_app, spawn_app_with, within, Operator, RawSocket, TestApp,
};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A device driven frame by frame over a raw socket.
struct RawDevice {
    ws: RawSocket,
    unit_id: i64,
    actions: u32,
}

impl RawDevice {
    /// Creates a unit (with `home_station`), enrols it and says hello.
    async fn enrol(app: &TestApp, admin: &Operator, call_sign: &str, station: &str) -> Self {
        Self::enrol_with_clock(app, admin, call_sign, station, None).await
    }

    /// Like [`RawDevice::enrol`]; with `clock_skew_ms`, `hello` carries the device's clock,
    /// that far from the real time.
    async fn enrol_with_clock(
        app: &TestApp,
        admin: &Operator,
        call_sign: &str,
        station: &str,
        clock_skew_ms: Option<i64>,
    ) -> Self {
        let (status, unit) = admin
            .post(
                "/api/units",
                json!({ "call_sign": call_sign, "kind": "patrol_car", "capabilities": ["patrol"], "home_station": station }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{unit}");
        let unit_id = unit["id"].as_i64().unwrap();
        let code = admin.enrolment_code(unit_id).await;
        let trust = field_client::Trust::pin(&app.fingerprint).unwrap();
        let credential = field_client::enroll(&app.base, &trust, &code, Some(call_sign))
            .await
            .unwrap();
        let mut ws = raw_channel(app.addr, &app.fingerprint).await.unwrap();
        let mut hello = json!({ "type": "hello", "protocol": 1, "device_id": credential.device_id,
            "token": credential.token, "ack_floor": 0 });
        if let Some(skew) = clock_skew_ms {
            hello["clock_ms"] = json!(field_client::unix_ms() + skew);
        }
        send_text(&mut ws, &hello.to_string()).await;
        let mut device = Self {
            ws,
            unit_id,
            actions: 0,
        };
        let welcome = device.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let pins = device.next().await;
        assert_eq!(pins["type"], "pins", "{pins}");
        device
    }

    /// The next JSON frame from the server.
    async fn next(&mut self) -> Value {
        within("a frame from the server", async {
            loop {
                let frame = self.ws.next().await.expect("socket ended").unwrap();
                if let Ok(text) = frame.into_text() {
                    if !text.is_empty() {
                        return serde_json::from_str(&text).unwrap();
                    }
                }
            }
        })
        .await
    }

    /// The next delivery; returns `(seq, message_id, body)`.
    async fn delivery(&mut self) -> (u64, String, Value) {
        let frame = self.next().await;
        assert_eq!(frame["type"], "deliver", "{frame}");
        (
            frame["seq"].as_u64().unwrap(),
            frame["message_id"].as_str().unwrap().to_owned(),
            frame["body"].clone(),
        )
    }

    async fn send(&mut self, frame: Value) {
        send_text(&mut self.ws, &frame.to_string()).await;
    }

    /// Sends an action frame (with a fresh action id merged in) and returns the reply.
    async fn act(&mut self, mut frame: Value) -> Value {
        self.actions += 1;
        frame["action_id"] = json!(format!("a-{}", self.actions));
        self.send(frame).await;
        self.next().await
    }

    async fn position(&mut self, lat: f64, lon: f64) {
        self.send(
            json!({ "type": "location", "lat": lat, "lon": lon, "accuracy_m": 5.0,
            "fix_time_ms": field_client::unix_ms() }),
        )
        .await;
    }
}

async fn create_incident(admin: &Operator, priority: u8) -> i64 {
    let (status, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": priority, "lat": 60.1695, "lon": 24.9524,
                "address": "Senaatintori 1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    incident["id"].as_i64().unwrap()
}

async fn assign(admin: &Operator, incident_id: i64, unit_id: i64) -> i64 {
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{incident_id}/assignments"),
            json!({ "unit_id": unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order["id"].as_i64().unwrap()
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_order_moves_through_every_state_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = RawDevice::enrol(&app, &admin, "P-10", "Pasila").await;
    let incident = create_incident(&admin, 1).await;
    let order_id = assign(&admin, incident, device.unit_id).await;

    let (seq, message_id, body) = device.delivery().await;
    assert_eq!(body["kind"], "order");
    assert_eq!(message_id, format!("order-{order_id}"));
    device.send(json!({ "type": "ack", "upto": seq })).await;
    admin.wait_order_state(order_id, "delivered").await;

    let reply = device
        .act(json!({ "type": "displayed", "message_id": message_id }))
        .await;
    assert_eq!(reply["type"], "done", "{reply}");
    admin.wait_order_state(order_id, "displayed").await;
    // The same action resent is answered done and applied once.
    device
        .send(json!({ "type": "displayed", "action_id": "a-1", "message_id": message_id }))
        .await;
    assert_eq!(device.next().await["type"], "done");

    let reply = device
        .act(json!({ "type": "acknowledge", "message_id": message_id }))
        .await;
    assert_eq!(reply["type"], "done", "{reply}");
    let order = admin.wait_order_state(order_id, "acknowledged").await;
    assert!(
        order["acknowledged_at_ms"].as_i64().unwrap() >= order["displayed_at_ms"].as_i64().unwrap()
    );

    let reply = device
        .act(json!({ "type": "accept", "order_id": order_id }))
        .await;
    assert_eq!(reply["type"], "done", "{reply}");
    admin.wait_order_state(order_id, "accepted").await;
    // A late display changes nothing.
    let reply = device
        .act(json!({ "type": "displayed", "message_id": message_id }))
        .await;
    assert_eq!(reply["type"], "done");
    let kinds = admin.timeline_kinds(incident).await;
    for (kind, times) in [
        ("order_queued", 1),
        ("order_delivered", 1),
        ("order_displayed", 1),
        ("order_acknowledged", 1),
        ("order_accepted", 1),
    ] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            times,
            "{kind} in {kinds:?}"
        );
    }
    // A message the device never got is refused and changes nothing.
    let reply = device
        .act(json!({ "type": "acknowledge", "message_id": "order-999" }))
        .await;
    assert_eq!(reply["code"], "unknown_message", "{reply}");
}

#[tokio::test]
async fn cancelling_tells_the_device_and_releases_the_unit() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = RawDevice::enrol(&app, &admin, "P-11", "Pasila").await;
    let incident = create_incident(&admin, 2).await;
    let order_id = assign(&admin, incident, device.unit_id).await;
    let (seq, _, _) = device.delivery().await;
    device.send(json!({ "type": "ack", "upto": seq })).await;

    let (status, body) = admin
        .post(
            &format!("/api/orders/{order_id}/cancel"),
            json!({ "reason": " " }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, order) = admin
        .post(
            &format!("/api/orders/{order_id}/cancel"),
            json!({ "reason": "caller withdrew the report" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["state"], "cancelled");
    assert_eq!(order["end_reason"], "caller withdrew the report");

    let (_, message_id, body) = device.delivery().await;
    assert_eq!(message_id, format!("cancel-{order_id}"));
    assert_eq!(body["kind"], "cancel");
    assert_eq!(body["order_id"], order_id);
    assert_eq!(body["reason"], "cancelled");
    let (_, unit) = admin.get(&format!("/api/units/{}", device.unit_id)).await;
    assert_eq!(unit["status"], "available", "{unit}");

    let (status, body) = admin
        .post(
            &format!("/api/orders/{order_id}/cancel"),
            json!({ "reason": "again" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "order_final");
    // Accepting a cancelled order is refused.
    let reply = device
        .act(json!({ "type": "accept", "order_id": order_id }))
        .await;
    assert_eq!(reply["code"], "already_decided", "{reply}");
    let (status, _) = admin
        .post("/api/orders/4242/cancel", json!({ "reason": "x" }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the fake SMS gateway received, and how it should answer.
#[derive(Default)]
struct Gateway {
    received: Vec<Value>,
    failures_left: u32,
}

async fn fake_gateway(failures: u32) -> (String, Arc<Mutex<Gateway>>) {
    use axum::routing::post;
    let shared = Arc::new(Mutex::new(Gateway {
        failures_left: failures,
        ..Gateway::default()
    }));
    let state = shared.clone();
    let app = axum::Router::new().route(
        "/send",
        post(move |axum::Json(body): axum::Json<Value>| {
            let state = state.clone();
            async move {
                let mut g = state.lock().unwrap();
                g.received.push(body);
                if g.failures_left > 0 {
                    g.failures_left -= 1;
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({ "error": "busy" })),
                    );
                }
                let id = format!("gw-{}", g.received.len());
                (StatusCode::OK, axum::Json(json!({ "id": id })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/send"), shared)
}

fn events_of<'a>(timeline: &'a Value, kind: &str) -> Vec<&'a Value> {
    timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[tokio::test]
async fn silent_device_escalates_falls_back_to_sms_and_expires() {
    let (url, gateway) = fake_gateway(1).await;
    let app = spawn_app_with(|c| {
        c.escalation = Escalation {
            receipt_secs: [1; 5],
            acknowledge_secs: [2; 5],
            expire_secs: [4; 5],
            sweep_millis: 100,
        };
        c.sms = Some(
            toml::from_str(&format!("url = \"{url}\"\ntemplate = \"{{call_sign}} go to {{address}} (incident {{incident_id}})\"")).unwrap(),
        );
    })
    .await;
    let admin = app.admin().await;
    // The silent unit: enrolled, then its tablet goes dark.
    let silent = RawDevice::enrol(&app, &admin, "P-20", "Pasila").await;
    let silent_unit = silent.unit_id;
    drop(silent);
    let set = |number: Value| {
        admin
            .http
            .put(format!("{}/api/units/{silent_unit}/sms-number", admin.base))
            .json(&json!({ "sms_number": number }))
            .send()
    };
    assert_eq!(
        set(json!("12ab")).await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        set(json!("+358401234567")).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    // A second unit near the scene, to be proposed instead.
    let mut spare = RawDevice::enrol(&app, &admin, "P-21", "Pasila").await;
    spare.position(60.1700, 24.9520).await;
    wait_until("the spare unit's position", async || {
        let (_, unit) = admin.get(&format!("/api/units/{}", spare.unit_id)).await;
        !unit["position"].is_null()
    })
    .await;

    let incident = create_incident(&admin, 0).await;
    let order_id = assign(&admin, incident, silent_unit).await;
    admin.wait_order_state(order_id, "expired").await;

    let (_, timeline) = admin
        .get(&format!("/api/incidents/{incident}/timeline"))
        .await;
    let escalations = events_of(&timeline, "order_escalated");
    assert_eq!(escalations.len(), 2, "{timeline}");
    let receipt = &escalations[0]["detail"];
    assert_eq!(receipt["stage"], "no_receipt");
    assert_eq!(receipt["fallback"], "sms_queued");
    assert_eq!(receipt["device_connected"], false);
    let ack = &escalations[1]["detail"];
    assert_eq!(ack["stage"], "no_acknowledgement");
    assert_eq!(ack["proposed"]["call_sign"], "P-21", "{ack}");
    assert_eq!(events_of(&timeline, "order_expired").len(), 1);

    // The gateway refused once, then took the message: one fallback, sent on the 2nd attempt.
    wait_until("the SMS to be sent", async || {
        let (_, timeline) = admin
            .get(&format!("/api/incidents/{incident}/timeline"))
            .await;
        !events_of(&timeline, "fallback_sent").is_empty()
    })
    .await;
    let (_, timeline) = admin
        .get(&format!("/api/incidents/{incident}/timeline"))
        .await;
    let sent = events_of(&timeline, "fallback_sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["detail"]["attempts"], 2);
    assert_eq!(sent[0]["detail"]["gateway_ref"], "gw-2");
    {
        let g = gateway.lock().unwrap();
        assert_eq!(g.received.len(), 2);
        assert_eq!(g.received[1]["to"], "+358401234567");
        let text = g.received[1]["text"].as_str().unwrap();
        assert_eq!(
            text,
            format!("P-20 go to Senaatintori 1 (incident {incident})")
        );
    }

    // Both escalations are open alerts until an operator acknowledges them, and the expired
    // order left the incident with nobody: an attention alert of its own.
    let escalations = |alerts: &Value| -> Vec<Value> {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "order_escalated")
            .cloned()
            .collect()
    };
    let (_, all) = admin.get("/api/alerts").await;
    let alerts = escalations(&all);
    assert_eq!(alerts.len(), 2, "{all}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "attention_raised"
                && a["detail"]["reason"] == "order_unreplaced"
                && a["detail"]["order_state"] == "expired"),
        "{all}"
    );
    let first = alerts[0]["event_id"].as_i64().unwrap();
    let (status, acked) = admin
        .post(&format!("/api/alerts/{first}/acknowledge"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    assert_eq!(acked["acknowledged_by"], "admin");
    let (_, again) = admin
        .post(&format!("/api/alerts/{first}/acknowledge"), json!({}))
        .await;
    assert_eq!(again["acknowledged_at_ms"], acked["acknowledged_at_ms"]);
    let (_, open) = admin.get("/api/alerts").await;
    assert_eq!(escalations(&open).len(), 1, "{open}");
    let kinds = admin.timeline_kinds(incident).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "alert_acknowledged").count(),
        1
    );
    let (status, _) = admin
        .post("/api/alerts/999999/acknowledge", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The unit was released when its order expired.
    let (_, unit) = admin.get(&format!("/api/units/{silent_unit}")).await;
    assert_eq!(unit["status"], "available", "{unit}");
}

#[tokio::test]
async fn broadcasts_are_tracked_per_recipient() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut a = RawDevice::enrol(&app, &admin, "K-1", "Kallio").await;
    let mut b = RawDevice::enrol(&app, &admin, "K-2", "Kallio").await;
    let mut c = RawDevice::enrol(&app, &admin, "P-1", "Pasila").await;
    a.position(60.1840, 24.9500).await;
    b.position(60.1600, 24.9400).await;
    c.position(60.1845, 24.9510).await;
    wait_until("three positions", async || {
        let (_, units) = admin.get("/api/units").await;
        units
            .as_array()
            .unwrap()
            .iter()
            .all(|u| !u["position"].is_null())
    })
    .await;

    // Bad targets are refused with the field named, and nothing is sent.
    let (status, body) = admin
        .post(
            "/api/broadcasts",
            json!({ "target": { "all": true, "station": "Kallio" },
            "urgency": "Immediate", "severity": "Severe", "certainty": "Likely", "headline": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("target"));
    let (status, body) = admin
        .post(
            "/api/broadcasts",
            json!({ "target": { "all": true },
            "urgency": "Whenever", "severity": "Severe", "certainty": "Likely", "headline": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("urgency"));
    let (status, _) = admin
        .post(
            "/api/broadcasts",
            json!({ "target": { "station": "Nowhere" },
            "urgency": "Immediate", "severity": "Severe", "certainty": "Likely", "headline": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // To a station: Kallio's two units.
    let (status, sent) = admin
        .post(
            "/api/broadcasts",
            json!({ "target": { "station": "Kallio" },
            "urgency": "Immediate", "severity": "Severe", "certainty": "Likely",
            "headline": "BOLO: grey Volvo ABC-123", "description": "Seen leaving Kallio northbound",
            "expires_in_secs": 3600 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["counts"]["recipients"], 2);
    let id = sent["id"].as_i64().unwrap();
    for device in [&mut a, &mut b] {
        let (seq, message_id, body) = device.delivery().await;
        assert_eq!(message_id, format!("broadcast-{id}"));
        assert_eq!(body["kind"], "broadcast");
        assert_eq!(body["urgency"], "Immediate");
        assert_eq!(body["headline"], "BOLO: grey Volvo ABC-123");
        assert_eq!(body["area"]["area_desc"], "station Kallio");
        device.send(json!({ "type": "ack", "upto": seq })).await;
    }
    let reply = a
        .act(json!({ "type": "acknowledge", "message_id": format!("broadcast-{id}") }))
        .await;
    assert_eq!(reply["type"], "done");
    wait_until("one acknowledgement", async || {
        let (_, status) = admin.get(&format!("/api/broadcasts/{id}")).await;
        status["counts"]["acknowledged"] == 1 && status["counts"]["delivered"] == 2
    })
    .await;
    let (_, status) = admin.get(&format!("/api/broadcasts/{id}")).await;
    let missing = status["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{status}");
    assert_eq!(missing[0]["call_sign"], "K-2");
    assert_eq!(missing[0]["state"], "delivered");

    // To an area: the two units near Kallio's park, whatever their station.
    let polygon = json!([
        [60.183, 24.948],
        [60.183, 24.953],
        [60.186, 24.953],
        [60.186, 24.948]
    ]);
    let (status, sent) = admin
        .post(
            "/api/broadcasts",
            json!({ "target": { "polygon": polygon },
            "urgency": "Expected", "severity": "Moderate", "certainty": "Possible",
            "headline": "Crowd forming" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    assert_eq!(sent["counts"]["recipients"], 2, "{sent}");
    assert_eq!(sent["polygon"].as_array().unwrap().len(), 5, "closed ring");
    let (_, _, body) = c.delivery().await;
    assert_eq!(body["kind"], "broadcast");
    assert_eq!(body["area"]["polygon"].as_array().unwrap().len(), 5);
    let (_, list) = admin.get("/api/broadcasts").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn texts_go_both_ways() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = RawDevice::enrol(&app, &admin, "P-30", "Pasila").await;
    let unit = device.unit_id;
    let (status, body) = admin
        .post(
            &format!("/api/units/{unit}/messages"),
            json!({ "text": "" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, sent) = admin
        .post(
            &format!("/api/units/{unit}/messages"),
            json!({ "text": "Call the desk when free" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let (seq, _, body) = device.delivery().await;
    assert_eq!(body["kind"], "text");
    assert_eq!(body["text"], "Call the desk when free");
    assert_eq!(body["from"], "admin");
    device.send(json!({ "type": "ack", "upto": seq })).await;
    let reply = device
        .act(json!({ "type": "text", "text": "On it, 5 minutes" }))
        .await;
    assert_eq!(reply["type"], "done", "{reply}");
    let reply = device
        .act(json!({ "type": "text", "text": "x", "incident_id": 777 }))
        .await;
    assert_eq!(reply["code"], "unknown_incident", "{reply}");
    wait_until("the receipt", async || {
        let (_, texts) = admin.get(&format!("/api/units/{unit}/messages")).await;
        !texts[0]["delivered_at_ms"].is_null()
    })
    .await;
    let (_, texts) = admin.get(&format!("/api/units/{unit}/messages")).await;
    let texts = texts.as_array().unwrap();
    assert_eq!(texts.len(), 2);
    assert_eq!(texts[0]["direction"], "to_unit");
    assert_eq!(texts[1]["direction"], "from_unit");
    assert_eq!(texts[1]["text"], "On it, 5 minutes");
    let (status, _) = admin.get("/api/units/999/messages").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idempotency_keys_apply_an_action_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let device = RawDevice::enrol(&app, &admin, "P-40", "Pasila").await;
    let other = RawDevice::enrol(&app, &admin, "P-41", "Pasila").await;
    let incident = create_incident(&admin, 1).await;
    let post = |unit: i64, key: &'static str| {
        admin
            .http
            .post(format!(
                "{}/api/incidents/{incident}/assignments",
                admin.base
            ))
            .header("Idempotency-Key", key)
            .json(&json!({ "unit_id": unit }))
            .send()
    };
    let first: Value = post(device.unit_id, "k-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let again = post(device.unit_id, "k-1").await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let reused = post(other.unit_id, "k-1").await.unwrap();
    assert_eq!(reused.status(), StatusCode::CONFLICT);
    let bad = admin
        .http
        .post(format!(
            "{}/api/incidents/{incident}/assignments",
            admin.base
        ))
        .header("Idempotency-Key", "has#hash")
        .json(&json!({ "unit_id": other.unit_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let (_, orders) = admin
        .get(&format!("/api/incidents/{incident}/assignments"))
        .await;
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");
}

#[tokio::test]
async fn the_in_flight_window_waits_for_receipts() {
    let app = spawn_app_with(|c| c.inflight_window = 2).await;
    let admin = app.admin().await;
    let mut device = RawDevice::enrol(&app, &admin, "P-50", "Pasila").await;
    for n in 0..5 {
        let (status, body) = admin
            .post(
                &format!("/api/units/{}/messages", device.unit_id),
                json!({ "text": format!("message {n}") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let (seq1, _, body) = device.delivery().await;
        seen.push(body["text"].as_str().unwrap().to_owned());
        let (seq2, _, body) = device.delivery().await;
        seen.push(body["text"].as_str().unwrap().to_owned());
        assert_eq!(seq2, seq1 + 1);
        // Two are in flight: nothing more comes until the receipt.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), device.ws.next())
                .await
                .is_err(),
            "a third delivery arrived with two unacknowledged"
        );
        device.send(json!({ "type": "ack", "upto": seq2 })).await;
        if seen.len() == 4 {
            let (seq5, _, body) = device.delivery().await;
            assert_eq!(seq5, seq2 + 1);
            seen.push(body["text"].as_str().unwrap().to_owned());
        }
    }
    let expected: Vec<String> = (0..5).map(|n| format!("message {n}")).collect();
    assert_eq!(seen, expected);
    // Acknowledging more than was sent is a protocol error.
    device.send(json!({ "type": "ack", "upto": 99 })).await;
    let (code, reason) = dispatch_tests::expect_close(&mut device.ws).await;
    assert_eq!(code, dispatch_protocol::close::PROTOCOL_ERROR);
    assert!(reason.contains("beyond"), "{reason}");
}

/// Officer actions carry the time they were tapped by the tablet's clock: the server corrects
/// it by the offset measured at `hello` (here the tablet runs an hour fast), keeps the gaps
/// between taps exactly, never dates an action before its order or after its arrival, and
/// keeps the time it received each one beside it.
#[tokio::test]
async fn the_timeline_uses_the_corrected_time_each_action_was_tapped() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let hour = 3_600_000;
    let mut device = RawDevice::enrol_with_clock(&app, &admin, "P-83", "Pasila", Some(hour)).await;
    let incident = create_incident(&admin, 1).await;
    let order = assign(&admin, incident, device.unit_id).await;
    let (seq, _, _) = device.delivery().await;
    device.send(json!({ "type": "ack", "upto": seq })).await;
    let (_, placed) = admin.get(&format!("/api/orders/{order}")).await;
    let created = placed["created_at_ms"].as_i64().unwrap();

    // Taps queued while offline and sent together a while later: the accept dated (by a
    // mistaken clock) before the order existed, en route and on scene 2 s apart. (The margins
    // leave seconds for the delay of `hello`, which the measured offset includes.)
    tokio::time::sleep(Duration::from_secs(6)).await;
    let device_now = field_client::unix_ms() + hour;
    let taps = [
        (
            json!({ "type": "accept", "order_id": order }),
            created + hour - 60_000,
        ),
        (
            json!({ "type": "status", "status": "en_route", "order_id": order }),
            device_now - 5_000,
        ),
        (
            json!({ "type": "status", "status": "on_scene", "order_id": order }),
            device_now - 3_000,
        ),
    ];
    for (mut frame, at) in taps {
        frame["at_ms"] = json!(at);
        let reply = device.act(frame).await;
        assert_eq!(reply["type"], "done", "{reply}");
    }
    let (_, timeline) = admin
        .get(&format!("/api/incidents/{incident}/timeline"))
        .await;
    let event = |kind: &str| {
        events_of(&timeline, kind)
            .first()
            .copied()
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} in {timeline}"))
    };
    let (accepted, en_route, on_scene) = (
        event("order_accepted"),
        event("unit_en_route"),
        event("unit_on_scene"),
    );
    let at = |e: &Value| e["at_ms"].as_i64().unwrap();
    let received = |e: &Value| e["received_at_ms"].as_i64().unwrap();
    assert_eq!(
        at(&accepted),
        created,
        "an action is never dated before its order"
    );
    assert_eq!(
        at(&on_scene) - at(&en_route),
        2_000,
        "the gap between taps is kept"
    );
    for e in [&en_route, &on_scene] {
        assert!(
            at(e) < received(e),
            "dated when tapped, not when received: {e}"
        );
        assert!(at(e) >= created, "{e}");
    }
    // The order's own stamps follow the tap, not the arrival.
    let (_, placed) = admin.get(&format!("/api/orders/{order}")).await;
    assert_eq!(placed["decided_at_ms"].as_i64(), Some(created));
}
