//! The edges a client written from docs/protocol.md alone meets: frames the WebSocket layer
//! refuses, a silent device, closing an incident while an order is still on a screen, an
//! `action_id` reused for another action, fixes arriving out of order, a resync without an
//! epoch change, idempotency keys on every creating request, and the modes of a new data
//! directory.

use std::os::unix::fs::PermissionsExt;

use dispatch_protocol::close;
use dispatch_tests::{
    act, binary, enrolled, expect_close, next_frame, say_hello, send_text, spawn_app,
    spawn_app_with, within,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn frames_the_websocket_layer_refuses_close_with_a_documented_code() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, device, token) = enrolled(&app, &admin, "E-1").await;

    // Larger than the transport reads at all (1 MiB): 4008, as any frame over 64 KiB.
    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    let huge = format!(
        r#"{{"type":"ack","upto":0,"pad":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    ws.send(Message::Text(huge.into())).await.unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, close::FRAME_TOO_LARGE, "{reason}");

    // A text frame that is not UTF-8: 4000 with a reason.
    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(code, close::PROTOCOL_ERROR);
    assert!(reason.contains("UTF-8"), "{reason}");
    app.stop().await;
}

/// A stream whose writes vanish once `mute` is set: the device goes silent (not even pongs
/// reach the server) while it still reads what the server sends.
struct MuteStream<S> {
    inner: S,
    mute: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for MuteStream<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for MuteStream<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.mute.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_silent_device_is_closed_with_heartbeat_timeout_not_going_away() {
    let app = spawn_app_with(|c| c.heartbeat_secs = 1).await;
    let admin = app.admin().await;
    let (_, device, token) = enrolled(&app, &admin, "E-2").await;
    let config = field_client::Trust::pin(&app.fingerprint)
        .unwrap()
        .client_config()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost")
        .unwrap()
        .to_owned();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let mute = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = MuteStream {
        inner: tls,
        mute: mute.clone(),
    };
    let url = format!(
        "wss://{}{}",
        app.addr,
        dispatch_protocol::DEVICE_CHANNEL_PATH
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let hello = json!({ "type": "hello", "protocol": 1, "device_id": device, "token": token });
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    mute.store(true, std::sync::atomic::Ordering::SeqCst);
    let (code, reason) = within("the server to drop the silent device", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(_)) => {}
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(code, close::HEARTBEAT_TIMEOUT, "{reason}");
    app.stop().await;
}

#[tokio::test]
async fn an_incident_closes_only_when_no_order_is_on_a_screen_or_accepted() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (unit, device, token) = enrolled(&app, &admin, "E-3").await;
    let (incident, order) = admin.dispatch_to(unit, "Mannerheimintie 1").await;
    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    let delivered = next_frame(&mut ws).await;
    send_text(
        &mut ws,
        &json!({ "type": "ack", "upto": delivered["seq"] }).to_string(),
    )
    .await;
    let close_path = format!("/api/incidents/{incident}/close");
    let close_it = || admin.post(&close_path, json!({ "disposition": "done" }));
    let message_id = format!("order-{order}");
    for (n, frame) in [
        json!({ "type": "displayed", "action_id": "c-1", "message_id": message_id }),
        json!({ "type": "acknowledge", "action_id": "c-2", "message_id": message_id }),
        json!({ "type": "accept", "action_id": "c-3", "order_id": order }),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(act(&mut ws, frame).await["type"], "done");
        let (status, body) = close_it().await;
        assert_eq!(status, StatusCode::CONFLICT, "step {n}: {body}");
        assert_eq!(body["error"]["code"], "orders_active", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("E-3"));
    }
    let cleared = json!({ "type": "status", "action_id": "c-4", "status": "cleared",
                          "order_id": order });
    assert_eq!(act(&mut ws, cleared).await["type"], "done");
    let (status, body) = close_it().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_action_id_reused_for_another_action_is_rejected_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (unit, device, token) = enrolled(&app, &admin, "E-4").await;
    let (_, order) = admin.dispatch_to(unit, "Mannerheimintie 1").await;
    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    next_frame(&mut ws).await;
    let accept = json!({ "type": "accept", "action_id": "r-1", "order_id": order });
    assert_eq!(act(&mut ws, accept.clone()).await["type"], "done");
    let before = dispatch_tests::db_snapshot(&app).await;
    let reply = act(
        &mut ws,
        json!({ "type": "status", "action_id": "r-1", "status": "on_scene" }),
    )
    .await;
    assert_eq!(reply["type"], "rejected", "{reply}");
    assert_eq!(reply["code"], "action_id_reused", "{reply}");
    assert_eq!(
        act(&mut ws, accept).await["type"],
        "done",
        "the same action again is still done"
    );
    assert_eq!(dispatch_tests::db_snapshot(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn the_newest_fix_wins_even_when_an_older_one_arrives_later() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (unit, device, token) = enrolled(&app, &admin, "E-5").await;
    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    for (lat, at) in [(60.20, 2_000), (60.10, 1_000)] {
        let fix = json!({ "type": "location", "lat": lat, "lon": 24.9, "fix_time_ms": at });
        send_text(&mut ws, &fix.to_string()).await;
    }
    // Frames are applied in order: once this is done, both fixes were handled.
    let status = json!({ "type": "status", "action_id": "n-1", "status": "available" });
    assert_eq!(act(&mut ws, status).await["type"], "done");
    let (_, stored) = admin.get(&format!("/api/units/{unit}")).await;
    assert_eq!(stored["position"]["lat"], 60.2, "{stored}");
    assert_eq!(stored["position"]["fix_time_ms"], 2_000, "{stored}");
    app.stop().await;
}

#[tokio::test]
async fn a_floor_above_what_the_server_allocated_resyncs_under_the_same_epoch() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, device, token) = enrolled(&app, &admin, "E-6").await;
    let (ws, welcome) = say_hello(&app, device, &token, None, 0).await;
    drop(ws);
    let epoch = welcome["epoch"].as_str().unwrap().to_owned();
    let (_, again) = say_hello(&app, device, &token, Some(&epoch), 0).await;
    assert_eq!(again["resync"], false, "{again}");
    let (_, beyond) = say_hello(&app, device, &token, Some(&epoch), 500).await;
    assert_eq!(beyond["resync"], true, "{beyond}");
    assert_eq!(beyond["epoch"], epoch.as_str(), "the epoch did not change");
    app.stop().await;
}

#[tokio::test]
async fn every_creating_request_of_the_console_takes_an_idempotency_key() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let incident = json!({ "kind": "theft", "priority": 2, "lat": 60.17, "lon": 24.94 });
    let (s1, first) = admin
        .post_keyed("/api/incidents", "inc-1", incident.clone())
        .await;
    let (s2, again) = admin.post_keyed("/api/incidents", "inc-1", incident).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(
        first["id"], again["id"],
        "a retried incident is the same incident"
    );
    let (_, all) = admin.get("/api/incidents").await;
    assert_eq!(all.as_array().unwrap().len(), 1);

    let unit = json!({ "call_sign": "K-1", "kind": "patrol_car" });
    let (_, u1) = admin.post_keyed("/api/units", "unit-1", unit.clone()).await;
    let (s, u2) = admin.post_keyed("/api/units", "unit-1", unit).await;
    assert_eq!((s, &u1["id"]), (StatusCode::CREATED, &u2["id"]));

    let user =
        json!({ "username": "olli", "password": "quiet orchard beacon 85", "role": "operator" });
    let (_, o1) = admin.post_keyed("/api/users", "user-1", user.clone()).await;
    let (s, o2) = admin.post_keyed("/api/users", "user-1", user).await;
    assert_eq!((s, &o1["id"]), (StatusCode::CREATED, &o2["id"]));

    // A retried enrolment code withdraws the first one: only the last code answered enrols.
    let unit_id = u1["id"].as_i64().unwrap();
    let path = format!("/api/units/{unit_id}/enrolment-code");
    let (_, c1) = admin.post_keyed(&path, "code-1", json!({})).await;
    let (s, c2) = admin.post_keyed(&path, "code-1", json!({})).await;
    assert_eq!(s, StatusCode::CREATED, "{c2}");
    let enroll = |code: &Value| admin.post("/api/devices/enroll", json!({ "code": code }));
    let (status, body) = enroll(&c1["code"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the withdrawn code: {body}");
    let (status, body) = enroll(&c2["code"]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let other = admin.create_unit("K-2", &[]).await;
    let (status, body) = admin
        .post_keyed(
            &format!("/api/units/{other}/enrolment-code"),
            "code-1",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_key_reused");
    app.stop().await;
}

#[tokio::test]
async fn user_add_creates_a_data_directory_only_its_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let status = tokio::process::Command::new(binary("dispatchd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "--username", "chief", "--role", "admin"])
        .env("DISPATCH_NEW_PASSWORD", "quiet orchard beacon 85")
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode(&data.join("dispatch.sqlite")), 0o600);
}
