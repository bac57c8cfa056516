//! The connection owner: connects, says hello, persists and acknowledges deliveries, (re)sends
//! pending actions, watches for a dead link and reconnects with backoff until told to stop.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use dispatch_protocol::{
    close, ClientFrame, Hello, Location, Message, ServerFrame, Welcome, MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use rand::SeedableRng;
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::client::{ClientError, ClientOptions, Event, Shared};
use crate::credential::{Credential, Endpoint};
use crate::http::error_chain;
use crate::inbox::{Inbox, InboxMessage, RawDelivery, StoreError, Stored};

type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// Heartbeat assumed until `welcome` names the server's.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// A link is dead after this many heartbeat intervals without a single frame.
const SILENT_INTERVALS: u32 = 3;
/// Longest wait for one outgoing frame to be written; a stuck write is a dead link too.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the device channel. Create it with [`crate::Client::new`] and drive it with
/// [`EventLoop::run`], usually in its own task.
pub struct EventLoop {
    credential: Credential,
    /// Where the credential is rewritten when the server announces new pins.
    state_dir: std::path::PathBuf,
    /// The service's addresses (`server_url`, then `other_servers`) and the one in use: an
    /// attempt that ends without a `welcome` moves to the next.
    endpoints: Vec<Endpoint>,
    current: usize,
    tls: TlsConnector,
    backoff: Backoff,
    connect_timeout: Duration,
    inbox: Inbox,
    wake: Arc<Notify>,
    location: watch::Receiver<Option<Location>>,
    /// False once every `Client` is gone, so the location branch stops firing.
    location_open: bool,
    /// Test-only fault point from the environment (a one-shot one is disarmed once it fired).
    crash_at: Option<CrashAt>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("server", &self.credential.server_url)
            .field("call_sign", &self.credential.call_sign)
            .finish_non_exhaustive()
    }
}

/// Why one connection ended.
enum End {
    /// The application dropped the event receiver: stop quietly.
    AppGone,
    /// The server forbade retrying.
    Fatal { code: u16, reason: String },
    /// Anything else: reconnect.
    Lost { code: Option<u16>, reason: String },
}

impl End {
    fn lost(reason: impl Into<String>) -> Self {
        Self::Lost {
            code: None,
            reason: reason.into(),
        }
    }
}

impl From<StoreError> for End {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "local store failed; dropping the connection without acknowledging");
        Self::lost(e.to_string())
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for End {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::lost(e.to_string())
    }
}

/// How one connection attempt went.
struct Attempt {
    end: End,
    /// The WebSocket was open, so its end is a disconnection worth reporting.
    established: bool,
    /// `welcome` arrived, so the backoff starts over.
    welcomed: bool,
}

impl Attempt {
    fn failed(reason: String) -> Self {
        Self {
            end: End::lost(reason),
            established: false,
            welcomed: false,
        }
    }
}

/// State of one live connection.
struct Session {
    ws: Ws,
    /// Actions already written on this connection, so a wake-up does not send them twice.
    sent: HashSet<String>,
    welcomed: bool,
    silence_limit: Duration,
    deadline: Instant,
    /// Code and reason of a close frame from the server, reported once the socket ends.
    closed_by_server: Option<(u16, String)>,
}

impl Session {
    fn heard(&mut self) {
        self.deadline = Instant::now() + self.silence_limit;
    }

    /// How the socket ended: the server's close code if it sent one, else the transport error.
    fn ended(&mut self, error: Option<String>) -> End {
        match self.closed_by_server.take() {
            Some((code, reason)) if !close::is_retryable(code) => End::Fatal { code, reason },
            Some((code, reason)) => End::Lost {
                code: Some(code),
                reason,
            },
            None => End::lost(error.unwrap_or_else(|| "connection closed".into())),
        }
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<(), End> {
        let text = serde_json::to_string(frame).map_err(|e| End::lost(e.to_string()))?;
        self.send_text(text).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), End> {
        match timeout(WRITE_TIMEOUT, self.ws.send(WsMessage::text(text))).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(End::lost("timed out writing to the server")),
        }
    }
}

/// A server frame, read leniently so that a delivery of an unknown kind is still persisted
/// and acknowledged as the protocol requires.
enum Incoming {
    Welcome(Welcome),
    Delivery(RawDelivery),
    Done {
        action_id: String,
    },
    Rejected {
        action_id: String,
        code: String,
        message: String,
    },
    Pins(Vec<String>),
}

fn parse_incoming(text: &str) -> Result<Incoming, String> {
    #[derive(Deserialize)]
    struct Tagged {
        #[serde(rename = "type")]
        kind: String,
    }
    match serde_json::from_str::<ServerFrame>(text) {
        Ok(ServerFrame::Welcome(w)) => Ok(Incoming::Welcome(w)),
        Ok(ServerFrame::Deliver(d)) => Ok(Incoming::Delivery(RawDelivery::from(&d))),
        Ok(ServerFrame::Done { action_id }) => Ok(Incoming::Done { action_id }),
        Ok(ServerFrame::Rejected {
            action_id,
            code,
            message,
        }) => Ok(Incoming::Rejected {
            action_id,
            code,
            message,
        }),
        Ok(ServerFrame::Pins { pins }) => Ok(Incoming::Pins(pins)),
        Err(e) => match serde_json::from_str::<Tagged>(text) {
            Ok(t) if t.kind == "deliver" => serde_json::from_str::<RawDelivery>(text)
                .map(Incoming::Delivery)
                .map_err(|e| e.to_string()),
            _ => Err(e.to_string()),
        },
    }
}

impl EventLoop {
    pub(crate) fn new(options: ClientOptions, shared: Shared) -> Result<Self, ClientError> {
        let endpoints = options.credential.endpoints()?;
        let trust = options.credential.trust()?;
        let config = trust
            .client_config()
            .map_err(crate::credential::CredentialError::from)?;
        Ok(Self {
            credential: options.credential,
            state_dir: options.state_dir,
            endpoints,
            current: 0,
            tls: TlsConnector::from(Arc::new(config)),
            backoff: options.backoff,
            connect_timeout: options.connect_timeout,
            inbox: shared.inbox,
            wake: shared.wake,
            location: shared.location,
            location_open: true,
            crash_at: CrashAt::from_env(),
        })
    }

    /// Keeps the device connected and reports to `events` until the application drops the
    /// receiver (returns `Ok`) or the server closes for good.
    ///
    /// Orders persisted earlier but never reported (the process stopped in between) are
    /// reported first.
    ///
    /// # Errors
    /// [`ClientError::Fatal`] after a non-retryable close (also reported as [`Event::Fatal`]);
    /// [`ClientError::Store`] when the store cannot be read at start.
    pub async fn run(mut self, events: mpsc::Sender<Event>) -> Result<(), ClientError> {
        let span = tracing::info_span!("device", unit = %self.credential.call_sign);
        async move {
            for message in self.inbox.unsurfaced().await? {
                // Marked first: once the application holds the event it must never get it
                // again, even if this process dies the next instant.
                self.inbox.mark_surfaced(&message.message_id).await?;
                if events.send(surface(message)).await.is_err() {
                    return Ok(());
                }
            }
            let mut rng = rand::rngs::StdRng::from_entropy();
            let mut failures: u32 = 0;
            loop {
                let outcome = self.attempt(&events).await;
                let server = self.endpoints[self.current].base.clone();
                if outcome.welcomed {
                    failures = 0;
                } else {
                    // This address did not take us: the next one (another node) gets the next try.
                    self.current = (self.current + 1) % self.endpoints.len();
                }
                let delay = self.backoff.delay(failures, &mut rng);
                failures = failures.saturating_add(1);
                let retry = format!("retrying in {:.1} s", delay.as_secs_f64());
                match outcome.end {
                    End::AppGone => return Ok(()),
                    End::Fatal { code, reason } => {
                        tracing::error!(code, %reason, "server closed the channel for good; not reconnecting");
                        let _ = events
                            .send(Event::Fatal {
                                code,
                                reason: reason.clone(),
                            })
                            .await;
                        return Err(ClientError::Fatal { code, reason });
                    }
                    End::Lost { code, reason } if outcome.established => {
                        tracing::warn!(?code, "disconnected: {reason}; {retry}");
                        if events.send(Event::Disconnected { code, reason }).await.is_err() {
                            return Ok(());
                        }
                    }
                    End::Lost { reason, .. } => {
                        tracing::warn!(%server, "cannot connect: {reason}; {retry}");
                    }
                }
                tokio::select! {
                    () = sleep(delay) => {}
                    () = events.closed() => return Ok(()),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One connection attempt and, if it succeeds, the whole session on it.
    async fn attempt(&mut self, events: &mpsc::Sender<Event>) -> Attempt {
        let ws = match timeout(self.connect_timeout, self.connect()).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(reason)) => return Attempt::failed(reason),
            Err(_) => return Attempt::failed("connect timed out".into()),
        };
        let mut session = Session {
            ws,
            sent: HashSet::new(),
            welcomed: false,
            silence_limit: DEFAULT_HEARTBEAT * SILENT_INTERVALS,
            deadline: Instant::now() + DEFAULT_HEARTBEAT * SILENT_INTERVALS,
            closed_by_server: None,
        };
        let end = match self.session(&mut session, events).await {
            Err(end) => end,
            Ok(never) => match never {},
        };
        Attempt {
            end,
            established: true,
            welcomed: session.welcomed,
        }
    }

    /// TCP, then TLS with the pinned configuration, then the WebSocket upgrade.
    async fn connect(&self) -> Result<Ws, String> {
        let endpoint = &self.endpoints[self.current];
        let Endpoint { host, port, .. } = endpoint;
        let tcp = TcpStream::connect((host.as_str(), *port))
            .await
            .map_err(|e| format!("TCP connect to {host}:{port}: {e}"))?;
        // Frames are small and latency matters more than packing.
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {}", error_chain(&e)))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(endpoint.channel_url(), tls, Some(config))
                .await
                .map_err(|e| format!("WebSocket upgrade: {}", error_chain(&e)))?;
        Ok(ws)
    }

    /// One connection, from `hello` until it ends; returns only by `Err(End)`.
    async fn session(
        &mut self,
        s: &mut Session,
        events: &mpsc::Sender<Event>,
    ) -> Result<Infallible, End> {
        let state = self.inbox.channel_state().await?;
        tracing::debug!(epoch = ?state.epoch, ack_floor = state.ack_floor, "sending hello");
        s.send(&ClientFrame::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            device_id: self.credential.device_id,
            token: self.credential.token.clone(),
            epoch: state.epoch,
            ack_floor: state.ack_floor,
            clock_ms: Some(crate::unix_ms()),
        }))
        .await?;
        loop {
            tokio::select! {
                message = s.ws.next() => {
                    s.heard();
                    match message {
                        Some(Ok(WsMessage::Text(text))) => {
                            self.handle_text(s, text.as_str(), events).await?;
                        }
                        Some(Ok(WsMessage::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            // Keep reading: tungstenite answers the close and then ends the stream.
                            s.closed_by_server = Some((code, reason));
                        }
                        Some(Ok(WsMessage::Ping(_))) => {
                            // tungstenite queued the pong; push it out now.
                            s.ws.flush().await?;
                        }
                        Some(Ok(WsMessage::Binary(_))) => {
                            tracing::warn!("ignoring a binary frame; the protocol uses text only");
                        }
                        Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                        Some(Err(e)) => return Err(s.ended(Some(e.to_string()))),
                        None => return Err(s.ended(None)),
                    }
                }
                () = self.wake.notified(), if s.welcomed => self.send_pending(s).await?,
                changed = self.location.changed(), if s.welcomed && self.location_open => {
                    if changed.is_ok() {
                        self.send_location(s).await?;
                    } else {
                        self.location_open = false;
                    }
                }
                () = sleep_until(s.deadline) => {
                    return Err(End::lost(format!(
                        "nothing heard for {} s; link considered dead",
                        s.silence_limit.as_secs()
                    )));
                }
                () = events.closed() => {
                    let _ = timeout(WRITE_TIMEOUT, s.ws.close(None)).await;
                    return Err(End::AppGone);
                }
            }
        }
    }

    async fn handle_text(
        &mut self,
        s: &mut Session,
        text: &str,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), End> {
        let incoming = match parse_incoming(text) {
            Ok(incoming) => incoming,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a frame this client does not understand");
                return Ok(());
            }
        };
        match incoming {
            Incoming::Welcome(welcome) => self.on_welcome(s, welcome, events).await,
            _ if !s.welcomed => {
                tracing::warn!("ignoring a frame that arrived before welcome");
                Ok(())
            }
            Incoming::Delivery(delivery) => self.on_delivery(s, delivery, events).await,
            Incoming::Pins(pins) => {
                self.on_pins(&pins);
                Ok(())
            }
            Incoming::Done { action_id } => {
                if self.inbox.finish_action(&action_id, true).await? {
                    tracing::debug!(%action_id, "action done");
                    emit(events, Event::ActionDone { action_id }).await?;
                } else {
                    tracing::debug!(%action_id, "repeated done");
                }
                Ok(())
            }
            Incoming::Rejected {
                action_id,
                code,
                message,
            } => {
                if self.inbox.finish_action(&action_id, false).await? {
                    tracing::warn!(%action_id, %code, %message, "action rejected");
                    emit(
                        events,
                        Event::ActionRejected {
                            action_id,
                            code,
                            message,
                        },
                    )
                    .await?;
                }
                Ok(())
            }
        }
    }

    /// Adopts the server's pin set for the next connections, and keeps it across restarts
    /// when the credential lives in the state directory. A bad announcement is ignored.
    fn on_pins(&mut self, pins: &[String]) {
        let mut credential = self.credential.clone();
        match credential.adopt_pins(pins) {
            Ok(false) => return,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!("ignoring the server's pins: {e}");
                return;
            }
        }
        let config = credential
            .trust()
            .map_err(|e| e.to_string())
            .and_then(|t| t.client_config().map_err(|e| e.to_string()));
        let config = match config {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!("ignoring the server's pins: {e}");
                return;
            }
        };
        tracing::info!(pins = ?credential.pins, "the server announced its certificate pins");
        self.keep(&credential, "pins");
        self.tls = TlsConnector::from(Arc::new(config));
        self.credential = credential;
    }

    /// Saves an updated credential when it lives in the state directory, so that what changed
    /// (`what`) survives a restart; a failed save leaves it in force until this process stops.
    fn keep(&self, credential: &Credential, what: &str) {
        if Credential::exists(&self.state_dir) {
            if let Err(e) = credential.save(&self.state_dir) {
                tracing::error!("the new {what} hold until this process stops: {e}");
            }
        }
    }

    /// Adopts the service's addresses named in `welcome` for the next connections (keeping the
    /// one in use current), and keeps them across restarts like the pins.
    fn on_servers(&mut self, servers: &[String]) {
        let mut credential = self.credential.clone();
        if !credential.adopt_servers(servers) {
            return;
        }
        let Ok(endpoints) = credential.endpoints() else {
            return;
        };
        tracing::info!(servers = ?credential.other_servers, "the server named the service's other addresses");
        self.keep(&credential, "addresses");
        let in_use = self.endpoints[self.current].base.clone();
        self.current = endpoints.iter().position(|e| e.base == in_use).unwrap_or(0);
        self.endpoints = endpoints;
        self.credential = credential;
    }

    async fn on_welcome(
        &mut self,
        s: &mut Session,
        welcome: Welcome,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), End> {
        let previous = self.inbox.channel_state().await?.epoch;
        let reset = self
            .inbox
            .begin_epoch(&welcome.epoch, welcome.resync)
            .await?;
        tracing::info!(
            epoch = %welcome.epoch,
            resync = welcome.resync,
            heartbeat_secs = welcome.heartbeat_secs,
            "connected as {}",
            welcome.call_sign
        );
        if reset && previous.is_some() {
            tracing::info!("server epoch changed: replaying from the start, keeping the inbox");
        }
        // Deliveries persisted just before a crash were never acknowledged: confirm the floor
        // now so the server records their receipt (it resumes after the floor either way).
        if !reset {
            let floor = self.inbox.channel_state().await?.ack_floor;
            if floor > 0 {
                s.send(&ClientFrame::Ack { upto: floor }).await?;
            }
        }
        self.on_servers(&welcome.servers);
        s.welcomed = true;
        s.silence_limit = Duration::from_secs(welcome.heartbeat_secs.max(1)) * SILENT_INTERVALS;
        s.heard();
        emit(events, Event::Connected(welcome)).await?;
        self.send_pending(s).await?;
        self.send_location(s).await
    }

    /// Persist, then acknowledge, then tell the application if it is new. A failed
    /// acknowledgement (the server went away) still tells the application first: the message
    /// is on disk, and the server's resend would be a duplicate that is not surfaced again.
    async fn on_delivery(
        &mut self,
        s: &mut Session,
        delivery: RawDelivery,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), End> {
        crash_point(self.crash_at, CrashAt::AfterReceive);
        let stored = self.inbox.store_delivery(&delivery).await?;
        crash_point(self.crash_at, CrashAt::AfterPersist);
        let acknowledged = if self
            .crash_at
            .take_if(|at| *at == CrashAt::AckLost)
            .is_some()
        {
            Err(End::lost(
                "fault point: the link dropped as the receipt was sent",
            ))
        } else {
            s.send(&ClientFrame::Ack { upto: delivery.seq }).await
        };
        match stored {
            Stored::New(Some(message)) => {
                match &message.body {
                    Message::Order(order) => tracing::info!(
                        seq = delivery.seq,
                        order_id = order.order_id,
                        incident = order.incident.id,
                        "order received: {} (priority {})",
                        order.incident.kind,
                        order.incident.priority
                    ),
                    other => tracing::info!(
                        seq = delivery.seq,
                        message_id = %delivery.message_id,
                        "message received: {}",
                        other.kind()
                    ),
                }
                // Marked before the hand-over, as above; the message stays in the inbox
                // either way.
                self.inbox.mark_surfaced(&delivery.message_id).await?;
                emit(events, surface(*message)).await?;
            }
            Stored::New(None) => {}
            Stored::Duplicate => {
                tracing::debug!(seq = delivery.seq, message_id = %delivery.message_id, "duplicate delivery acknowledged");
            }
        }
        acknowledged
    }

    /// Sends every unanswered action not yet sent on this connection, oldest first.
    async fn send_pending(&mut self, s: &mut Session) -> Result<(), End> {
        for action in self.inbox.pending_actions().await? {
            if s.sent.insert(action.action_id.clone()) {
                tracing::debug!(action_id = %action.action_id, "sending action");
                s.send_text(action.frame).await?;
            }
        }
        Ok(())
    }

    async fn send_location(&mut self, s: &mut Session) -> Result<(), End> {
        let latest = *self.location.borrow_and_update();
        match latest {
            Some(location) => s.send(&ClientFrame::Location(location)).await,
            None => Ok(()),
        }
    }
}

/// The event that hands a new message to the application.
fn surface(message: InboxMessage) -> Event {
    match message.as_order() {
        Some(order) => Event::Order(order),
        None => Event::Message(message),
    }
}

/// Test-only fault points (with the `fault-points` feature), chosen with the
/// `FIELD_CLIENT_CRASH_AT` environment variable:
/// the process aborts (as a crash or power loss would) at that point of handling a delivery, or
/// loses its connection there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashAt {
    /// A delivery was read off the socket but not yet persisted.
    AfterReceive,
    /// A delivery is persisted (fsynced) but not yet acknowledged to the server.
    AfterPersist,
    /// Not a crash: once, the connection drops just as a persisted delivery's receipt is sent
    /// (as when the server dies at that moment), and the client reconnects.
    AckLost,
}

/// Name of the environment variable that arms a [`CrashAt`] fault point.
pub const CRASH_AT_VAR: &str = "FIELD_CLIENT_CRASH_AT";

impl CrashAt {
    /// Reads [`CRASH_AT_VAR`]; an unknown value is reported and ignored. Always `None` unless
    /// the crate is built with its `fault-points` feature (the tests' builds).
    pub fn from_env() -> Option<Self> {
        if !cfg!(feature = "fault-points") {
            return None;
        }
        let value = std::env::var(CRASH_AT_VAR).ok()?;
        match value.as_str() {
            "after_receive" => Some(Self::AfterReceive),
            "after_persist" => Some(Self::AfterPersist),
            "ack_lost" => Some(Self::AckLost),
            "" => None,
            other => {
                tracing::error!(
                    "ignoring {CRASH_AT_VAR}={other:?}: expected after_receive, after_persist or ack_lost"
                );
                None
            }
        }
    }
}

fn crash_point(armed: Option<CrashAt>, here: CrashAt) {
    if armed == Some(here) {
        eprintln!("{CRASH_AT_VAR}: aborting at {here:?} as asked");
        std::process::abort();
    }
}

async fn emit(events: &mpsc::Sender<Event>, event: Event) -> Result<(), End> {
    events.send(event).await.map_err(|_| End::AppGone)
}
