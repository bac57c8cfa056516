//! Bad input of every kind gets a clear 4xx (or a WebSocket close with a reason) and changes
//! nothing, checked in the database itself.

use dispatch_protocol::close;
use dispatch_tests::{
    db_snapshot, enrolled, expect_close, next_frame, raw_channel, say_hello, send_text, spawn_app,
    Operator,
};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or(""),
        body["error"]["message"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn http_bad_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-1", &["patrol"]).await;
    let operator = admin
        .add_user("olli", "amber kettle drifting 58", "operator")
        .await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 1, "lat": 60.17, "lon": 24.94 }),
        )
        .await;
    let incident_id = incident["id"].as_i64().unwrap();
    let anonymous = Operator::anonymous(&app.base);
    let before = db_snapshot(&app).await;

    // (request, expected status, expected error code, a word the message must contain)
    let cases: Vec<(Value, StatusCode, &str, &str)> = vec![
        (admin.post_raw("/api/incidents", "{\"kind\": ").await.1, StatusCode::BAD_REQUEST, "invalid_request", "JSON"),
        (admin.post_raw("/api/incidents", "[1,2]").await.1, StatusCode::BAD_REQUEST, "invalid_request", "invalid type"),
        (admin.post("/api/incidents", json!({ "priority": 1, "lat": 60.0, "lon": 24.0 })).await.1, StatusCode::BAD_REQUEST, "invalid_request", "kind"),
        (admin.post("/api/incidents", json!({ "kind": "theft", "priority": "high", "lat": 60.0, "lon": 24.0 })).await.1, StatusCode::BAD_REQUEST, "invalid_request", "priority"),
        (admin.post("/api/incidents", json!({ "kind": "theft", "priority": 9, "lat": 60.0, "lon": 24.0 })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "priority"),
        (admin.post("/api/incidents", json!({ "kind": "theft", "priority": 1, "lat": 91.0, "lon": 24.0 })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "lat"),
        (admin.post("/api/incidents", json!({ "kind": "Theft!", "priority": 1, "lat": 60.0, "lon": 24.0 })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "kind"),
        (admin.post("/api/incidents", json!({ "kind": "theft", "priority": 1, "lat": 60.0, "lon": 24.0, "colour": "red" })).await.1, StatusCode::BAD_REQUEST, "invalid_request", "colour"),
        (admin.get("/api/incidents/424242").await.1, StatusCode::NOT_FOUND, "not_found", "424242"),
        (admin.get("/api/incidents/abc").await.1, StatusCode::BAD_REQUEST, "invalid_request", "parse"),
        (admin.get("/api/incidents/424242/timeline").await.1, StatusCode::NOT_FOUND, "not_found", "424242"),
        (admin.get("/api/incidents/424242/recommendations").await.1, StatusCode::NOT_FOUND, "not_found", "424242"),
        (admin.get(&format!("/api/incidents/{incident_id}/recommendations?count=0")).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "count"),
        (admin.post("/api/incidents/424242/assignments", json!({ "unit_id": unit_id })).await.1, StatusCode::NOT_FOUND, "not_found", "424242"),
        (admin.post(&format!("/api/incidents/{incident_id}/assignments"), json!({ "unit_id": 999 })).await.1, StatusCode::NOT_FOUND, "not_found", "unit 999"),
        (admin.post(&format!("/api/incidents/{incident_id}/assignments"), json!({ "unit_id": unit_id })).await.1, StatusCode::CONFLICT, "no_device", "no enrolled device"),
        (admin.post(&format!("/api/incidents/{incident_id}/assignments"), json!({ "unit_id": "P-1" })).await.1, StatusCode::BAD_REQUEST, "invalid_request", "unit_id"),
        (admin.patch(&format!("/api/incidents/{incident_id}"), json!({})).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "no field"),
        (admin.patch(&format!("/api/incidents/{incident_id}"), json!({ "lat": 60.0 })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "together"),
        (admin.post("/api/units", json!({ "call_sign": "P-1", "kind": "patrol_car" })).await.1, StatusCode::CONFLICT, "duplicate", "P-1"),
        (admin.post("/api/units", json!({ "call_sign": "", "kind": "patrol_car" })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "call_sign"),
        (admin.post("/api/units/999/enrolment-code", json!({})).await.1, StatusCode::NOT_FOUND, "not_found", "unit 999"),
        (admin.post("/api/users", json!({ "username": "x", "password": "short", "role": "admin" })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "password"),
        (admin.post("/api/users", json!({ "username": "x", "password": "long-enough-1", "role": "root" })).await.1, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", "role"),
        (operator.post("/api/units", json!({ "call_sign": "P-9", "kind": "patrol_car" })).await.1, StatusCode::FORBIDDEN, "forbidden", "admin"),
        (operator.post(&format!("/api/units/{unit_id}/enrolment-code"), json!({})).await.1, StatusCode::FORBIDDEN, "forbidden", "admin"),
        (operator.post("/api/users", json!({ "username": "y", "password": "long-enough-1", "role": "admin" })).await.1, StatusCode::FORBIDDEN, "forbidden", "admin"),
        (operator.get("/api/audit").await.1, StatusCode::FORBIDDEN, "forbidden", "supervisor"),
        (admin.get("/api/units/999/trail").await.1, StatusCode::NOT_FOUND, "not_found", "unit 999"),
        (anonymous.get("/api/incidents").await.1, StatusCode::UNAUTHORIZED, "unauthenticated", "login"),
        (anonymous.post("/api/incidents", json!({ "kind": "theft", "priority": 1, "lat": 60.0, "lon": 24.0 })).await.1, StatusCode::UNAUTHORIZED, "unauthenticated", "login"),
        (anonymous.post("/api/login", json!({ "username": "admin", "password": "wrong-password" })).await.1, StatusCode::UNAUTHORIZED, "bad_login", "wrong"),
        (anonymous.post("/api/login", json!({ "username": "nobody", "password": "wrong-password" })).await.1, StatusCode::UNAUTHORIZED, "bad_login", "wrong"),
        (anonymous.post("/api/devices/enroll", json!({ "code": "AAAA-BBBB-CCCC" })).await.1, StatusCode::NOT_FOUND, "unknown_enrolment_code", "expired"),
        (anonymous.post("/api/devices/enroll", json!({ "kode": "x" })).await.1, StatusCode::BAD_REQUEST, "invalid_request", "code"),
        (anonymous.get("/api/nothing-here").await.1, StatusCode::NOT_FOUND, "not_found", "route"),
    ];
    for (i, (body, _, code, word)) in cases.iter().enumerate() {
        let (got_code, message) = error_of(body);
        assert_eq!(got_code, *code, "case {i}: {body}");
        assert!(
            message.contains(word),
            "case {i}: message {message:?} should name {word:?}"
        );
    }
    // Statuses are checked separately so that a failure names the case.
    let statuses = [
        admin.post_raw("/api/incidents", "{\"kind\": ").await.0,
        admin
            .post(
                "/api/incidents",
                json!({ "kind": "theft", "priority": 9, "lat": 60.0, "lon": 24.0 }),
            )
            .await
            .0,
        admin.get("/api/incidents/424242").await.0,
        operator
            .post(
                "/api/units",
                json!({ "call_sign": "P-9", "kind": "patrol_car" }),
            )
            .await
            .0,
        anonymous.get("/api/incidents").await.0,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::BAD_REQUEST,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::NOT_FOUND,
            StatusCode::FORBIDDEN,
            StatusCode::UNAUTHORIZED
        ]
    );
    for (i, (_, status, _, _)) in cases.iter().enumerate() {
        assert!(status.is_client_error(), "case {i}");
    }

    let huge = format!(
        "{{\"kind\":\"theft\",\"priority\":1,\"lat\":60,\"lon\":24,\"notes\":\"{}\"}}",
        "x".repeat(100_000)
    );
    let (status, _) = admin.post_raw("/api/incidents", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(
        db_snapshot(&app).await,
        before,
        "a refused request changed the database"
    );
    app.stop().await;
}

#[tokio::test]
async fn device_channel_bad_input_closes_with_reason_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-1", &["patrol"])
        .await;
    device
        .wait_for("welcome", |e| {
            matches!(e, field_client::Event::Connected(_)).then_some(())
        })
        .await;
    let mut other = admin
        .unit_with_device(&app.fingerprint, "P-2", &["patrol"])
        .await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 1, "lat": 60.17, "lon": 24.94 }),
        )
        .await;
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{}/assignments", incident["id"]),
            json!({ "unit_id": other.unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let others_order = order["id"].as_i64().unwrap();
    // Let the other device take its order first, so that nothing changes during the checks.
    other
        .wait_for("the other unit's order", |e| {
            matches!(e, field_client::Event::Order(_)).then_some(())
        })
        .await;
    admin.wait_order_state(others_order, "delivered").await;
    let credential = field_client::Credential::load(device.dir.path()).unwrap();
    let hello = |device_id: i64, token: &str| {
        json!({ "type": "hello", "protocol": 1, "device_id": device_id, "token": token, "ack_floor": 0 }).to_string()
    };
    let before = db_snapshot(&app).await;

    let cases: Vec<(String, u16, &str)> = vec![
        (
            hello(credential.device_id, "wrong-token"),
            close::BAD_CREDENTIAL,
            "wrong token",
        ),
        (
            hello(9999, &credential.token),
            close::BAD_CREDENTIAL,
            "unknown device",
        ),
        (
            "{\"type\": \"hello\"".into(),
            close::PROTOCOL_ERROR,
            "malformed",
        ),
        (
            json!({ "type": "hello", "protocol": "one" }).to_string(),
            close::PROTOCOL_ERROR,
            "invalid type",
        ),
        (
            json!({ "type": "ack", "upto": 1 }).to_string(),
            close::PROTOCOL_ERROR,
            "first frame must be hello",
        ),
        (
            json!({ "type": "teleport" }).to_string(),
            close::PROTOCOL_ERROR,
            "unknown variant",
        ),
        (
            json!({ "type": "hello", "protocol": 7, "device_id": 1, "token": "x" }).to_string(),
            close::UNSUPPORTED_VERSION,
            "not supported",
        ),
        (
            format!("{{\"type\":\"hello\",\"pad\":\"{}\"}}", "x".repeat(70_000)),
            close::FRAME_TOO_LARGE,
            "exceeds",
        ),
    ];
    for (frame, code, word) in cases {
        eprintln!("case: {:.60}", frame);
        let mut ws = raw_channel(app.addr, &app.fingerprint).await.unwrap();
        send_text(&mut ws, &frame).await;
        let (got, reason) = expect_close(&mut ws).await;
        assert_eq!(got, code, "frame {:.60}: {reason}", frame);
        assert!(
            reason.contains(word),
            "reason {reason:?} should say {word:?}"
        );
    }

    // After a valid hello: another unit's order is refused without effect; bad frames close.
    let mut ws = raw_channel(app.addr, &app.fingerprint).await.unwrap();
    send_text(&mut ws, &hello(credential.device_id, &credential.token)).await;
    let welcome = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(welcome.contains("\"welcome\""), "{welcome}");
    let pins = ws.next().await.unwrap().unwrap().into_text().unwrap();
    assert!(pins.contains("\"pins\""), "{pins}");
    send_text(
        &mut ws,
        &json!({ "type": "accept", "action_id": "x-1", "order_id": others_order }).to_string(),
    )
    .await;
    let reply: Value =
        serde_json::from_str(&ws.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
    assert_eq!(reply["type"], "rejected");
    assert_eq!(reply["code"], "not_your_order");
    send_text(
        &mut ws,
        &json!({ "type": "decline", "action_id": "x-2", "order_id": 4242, "reason": "busy" })
            .to_string(),
    )
    .await;
    let reply: Value =
        serde_json::from_str(&ws.next().await.unwrap().unwrap().into_text().unwrap()).unwrap();
    assert_eq!(reply["code"], "unknown_order");
    send_text(
        &mut ws,
        &json!({ "type": "location", "lat": 123.0, "lon": 24.0, "fix_time_ms": 0 }).to_string(),
    )
    .await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, close::PROTOCOL_ERROR);
    assert!(reason.contains("lat"), "{reason}");

    let mut ws = raw_channel(app.addr, &app.fingerprint).await.unwrap();
    send_text(&mut ws, &hello(credential.device_id, &credential.token)).await;
    ws.next().await.unwrap().unwrap();
    send_text(&mut ws, &json!({ "type": "ack", "upto": 50 }).to_string()).await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, close::PROTOCOL_ERROR);
    assert!(reason.contains("beyond"), "{reason}");

    assert_eq!(
        db_snapshot(&app).await,
        before,
        "a refused frame changed the database"
    );

    // Re-enrolling the unit revokes the old device at once.
    let code = admin.enrolment_code(device.unit_id).await;
    let trust = field_client::Trust::pin(&app.fingerprint).unwrap();
    field_client::enroll(&app.base, &trust, &code, None)
        .await
        .unwrap();
    let fatal = device
        .wait_for("revocation", |e| match e {
            field_client::Event::Fatal { code, .. } => Some(*code),
            _ => None,
        })
        .await;
    assert_eq!(fatal, close::REVOKED);
    let mut ws = raw_channel(app.addr, &app.fingerprint).await.unwrap();
    send_text(&mut ws, &hello(credential.device_id, &credential.token)).await;
    assert_eq!(expect_close(&mut ws).await.0, close::REVOKED);
    // The used code cannot be used again.
    let err = field_client::enroll(&app.base, &trust, &code, None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown_enrolment_code") || err.to_string().contains("expired"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test]
async fn replayed_misdirected_and_out_of_order_frames_change_nothing() {
    use futures_util::SinkExt;
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (unit, device, token) = enrolled(&app, &admin, "P-7").await;
    let (other_unit, _, _) = enrolled(&app, &admin, "P-8").await;
    let (incident, order) = admin.dispatch_to(unit, "Mannerheimintie 5").await;
    let (_, others_order) = admin.dispatch_to(other_unit, "Mannerheimintie 7").await;

    // Out of order: an ack beyond the last seq sent closes the link and records no receipt.
    let (mut ws, welcome) = say_hello(&app, device, &token, None, 0).await;
    let epoch = welcome["epoch"].as_str().unwrap().to_owned();
    let deliver = next_frame(&mut ws).await;
    assert_eq!(deliver["seq"], 1, "{deliver}");
    let before = db_snapshot(&app).await;
    send_text(&mut ws, &json!({ "type": "ack", "upto": 2 }).to_string()).await;
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, close::PROTOCOL_ERROR);
    assert!(reason.contains("beyond the last seq sent (1)"), "{reason}");
    assert_eq!(
        db_snapshot(&app).await,
        before,
        "a refused ack changed the database"
    );
    let (_, state) = admin.get(&format!("/api/orders/{order}")).await;
    assert_eq!(state["state"], "queued", "{state}");

    // The delivery is replayed on the next connection; its ack and an accept are applied.
    let (mut ws, _) = say_hello(&app, device, &token, Some(&epoch), 0).await;
    assert_eq!(next_frame(&mut ws).await["seq"], 1);
    send_text(&mut ws, &json!({ "type": "ack", "upto": 1 }).to_string()).await;
    admin.wait_order_state(order, "delivered").await;
    let accept = json!({ "type": "accept", "action_id": "p7-1", "order_id": order }).to_string();
    send_text(&mut ws, &accept).await;
    assert_eq!(
        next_frame(&mut ws).await,
        json!({ "type": "done", "action_id": "p7-1" })
    );
    let applied = db_snapshot(&app).await;

    // Replayed on the same connection and after a reconnect: done again, applied once.
    send_text(&mut ws, &accept).await;
    assert_eq!(
        next_frame(&mut ws).await,
        json!({ "type": "done", "action_id": "p7-1" })
    );
    drop(ws);
    let (mut ws, _) = say_hello(&app, device, &token, Some(&epoch), 1).await;
    send_text(&mut ws, &accept).await;
    assert_eq!(
        next_frame(&mut ws).await,
        json!({ "type": "done", "action_id": "p7-1" })
    );

    // Decided already, or meant for another unit, or unknown: rejected with a code.
    let refused = [
        (
            json!({ "type": "accept", "action_id": "p7-2", "order_id": order }),
            "already_decided",
        ),
        (
            json!({ "type": "decline", "action_id": "p7-3", "order_id": order, "reason": "too_far" }),
            "already_decided",
        ),
        (
            json!({ "type": "accept", "action_id": "p7-4", "order_id": others_order }),
            "not_your_order",
        ),
        (
            json!({ "type": "decline", "action_id": "p7-5", "order_id": others_order, "reason": "busy" }),
            "not_your_order",
        ),
        (
            json!({ "type": "status", "action_id": "p7-6", "status": "on_scene", "order_id": others_order }),
            "not_your_order",
        ),
        (
            json!({ "type": "status", "action_id": "p7-7", "status": "cleared", "order_id": 4242 }),
            "unknown_order",
        ),
    ];
    for (frame, code) in refused {
        send_text(&mut ws, &frame.to_string()).await;
        let reply = next_frame(&mut ws).await;
        assert_eq!(reply["type"], "rejected", "{frame}: {reply}");
        assert_eq!(reply["action_id"], frame["action_id"], "{reply}");
        assert_eq!(reply["code"], code, "{frame}: {reply}");
        assert!(
            !reply["message"].as_str().unwrap_or("").is_empty(),
            "{reply}"
        );
    }
    // A refused action is judged again when resent, and refused again.
    send_text(
        &mut ws,
        &json!({ "type": "accept", "action_id": "p7-4", "order_id": others_order }).to_string(),
    )
    .await;
    assert_eq!(next_frame(&mut ws).await["code"], "not_your_order");
    drop(ws);

    // Malformed, oversized, binary or repeated-hello frames after welcome close the link.
    let long_id = "x".repeat(65);
    let cases: Vec<(tokio_tungstenite::tungstenite::Message, u16, &str)> = vec![
        (
            "{\"type\": \"accept\", ".into(),
            close::PROTOCOL_ERROR,
            "malformed",
        ),
        (
            json!({ "type": "accept", "action_id": "p7-8", "order_id": "one" })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "invalid type",
        ),
        (
            json!({ "type": "accept", "order_id": order })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "action_id",
        ),
        (
            json!({ "type": "accept", "action_id": "", "order_id": order })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "action_id",
        ),
        (
            json!({ "type": "accept", "action_id": long_id, "order_id": order })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "action_id",
        ),
        (
            json!({ "type": "decline", "action_id": "p7-9", "order_id": order, "reason": " " })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "reason",
        ),
        (
            json!({ "type": "status", "action_id": "p7-10", "status": "flying" })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "unknown variant",
        ),
        (
            json!({ "type": "hello", "protocol": 1, "device_id": device, "token": token })
                .to_string()
                .into(),
            close::PROTOCOL_ERROR,
            "already",
        ),
        (
            format!(
                "{{\"type\":\"ack\",\"upto\":1,\"pad\":\"{}\"}}",
                "x".repeat(70_000)
            )
            .into(),
            close::FRAME_TOO_LARGE,
            "exceeds",
        ),
        (
            tokio_tungstenite::tungstenite::Message::Binary(vec![1, 2, 3].into()),
            close::PROTOCOL_ERROR,
            "binary",
        ),
    ];
    for (frame, code, word) in cases {
        let (mut ws, _) = say_hello(&app, device, &token, Some(&epoch), 1).await;
        let shown = format!("{frame:?}").chars().take(80).collect::<String>();
        ws.send(frame).await.unwrap();
        let (got, reason) = expect_close(&mut ws).await;
        assert_eq!(got, code, "{shown}: {reason}");
        assert!(
            reason.contains(word),
            "{shown}: reason {reason:?} should say {word:?}"
        );
    }

    assert_eq!(
        db_snapshot(&app).await,
        applied,
        "a replayed or refused frame changed the database"
    );
    assert_eq!(
        admin.timeline_kinds(incident).await,
        [
            "incident_created",
            "order_queued",
            "order_delivered",
            "order_accepted"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn read_receipts_for_messages_of_other_devices_are_rejected_and_replays_apply_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (unit, device, token) = enrolled(&app, &admin, "P-9").await;
    let (other_unit, _, _) = enrolled(&app, &admin, "P-10").await;
    let (incident, order) = admin.dispatch_to(unit, "Fredrikinkatu 1").await;
    let (_, others_order) = admin.dispatch_to(other_unit, "Fredrikinkatu 3").await;

    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    let deliver = next_frame(&mut ws).await;
    let message_id = deliver["message_id"].as_str().unwrap().to_owned();
    assert_eq!(message_id, format!("order-{order}"));
    send_text(
        &mut ws,
        &json!({ "type": "ack", "upto": deliver["seq"] }).to_string(),
    )
    .await;
    admin.wait_order_state(order, "delivered").await;
    let before = db_snapshot(&app).await;

    // Another device's message, or one never sent: rejected, nothing recorded.
    for (i, (kind, id)) in [
        ("displayed", format!("order-{others_order}")),
        ("acknowledge", format!("order-{others_order}")),
        ("acknowledge", "order-424242".to_owned()),
    ]
    .into_iter()
    .enumerate()
    {
        let action_id = format!("p9-r{i}");
        send_text(
            &mut ws,
            &json!({ "type": kind, "action_id": action_id, "message_id": id }).to_string(),
        )
        .await;
        let reply = next_frame(&mut ws).await;
        assert_eq!(reply["type"], "rejected", "{kind} {id}: {reply}");
        assert_eq!(reply["action_id"], action_id.as_str());
        assert_eq!(reply["code"], "unknown_message", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains(&id),
            "the message should name {id}: {reply}"
        );
    }
    assert_eq!(
        db_snapshot(&app).await,
        before,
        "a rejected read receipt changed the database"
    );
    let (_, others) = admin.get(&format!("/api/orders/{others_order}")).await;
    assert_eq!(others["state"], "queued", "{others}");

    // The officer's acknowledgement, sent three times (twice after a reconnect): done each
    // time, applied once.
    let ack = json!({ "type": "acknowledge", "action_id": "p9-ack", "message_id": message_id })
        .to_string();
    send_text(&mut ws, &ack).await;
    assert_eq!(next_frame(&mut ws).await["type"], "done");
    admin.wait_order_state(order, "acknowledged").await;
    let applied = db_snapshot(&app).await;
    send_text(&mut ws, &ack).await;
    assert_eq!(
        next_frame(&mut ws).await,
        json!({ "type": "done", "action_id": "p9-ack" })
    );
    drop(ws);
    let epoch = {
        let (mut ws, welcome) = say_hello(&app, device, &token, None, 0).await;
        assert_eq!(
            next_frame(&mut ws).await["seq"],
            1,
            "replayed after a resync"
        );
        send_text(&mut ws, &json!({ "type": "ack", "upto": 1 }).to_string()).await;
        send_text(&mut ws, &ack).await;
        assert_eq!(
            next_frame(&mut ws).await,
            json!({ "type": "done", "action_id": "p9-ack" })
        );
        welcome["epoch"].as_str().unwrap().to_owned()
    };

    // Read receipts and texts that break the protocol close the link.
    let cases = [
        (
            json!({ "type": "displayed", "action_id": "p9-x1", "message_id": "" }),
            "message_id",
        ),
        (
            json!({ "type": "acknowledge", "action_id": "p9-x2", "message_id": "m".repeat(65) }),
            "message_id",
        ),
        (
            json!({ "type": "acknowledge", "action_id": "p9-x3" }),
            "message_id",
        ),
        (
            json!({ "type": "text", "action_id": "p9-x4", "text": "  " }),
            "text",
        ),
        (
            json!({ "type": "text", "action_id": "p9-x5", "text": "x".repeat(2001) }),
            "2000",
        ),
    ];
    for (frame, word) in cases {
        let (mut ws, _) = say_hello(&app, device, &token, Some(&epoch), 1).await;
        send_text(&mut ws, &frame.to_string()).await;
        let (code, reason) = expect_close(&mut ws).await;
        assert_eq!(code, close::PROTOCOL_ERROR, "{frame}: {reason}");
        assert!(
            reason.contains(word),
            "{frame}: reason {reason:?} should say {word:?}"
        );
    }

    assert_eq!(
        db_snapshot(&app).await,
        applied,
        "a replayed or refused frame changed the database"
    );
    assert_eq!(
        admin.timeline_kinds(incident).await,
        [
            "incident_created",
            "order_queued",
            "order_delivered",
            "order_acknowledged"
        ]
    );
    app.stop().await;
}
