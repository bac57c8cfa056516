//! The event loop against a small in-process fake of the server's device channel.
//!
//! Each test scripts the server side frame by frame; every wait is bounded by a timeout.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use dispatch_protocol::{
    ClientFrame, Delivery, Hello, IncidentBrief, Message, OrderMessage, ReportedStatus,
    ServerFrame, Welcome,
};
use field_client::backoff::Backoff;
use field_client::{Client, ClientError, ClientOptions, Credential, Event, EventLoop};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(15);

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// What the fake server hears from the client on one connection.
#[derive(Debug, PartialEq)]
enum Heard {
    Frame(ClientFrame),
    Pong,
}

/// What the test tells the fake server to do on one connection.
enum Say {
    Frame(Box<ServerFrame>),
    Raw(String),
    Ping,
    Close(u16, &'static str),
}

/// One accepted WebSocket connection. Dropping it drops the socket without a close frame.
struct Conn {
    heard: mpsc::UnboundedReceiver<Heard>,
    say: mpsc::UnboundedSender<Say>,
}

impl Conn {
    async fn next(&mut self) -> Heard {
        within("a client frame", self.heard.recv())
            .await
            .expect("connection ended")
    }

    async fn frame(&mut self) -> ClientFrame {
        match self.next().await {
            Heard::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    async fn hello(&mut self) -> Hello {
        match self.frame().await {
            ClientFrame::Hello(h) => h,
            other => panic!("expected hello, got {other:?}"),
        }
    }

    fn say(&self, frame: ServerFrame) {
        self.say.send(Say::Frame(Box::new(frame))).unwrap();
    }

    fn welcome(&self, epoch: &str, resync: bool, heartbeat_secs: u64) {
        self.say(ServerFrame::Welcome(Welcome {
            device_id: 3,
            unit_id: 12,
            call_sign: "P-12".into(),
            epoch: epoch.into(),
            resync,
            server_time_ms: 0,
            heartbeat_secs,
            servers: Vec::new(),
        }));
    }

    fn deliver(&self, seq: u64, order_id: i64) {
        self.say(ServerFrame::Deliver(Delivery {
            seq,
            message_id: format!("order-{order_id}"),
            queued_at_ms: 1,
            body: Message::Order(OrderMessage {
                order_id,
                unit_id: 12,
                accepted: false,
                incident: IncidentBrief {
                    id: order_id + 100,
                    kind: "burglary".into(),
                    priority: 1,
                    lat: 60.1684,
                    lon: 24.9416,
                    address: Some("Aleksanterinkatu 52".into()),
                    notes: None,
                    caller: None,
                    callback: None,
                    hazards: Vec::new(),
                    narrative: Vec::new(),
                },
            }),
        }));
    }

    async fn expect_ack(&mut self, upto: u64) {
        assert_eq!(self.frame().await, ClientFrame::Ack { upto });
    }

    fn close(&self, code: u16, reason: &'static str) {
        self.say.send(Say::Close(code, reason)).unwrap();
    }
}

/// A TLS + WebSocket listener on 127.0.0.1 with a fresh self-signed certificate.
struct FakeServer {
    addr: SocketAddr,
    pin: String,
    conns: mpsc::UnboundedReceiver<Result<Conn, String>>,
}

impl FakeServer {
    async fn start() -> Self {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der: CertificateDer<'static> = key.cert.der().clone();
        let pin = field_client::tls::fingerprint(&der);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![der],
            PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns_tx, conns) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let conns_tx = conns_tx.clone();
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let _ = conns_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
                    let (heard_tx, heard) = mpsc::unbounded_channel();
                    let (say, mut say_rx) = mpsc::unbounded_channel();
                    let _ = conns_tx.send(Ok(Conn { heard, say }));
                    loop {
                        tokio::select! {
                            msg = ws.next() => match msg {
                                Some(Ok(WsMessage::Text(t))) => {
                                    let frame = ClientFrame::parse(t.as_str())
                                        .unwrap_or_else(|e| panic!("client sent a bad frame: {e}"));
                                    let _ = heard_tx.send(Heard::Frame(frame));
                                }
                                Some(Ok(WsMessage::Pong(_))) => {
                                    let _ = heard_tx.send(Heard::Pong);
                                }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => return,
                            },
                            say = say_rx.recv() => match say {
                                Some(Say::Frame(f)) => {
                                    let text = serde_json::to_string(&f).unwrap();
                                    ws.send(WsMessage::text(text)).await.unwrap();
                                }
                                Some(Say::Raw(text)) => ws.send(WsMessage::text(text)).await.unwrap(),
                                Some(Say::Ping) => ws.send(WsMessage::Ping(Vec::new().into())).await.unwrap(),
                                Some(Say::Close(code, reason)) => {
                                    let _ = ws.close(Some(CloseFrame {
                                        code: CloseCode::from(code),
                                        reason: reason.into(),
                                    })).await;
                                }
                                // The test dropped the connection: cut it without a close frame.
                                None => return,
                            },
                        }
                    }
                });
            }
        });
        Self { addr, pin, conns }
    }

    async fn accept(&mut self) -> Conn {
        within("a connection", self.conns.recv())
            .await
            .unwrap()
            .expect("TLS handshake failed")
    }

    fn credential(&self) -> Credential {
        Credential {
            server_url: format!("https://{}", self.addr),
            other_servers: Vec::new(),
            pins: vec![self.pin.clone()],
            ca_cert_pem: None,
            device_id: 3,
            token: "t0k3n".into(),
            unit_id: 12,
            call_sign: "P-12".into(),
        }
    }
}

/// A client whose reconnects are quick, so tests do not wait on the reference backoff.
async fn client(credential: Credential, state: &Path) -> (Client, EventLoop) {
    let mut options = ClientOptions::new(credential, state);
    options.backoff = Backoff {
        base: Duration::from_millis(5),
        cap: Duration::from_millis(50),
    };
    Client::new(options).await.unwrap()
}

struct Running {
    events: mpsc::Receiver<Event>,
    task: JoinHandle<Result<(), ClientError>>,
}

impl Running {
    fn start(event_loop: EventLoop) -> Self {
        let (tx, events) = mpsc::channel(16);
        Self {
            events,
            task: tokio::spawn(event_loop.run(tx)),
        }
    }

    async fn next(&mut self) -> Event {
        within("an event", self.events.recv())
            .await
            .expect("event loop stopped")
    }

    async fn expect_order(&mut self, seq: u64, order_id: i64) {
        match self.next().await {
            Event::Order(o) => assert_eq!((o.seq, o.order.order_id), (seq, order_id)),
            other => panic!("expected order {order_id}, got {other:?}"),
        }
    }

    async fn expect_connected(&mut self) {
        assert!(matches!(self.next().await, Event::Connected(_)));
    }

    /// Drops the receiver, which must make the loop return `Ok`.
    async fn stop(self) {
        drop(self.events);
        within("the loop to stop", self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn deliveries_are_persisted_before_ack_and_surfaced_once() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, event_loop) = client(server.credential(), dir.path()).await;
    let mut run = Running::start(event_loop);

    let mut conn = server.accept().await;
    let hello = conn.hello().await;
    assert_eq!(hello.protocol, dispatch_protocol::PROTOCOL_VERSION);
    assert_eq!((hello.device_id, hello.token.as_str()), (3, "t0k3n"));
    assert_eq!((hello.epoch, hello.ack_floor), (None, 0));
    conn.welcome("e1", false, 20);
    run.expect_connected().await;

    conn.deliver(1, 17);
    conn.expect_ack(1).await;
    // The ack is out, so the order must already be on disk.
    let held: Vec<i64> = client
        .orders()
        .await
        .unwrap()
        .iter()
        .map(|o| o.order.order_id)
        .collect();
    assert_eq!(held, [17]);
    run.expect_order(1, 17).await;

    // A redelivery is acknowledged again but not surfaced again; the next event is order 18.
    conn.deliver(1, 17);
    conn.expect_ack(1).await;
    // A kind this client does not know is persisted and acknowledged, and not surfaced.
    conn.say
        .send(Say::Raw(
            r#"{"type":"deliver","seq":2,"message_id":"note-1","queued_at_ms":5,
                "body":{"kind":"broadcast","text":"all units"}}"#
                .into(),
        ))
        .unwrap();
    conn.expect_ack(2).await;
    conn.deliver(3, 18);
    conn.expect_ack(3).await;
    run.expect_order(3, 18).await;

    // Pings are answered.
    conn.say.send(Say::Ping).unwrap();
    assert_eq!(conn.next().await, Heard::Pong);

    // The server goes away and comes back: the floor is remembered.
    conn.close(1001, "server shutting down");
    match run.next().await {
        Event::Disconnected { code, .. } => assert_eq!(code, Some(1001)),
        other => panic!("expected disconnect, got {other:?}"),
    }
    let mut conn = server.accept().await;
    let hello = conn.hello().await;
    assert_eq!((hello.epoch.as_deref(), hello.ack_floor), (Some("e1"), 3));
    conn.welcome("e1", false, 20);
    run.expect_connected().await;
    // The floor is confirmed again at once, in case a crash came between persist and ack.
    conn.expect_ack(3).await;
    conn.deliver(3, 18);
    conn.expect_ack(3).await;
    drop(conn);
    run.stop().await;
    drop(client);

    // A restart of the process: nothing is surfaced twice, the floor survives.
    let (_client, event_loop) = self::client(server.credential(), dir.path()).await;
    let mut run = Running::start(event_loop);
    let mut conn = server.accept().await;
    assert_eq!(conn.hello().await.ack_floor, 3);
    conn.welcome("e1", false, 20);
    run.expect_connected().await;
    conn.expect_ack(3).await;
    conn.deliver(3, 18);
    conn.expect_ack(3).await;
    conn.deliver(4, 19);
    conn.expect_ack(4).await;
    run.expect_order(4, 19).await;
    run.stop().await;
}

#[tokio::test]
async fn pending_actions_are_resent_in_order_until_answered() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, event_loop) = client(server.credential(), dir.path()).await;
    // Made while offline: they wait in the outbox.
    let accept = client.accept(17).await.unwrap();
    let en_route = client
        .status(ReportedStatus::EnRoute, Some(17))
        .await
        .unwrap();
    let mut run = Running::start(event_loop);

    let mut conn = server.accept().await;
    conn.hello().await;
    conn.welcome("e1", false, 20);
    run.expect_connected().await;
    // Each carries when the officer did it (device clock), also when sent later.
    let tapped = |at_ms: Option<i64>| at_ms.is_some_and(|t| t <= field_client::unix_ms());
    let ClientFrame::Accept {
        action_id,
        order_id: 17,
        at_ms,
    } = conn.frame().await
    else {
        panic!("the queued accept first")
    };
    assert_eq!(action_id, accept);
    assert!(tapped(at_ms));
    let ClientFrame::Status {
        action_id,
        status: ReportedStatus::EnRoute,
        order_id: Some(17),
        at_ms,
    } = conn.frame().await
    else {
        panic!("then the queued status")
    };
    assert_eq!(action_id, en_route);
    assert!(tapped(at_ms));
    // One made while connected goes out at once.
    let decline = client.decline(18, "vehicle_problem", None).await.unwrap();
    assert_eq!(
        conn.frame().await.action_id(),
        Some(decline.as_str()),
        "live action"
    );
    conn.say(ServerFrame::Rejected {
        action_id: decline.clone(),
        code: "not_your_order".into(),
        message: "order 18 is not for this unit".into(),
    });
    match run.next().await {
        Event::ActionRejected {
            action_id, code, ..
        } => assert_eq!((action_id, code.as_str()), (decline, "not_your_order")),
        other => panic!("expected rejection, got {other:?}"),
    }
    conn.say(ServerFrame::Done {
        action_id: accept.clone(),
    });
    assert_eq!(
        run.next().await,
        Event::ActionDone {
            action_id: accept.clone()
        }
    );

    // The link breaks before `en_route` is answered: only it is resent.
    drop(conn);
    assert!(matches!(run.next().await, Event::Disconnected { .. }));
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.welcome("e1", false, 20);
    run.expect_connected().await;
    assert_eq!(conn.frame().await.action_id(), Some(en_route.as_str()));
    conn.say(ServerFrame::Done {
        action_id: en_route.clone(),
    });
    assert_eq!(
        run.next().await,
        Event::ActionDone {
            action_id: en_route
        }
    );
    assert!(client.pending_actions().await.unwrap().is_empty());
    // Invalid requests are refused locally and change nothing.
    assert!(matches!(
        client.decline(19, "", None).await,
        Err(ClientError::Invalid(_))
    ));
    assert!(client.pending_actions().await.unwrap().is_empty());
    run.stop().await;
}

#[tokio::test]
async fn resync_replays_without_surfacing_known_orders() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_client, event_loop) = client(server.credential(), dir.path()).await;
    let mut run = Running::start(event_loop);

    let mut conn = server.accept().await;
    conn.hello().await;
    conn.welcome("e1", false, 20);
    run.expect_connected().await;
    conn.deliver(1, 17);
    conn.expect_ack(1).await;
    conn.deliver(2, 18);
    conn.expect_ack(2).await;
    run.expect_order(1, 17).await;
    run.expect_order(2, 18).await;
    conn.close(1001, "restoring database");
    assert!(matches!(run.next().await, Event::Disconnected { .. }));

    let mut conn = server.accept().await;
    assert_eq!(conn.hello().await.ack_floor, 2);
    conn.welcome("e2", true, 20);
    run.expect_connected().await;
    // Replay from seq 1 under the new epoch, with renumbered entries.
    conn.deliver(1, 18);
    conn.expect_ack(1).await;
    conn.deliver(2, 19);
    conn.expect_ack(2).await;
    run.expect_order(2, 19).await;
    conn.close(1001, "bye");
    assert!(matches!(run.next().await, Event::Disconnected { .. }));

    let mut conn = server.accept().await;
    let hello = conn.hello().await;
    assert_eq!((hello.epoch.as_deref(), hello.ack_floor), (Some("e2"), 2));
    run.stop().await;
}

#[tokio::test]
async fn non_retryable_close_stops_the_loop() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_client, event_loop) = client(server.credential(), dir.path()).await;
    let mut run = Running::start(event_loop);
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.close(4001, "unknown device or wrong token");
    assert_eq!(
        run.next().await,
        Event::Fatal {
            code: 4001,
            reason: "unknown device or wrong token".into()
        }
    );
    let result = within("the loop to stop", run.task).await.unwrap();
    assert!(
        matches!(result, Err(ClientError::Fatal { code: 4001, .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_address_that_cannot_be_reached_gives_way_to_the_next_one() {
    let mut server = FakeServer::start().await;
    // A node that is down: nothing listens at its address.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap();
    drop(down);
    let mut credential = server.credential();
    credential.other_servers = vec![credential.server_url.clone()];
    credential.server_url = format!("https://{down_addr}");
    let dir = tempfile::tempdir().unwrap();
    let (_client, event_loop) = client(credential, dir.path()).await;
    let mut run = Running::start(event_loop);
    let mut conn = server.accept().await;
    conn.hello().await;
    conn.welcome("e1", false, 30);
    run.expect_connected().await;
    // A lost connection: the client comes back, to the address that answers.
    drop(conn);
    assert!(matches!(run.next().await, Event::Disconnected { .. }));
    let mut again = server.accept().await;
    assert_eq!(again.hello().await.epoch.as_deref(), Some("e1"));
    run.stop().await;
}

#[tokio::test]
async fn the_addresses_named_in_welcome_are_kept_in_the_credential() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let credential = server.credential();
    credential.save(dir.path()).unwrap();
    let (_client, event_loop) = client(credential.clone(), dir.path()).await;
    let mut run = Running::start(event_loop);
    let mut conn = server.accept().await;
    conn.hello().await;
    let standby = "https://10.0.0.9:8443";
    conn.say(ServerFrame::Welcome(Welcome {
        device_id: 3,
        unit_id: 12,
        call_sign: "P-12".into(),
        epoch: "e1".into(),
        resync: false,
        server_time_ms: 0,
        heartbeat_secs: 30,
        servers: vec![
            credential.server_url.clone(),
            format!("{standby}/"),
            "ftp://not-usable".into(),
        ],
    }));
    run.expect_connected().await;
    let saved = Credential::load(dir.path()).unwrap();
    assert_eq!(saved.server_url, credential.server_url);
    assert_eq!(saved.other_servers, [standby]);
    run.stop().await;
}

#[tokio::test]
async fn silent_link_is_dropped_and_reconnected() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_client, event_loop) = client(server.credential(), dir.path()).await;
    let mut run = Running::start(event_loop);
    let mut conn = server.accept().await;
    conn.hello().await;
    // A one-second heartbeat, then silence: the client must give up on this socket.
    conn.welcome("e1", false, 1);
    run.expect_connected().await;
    match run.next().await {
        Event::Disconnected { code: None, reason } => assert!(reason.contains("dead"), "{reason}"),
        other => panic!("expected a dead-link disconnect, got {other:?}"),
    }
    let mut again = server.accept().await;
    assert_eq!(again.hello().await.epoch.as_deref(), Some("e1"));
    drop(conn);
    run.stop().await;
}

#[tokio::test]
async fn wrong_pin_never_reaches_the_channel() {
    let mut server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut credential = server.credential();
    credential.pins = vec!["00".repeat(32)];
    let (_client, event_loop) = client(credential, dir.path()).await;
    let run = Running::start(event_loop);
    let failure = within("a refused handshake", server.conns.recv())
        .await
        .unwrap();
    assert!(failure.is_err(), "the TLS handshake must fail");
    run.stop().await;
}
