//! One device's WebSocket session: hello and authentication, replay of the outbox from the
//! device's floor, receipts, officer actions, positions and heartbeats. Written over any
//! `Sink`/`Stream` of WebSocket messages, so a test drives it with channels.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use dispatch_protocol::{
    close, Action, ActionFrame, ClientFrame, Delivery, Hello, Location, ServerFrame, Welcome,
    PROTOCOL_VERSION,
};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tracing::Instrument;

use super::{ChannelSettings, Hub, Kick, Mailbox};
use crate::auth::{constant_time_eq, sha256_hex};
use crate::domain::now_ms;
use crate::geo::LiveUnits;
use crate::store::{self, ActionOutcome, DeviceAuth, PendingDelivery, PositionChange, Store};

/// How long a new connection has to send `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Outbox entries read per query while replaying.
const REPLAY_PAGE: u32 = 256;

/// Largest message the WebSocket layer reads at all. Between
/// [`dispatch_protocol::MAX_FRAME_BYTES`] and this, the frame is read and refused with
/// `4008`; above it the transport refuses it unread, and the session closes with `4008` too.
pub const TRANSPORT_FRAME_LIMIT: usize = 1024 * 1024;

/// Read and write buffer of one device connection, bytes: tungstenite's defaults (128 KiB each
/// way) dominated the memory of an idle connection, and device frames are small (a larger one
/// still arrives, in more reads).
pub const CONNECTION_BUFFER: usize = 8 * 1024;

/// What a session needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub store: Store,
    pub devices: Hub,
    /// Updated directly only when a fix cannot be stored (otherwise the store's commit does it).
    pub live: LiveUnits,
    pub settings: ChannelSettings,
    /// The certificate fingerprints to announce (see [`crate::tls::watch`]).
    pub pins: tokio::sync::watch::Receiver<Arc<[String]>>,
    /// Records how long handed entries took from commit to the socket.
    pub metrics: crate::metrics::Metrics,
    /// Every address of the service (`server_urls`), told to the device in `welcome`.
    pub servers: Arc<[String]>,
}

/// Why a session ends: a close code and reason to send, or nothing when the peer is gone.
type End = Option<(u16, String)>;

fn end(code: u16, reason: impl Into<String>) -> End {
    Some((code, reason.into()))
}

/// The `pins` frame for the set now published, marked as seen.
fn pins_frame(pins: &mut tokio::sync::watch::Receiver<Arc<[String]>>) -> ServerFrame {
    ServerFrame::Pins {
        pins: pins.borrow_and_update().to_vec(),
    }
}

/// Runs a device session until it closes; the events its writes append record `source`, the
/// address the device connected from (the upgrade runs in a task of its own, outside the
/// request's).
pub async fn serve(socket: WebSocket, ctx: SessionContext, source: Option<IpAddr>) {
    let (mut sink, mut stream) = socket.split();
    let result = store::source::with_source(source, run(&mut sink, &mut stream, &ctx)).await;
    if let Some((code, reason)) = result {
        tracing::info!(code, %reason, "closing device connection");
        let frame = CloseFrame {
            code,
            reason: close_reason(&reason).into(),
        };
        let _ = sink.send(WsMessage::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// The session over any sink and stream of WebSocket messages; returns the close to send.
pub async fn run<S, R>(sink: &mut S, stream: &mut R, ctx: &SessionContext) -> End
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin,
    R: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
{
    let hello = match timeout(HELLO_TIMEOUT, stream.next()).await {
        Err(_) => return end(close::HELLO_TIMEOUT, "no hello within 10 seconds"),
        Ok(None) => return None,
        Ok(Some(Err(e))) => return transport_error(&e),
        Ok(Some(Ok(WsMessage::Text(text)))) => match ClientFrame::parse(&text) {
            Ok(ClientFrame::Hello(h)) => h,
            Ok(_) => return end(close::PROTOCOL_ERROR, "the first frame must be hello"),
            Err(e) => return end(frame_error_code(&e.0), e.0),
        },
        Ok(Some(Ok(_))) => {
            return end(
                close::PROTOCOL_ERROR,
                "the first frame must be a text hello",
            )
        }
    };
    let device = match authenticate(&hello, &ctx.store).await {
        Ok(d) => d,
        Err(end) => return end,
    };
    let span = tracing::info_span!("device", id = device.device_id, unit = %device.call_sign);
    async {
        let registration = ctx.devices.register(device.device_id);
        // In a cluster, the other nodes close their older connections of this device.
        let generation = match ctx.store.announce_connection(device.device_id).await {
            Ok(generation) => generation,
            Err(e) => {
                tracing::warn!(error = %e, "could not tell the other nodes of this connection");
                None
            }
        };
        if let Some(generation) = generation {
            ctx.devices
                .announced(device.device_id, registration.connection, generation);
        }
        if ctx.live.link_lost(device.unit_id) {
            match ctx
                .store
                .restore_link(device.unit_id, device.device_id)
                .await
            {
                Ok(_) => tracing::info!("tablet link restored"),
                Err(e) => tracing::warn!(error = %e, "could not record the restored tablet link"),
            }
        }
        let mut session = Session {
            ctx,
            device: &device,
            window: Window::default(),
            last_trail_sample: None,
            newest_fix: None,
            clock_offset: hello
                .clock_ms
                .map_or(0, |device| now_ms().saturating_sub(device)),
        };
        let ended = session
            .serve(
                sink,
                stream,
                &hello,
                &registration.mailbox,
                registration.kick,
            )
            .await;
        ctx.devices
            .unregister(device.device_id, registration.connection);
        if let Some(generation) = generation {
            if let Err(e) = ctx.store.end_connection(device.device_id, generation).await {
                tracing::warn!(error = %e, "could not record the end of this connection");
            }
        }
        tracing::info!("device disconnected");
        ended
    }
    .instrument(span)
    .await
}

async fn authenticate(hello: &Hello, store: &Store) -> Result<DeviceAuth, End> {
    if hello.protocol != PROTOCOL_VERSION {
        return Err(end(
            close::UNSUPPORTED_VERSION,
            format!(
                "protocol {} is not supported; this server speaks {PROTOCOL_VERSION}",
                hello.protocol
            ),
        ));
    }
    let device = match store.device_auth(hello.device_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(end(close::BAD_CREDENTIAL, "unknown device or wrong token")),
        Err(e) => return Err(store_failure(&e)),
    };
    if !constant_time_eq(&sha256_hex(&hello.token), &device.token_hash) {
        return Err(end(close::BAD_CREDENTIAL, "unknown device or wrong token"));
    }
    if device.revoked {
        return Err(end(
            close::REVOKED,
            "this device was revoked; enrol it again",
        ));
    }
    Ok(device)
}

/// The close for a store error: try again later when the storage failed, else a server error.
fn store_failure(e: &store::Error) -> End {
    if e.is_storage_fault() {
        tracing::warn!(error = %e, "storage fault on the device channel");
        end(
            close::TRY_AGAIN_LATER,
            format!("{e}; nothing was recorded, retry later"),
        )
    } else {
        tracing::error!(error = %e, "device frame failed");
        end(close::SERVER_ERROR, "server error; retry later")
    }
}

/// The close for a frame the WebSocket layer refused before the session saw it.
fn transport_error(e: &axum::Error) -> End {
    use tungstenite::error::Error as WsError;
    let cause = std::error::Error::source(e).and_then(|s| s.downcast_ref::<WsError>());
    match cause {
        Some(WsError::Capacity(c)) => end(
            close::FRAME_TOO_LARGE,
            format!(
                "frame too large ({c}); the limit is {} bytes",
                dispatch_protocol::MAX_FRAME_BYTES
            ),
        ),
        Some(WsError::Utf8(_)) => end(close::PROTOCOL_ERROR, "a text frame is not valid UTF-8"),
        Some(WsError::Protocol(p)) => end(close::PROTOCOL_ERROR, format!("WebSocket error: {p}")),
        _ => None,
    }
}

/// A close reason fits in 123 bytes (RFC 6455); longer ones are cut at a character boundary.
fn close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

fn frame_error_code(message: &str) -> u16 {
    if message.contains("exceeds the limit") {
        close::FRAME_TOO_LARGE
    } else {
        close::PROTOCOL_ERROR
    }
}

async fn send<S>(sink: &mut S, frame: &ServerFrame) -> Result<(), axum::Error>
where
    S: Sink<WsMessage, Error = axum::Error> + Unpin,
{
    let text = serde_json::to_string(frame).unwrap_or_default();
    sink.send(WsMessage::Text(text.into())).await
}

/// What was sent to the device and what it confirmed, on this connection.
#[derive(Debug, Default)]
struct Window {
    sent_upto: u64,
    acked_upto: u64,
    /// Most deliveries sent and not yet confirmed.
    limit: u64,
    /// The outbox may hold entries above `sent_upto` that this session was not handed: it must
    /// read them from the database.
    backlog: bool,
}

impl Window {
    fn room(&self) -> u64 {
        self.limit
            .saturating_sub(self.sent_upto.saturating_sub(self.acked_upto))
    }
}

/// One authenticated connection.
struct Session<'a> {
    ctx: &'a SessionContext,
    device: &'a DeviceAuth,
    window: Window,
    /// When the last trail point of this connection was taken (server clock).
    last_trail_sample: Option<i64>,
    /// Device time of the newest fix seen on this connection.
    newest_fix: Option<i64>,
    /// Server clock minus the device's, measured at `hello` (0 when the device sent no clock).
    clock_offset: i64,
}

impl Session<'_> {
    async fn serve<S, R>(
        &mut self,
        sink: &mut S,
        stream: &mut R,
        hello: &Hello,
        mailbox: &Mailbox,
        mut kick: tokio::sync::watch::Receiver<Kick>,
    ) -> End
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
        R: Stream<Item = Result<WsMessage, axum::Error>> + Unpin,
    {
        let store = &self.ctx.store;
        let epoch = store.device_epoch(&self.device.epoch);
        // A floor above anything we ever allocated means the device and this database disagree
        // (restored backup, re-enrolment): replay everything.
        let resync = hello.epoch.as_deref() != Some(epoch.as_str())
            || hello.ack_floor > self.device.last_seq;
        let floor = if resync { 0 } else { hello.ack_floor };
        let settings = self.ctx.settings;
        self.window = Window {
            sent_upto: floor,
            acked_upto: floor,
            limit: u64::from(settings.inflight_window),
            backlog: true,
        };
        let welcome = ServerFrame::Welcome(Welcome {
            device_id: self.device.device_id,
            unit_id: self.device.unit_id,
            call_sign: self.device.call_sign.clone(),
            epoch,
            resync,
            server_time_ms: now_ms(),
            heartbeat_secs: settings.heartbeat.as_secs(),
            servers: self.ctx.servers.to_vec(),
        });
        if send(sink, &welcome).await.is_err() {
            return None;
        }
        let mut pins = self.ctx.pins.clone();
        if send(sink, &pins_frame(&mut pins)).await.is_err() {
            return None;
        }
        tracing::info!(resync, from_seq = floor, "device connected");
        // The device holds everything up to its floor. A receipt it sent before a server crash
        // may not have been saved; record it again so those orders do not wait (and escalate)
        // forever. If the storage refuses it now, the device's next acknowledgement repeats it.
        if floor > 0 {
            if let Err(e) = store.record_receipt(self.device.device_id, floor).await {
                if !e.is_storage_fault() {
                    return store_failure(&e);
                }
                tracing::warn!(error = %e, "the hello's floor could not be recorded now");
            }
        }
        if let Err(e) = self.send_pending(sink).await {
            return e;
        }
        let mut ping = interval(settings.heartbeat);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                () = mailbox.changed() => {
                    if let Err(e) = self.send_news(sink, mailbox.take()).await {
                        return e;
                    }
                }
                changed = kick.changed() => {
                    let reason = kick.borrow().clone();
                    if reason.is_some() || changed.is_err() {
                        return reason;
                    }
                }
                Ok(()) = pins.changed() => {
                    if send(sink, &pins_frame(&mut pins)).await.is_err() {
                        return None;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > settings.heartbeat * 3 {
                        tracing::warn!("no sign of life for three heartbeats; dropping the link");
                        return end(close::HEARTBEAT_TIMEOUT, "nothing heard for three heartbeats");
                    }
                    if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                        return None;
                    }
                }
                message = stream.next() => {
                    last_heard = Instant::now();
                    match message {
                        None | Some(Ok(WsMessage::Close(_))) => return None,
                        Some(Err(e)) => return transport_error(&e),
                        Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                        Some(Ok(WsMessage::Binary(_))) => {
                            return end(close::PROTOCOL_ERROR, "binary frames are not accepted; send JSON text");
                        }
                        Some(Ok(WsMessage::Text(text))) => {
                            let frame = match ClientFrame::parse(&text) {
                                Ok(f) => f,
                                Err(e) => return end(frame_error_code(&e.0), e.0),
                            };
                            let acked_before = self.window.acked_upto;
                            match self.handle(frame).await {
                                Ok(Some(reply)) => {
                                    if send(sink, &reply).await.is_err() {
                                        return None;
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => return e,
                            }
                            // Receipts open the window: send what was waiting behind it.
                            if self.window.acked_upto > acked_before && self.window.backlog {
                                if let Err(e) = self.send_pending(sink).await {
                                    return e;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends the entries just handed over that directly follow what was sent, while the window
    /// has room; for anything else (a gap, a full window, word that the outbox grew) it reads
    /// the outbox.
    async fn send_news<S>(&mut self, sink: &mut S, news: super::News) -> Result<(), End>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        self.window.backlog |= news.read_outbox;
        let mut handed = news.handed;
        handed.sort_unstable_by_key(|(d, _)| d.seq);
        for (d, committed) in handed {
            if d.seq <= self.window.sent_upto {
                continue;
            }
            if self.window.backlog || d.seq != self.window.sent_upto + 1 || self.window.room() == 0
            {
                self.window.backlog = true;
                break;
            }
            self.send_delivery(sink, d).await?;
            self.ctx.metrics.delivered(committed.elapsed());
        }
        if self.window.backlog {
            self.send_pending(sink).await?;
        }
        Ok(())
    }

    /// Sends outbox entries above `sent_upto`, read from the database, in order, as far as the
    /// in-flight window allows; clears `backlog` once the outbox is read to its end.
    async fn send_pending<S>(&mut self, sink: &mut S) -> Result<(), End>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        loop {
            let room = self.window.room();
            if room == 0 {
                return Ok(());
            }
            let asked = u32::try_from(room.min(u64::from(REPLAY_PAGE))).unwrap_or(REPLAY_PAGE);
            let page = self
                .ctx
                .store
                .pending_deliveries(self.device.device_id, self.window.sent_upto, asked)
                .await
                .map_err(|e| store_failure(&e))?;
            // A short page is the end of the outbox (as of this read; what commits later is
            // handed over or announced through the mailbox).
            let read_to_end = page.len() < asked as usize;
            for d in page {
                self.send_delivery(sink, d).await?;
            }
            if read_to_end {
                self.window.backlog = false;
                return Ok(());
            }
        }
    }

    /// Sends one outbox entry and moves `sent_upto` to it.
    async fn send_delivery<S>(&mut self, sink: &mut S, d: PendingDelivery) -> Result<(), End>
    where
        S: Sink<WsMessage, Error = axum::Error> + Unpin,
    {
        let body = serde_json::from_str(&d.body)
            .map_err(|_| end(close::SERVER_ERROR, "server error; retry later"))?;
        let frame = ServerFrame::Deliver(Delivery {
            seq: d.seq,
            message_id: d.message_id,
            queued_at_ms: d.queued_at,
            body,
        });
        send(sink, &frame).await.map_err(|_| None)?;
        tracing::info!(seq = d.seq, "delivery sent");
        self.window.sent_upto = d.seq;
        Ok(())
    }

    /// Applies one frame after `hello`; returns the reply to send, if any.
    async fn handle(&mut self, frame: ClientFrame) -> Result<Option<ServerFrame>, End> {
        let store = &self.ctx.store;
        let device_id = self.device.device_id;
        match frame {
            ClientFrame::Hello(_) => Err(end(close::PROTOCOL_ERROR, "hello was already received")),
            ClientFrame::Ack { upto } => {
                if upto > self.window.sent_upto {
                    return Err(end(
                        close::PROTOCOL_ERROR,
                        format!(
                            "ack upto {upto} is beyond the last seq sent ({})",
                            self.window.sent_upto
                        ),
                    ));
                }
                let delivered = store
                    .record_receipt(device_id, upto)
                    .await
                    .map_err(|e| store_failure(&e))?;
                for order in delivered {
                    tracing::info!(order, "order delivered (device receipt)");
                }
                self.window.acked_upto = self.window.acked_upto.max(upto);
                Ok(None)
            }
            ClientFrame::Location(loc) => {
                self.location(loc).await?;
                Ok(None)
            }
            frame => match frame.into_action() {
                Ok(ActionFrame {
                    action_id,
                    at_ms,
                    action,
                }) => {
                    if matches!(action, Action::Emergency { .. }) {
                        tracing::warn!("officer emergency");
                    }
                    self.act(action_id, at_ms, action).await
                }
                Err(other) => unreachable!("hello, ack and location are handled above: {other:?}"),
            },
        }
    }

    /// Stores a fix (the newest wins; the commit puts it into the live index and the console
    /// feed). When the storage refuses it, the live index still gets it, so recommendations
    /// keep seeing the unit move: a fix is never confirmed to the device, so nothing is claimed.
    async fn location(&mut self, loc: Location) -> Result<(), End> {
        let received = now_ms();
        let sample_every =
            i64::try_from(self.ctx.settings.trail_sample.as_millis()).unwrap_or(i64::MAX);
        let sample = self
            .last_trail_sample
            .is_none_or(|t| received - t >= sample_every);
        match self
            .ctx
            .store
            .record_position(self.device.unit_id, &loc, received, sample)
            .await
        {
            Ok(stored) => {
                if stored && sample {
                    self.last_trail_sample = Some(received);
                }
            }
            Err(e) if e.is_storage_fault() => {
                if self.newest_fix.is_none_or(|t| loc.fix_time_ms >= t) {
                    self.ctx.live.moved(&PositionChange {
                        unit_id: self.device.unit_id,
                        lat: loc.lat,
                        lon: loc.lon,
                        accuracy_m: loc.accuracy_m,
                        received_ms: received,
                    });
                }
                tracing::warn!(error = %e, "a fix could not be stored; the live index has it");
            }
            Err(e) => return Err(store_failure(&e)),
        }
        self.newest_fix = Some(
            self.newest_fix
                .map_or(loc.fix_time_ms, |t| t.max(loc.fix_time_ms)),
        );
        Ok(())
    }

    async fn act(
        &mut self,
        action_id: String,
        at_ms: Option<i64>,
        action: Action,
    ) -> Result<Option<ServerFrame>, End> {
        let described = format!("{action:?}");
        // When the officer did it, on the server's clock (the store clamps it to what is
        // possible: not before the order was made, not after now).
        let tapped = at_ms.map(|at| at.saturating_add(self.clock_offset));
        let outcome = self
            .ctx
            .store
            .apply_device_action(
                self.device.device_id,
                self.device.unit_id,
                &action_id,
                action,
                tapped,
            )
            .await
            .map_err(|e| store_failure(&e))?;
        tracing::info!(%action_id, action = %described, ?outcome, "device action");
        Ok(Some(match outcome {
            ActionOutcome::Done => ServerFrame::Done { action_id },
            ActionOutcome::Rejected { code, message } => ServerFrame::Rejected {
                action_id,
                code,
                message,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use futures_channel::mpsc;
    use serde_json::{json, Value};

    use super::*;
    use crate::service::Dispatch;

    /// A session driven over channels: what the device sends, and what the server sends back.
    struct Wire {
        to_server: mpsc::UnboundedSender<Result<WsMessage, axum::Error>>,
        from_server: mpsc::UnboundedReceiver<WsMessage>,
        ended: tokio::task::JoinHandle<End>,
    }

    impl Wire {
        fn start(ctx: SessionContext) -> Self {
            let (to_server, mut stream) = mpsc::unbounded();
            let (sink, from_server) = mpsc::unbounded();
            let mut sink = sink.sink_map_err(axum::Error::new);
            let ended = tokio::spawn(async move { run(&mut sink, &mut stream, &ctx).await });
            Self {
                to_server,
                from_server,
                ended,
            }
        }

        fn send(&self, frame: Value) {
            let text = WsMessage::Text(frame.to_string().into());
            self.to_server.unbounded_send(Ok(text)).unwrap();
        }

        /// The next frame other than `pins`.
        async fn next(&mut self) -> Value {
            loop {
                let frame = self.next_frame().await;
                if frame["type"] != "pins" {
                    return frame;
                }
            }
        }

        async fn next_frame(&mut self) -> Value {
            loop {
                let message =
                    tokio::time::timeout(Duration::from_secs(10), self.from_server.next())
                        .await
                        .expect("a frame from the server")
                        .expect("the session is open");
                if let WsMessage::Text(text) = message {
                    return serde_json::from_str(&text).unwrap();
                }
            }
        }

        async fn ended(self) -> End {
            drop(self.to_server);
            tokio::time::timeout(Duration::from_secs(10), self.ended)
                .await
                .expect("the session ends")
                .unwrap()
        }
    }

    /// A store with one unit and its enrolled device (token "secret").
    async fn enrolled() -> (tempfile::TempDir, Dispatch, SessionContext, i64, i64) {
        let dir = tempfile::tempdir().unwrap();
        let (dispatch, unit, device) =
            crate::service::testing::enrolled_unit(dir.path(), &sha256_hex("secret")).await;
        let ctx = SessionContext {
            store: dispatch.store.clone(),
            devices: dispatch.devices.clone(),
            live: dispatch.live.clone(),
            settings: ChannelSettings {
                heartbeat: Duration::from_secs(30),
                inflight_window: 64,
                trail_sample: Duration::from_secs(10),
            },
            pins: tokio::sync::watch::channel(Arc::from(["aa".repeat(32)])).1,
            metrics: dispatch.metrics.clone(),
            servers: Arc::from([]),
        };
        (dir, dispatch, ctx, unit.id, device.device_id)
    }

    fn hello(device_id: i64) -> Value {
        json!({ "type": "hello", "protocol": PROTOCOL_VERSION, "device_id": device_id,
                "token": "secret", "ack_floor": 0 })
    }

    /// An order committed while the device is connected is delivered; its receipt and decision
    /// are recorded once; an `action_id` reused for a different action is refused.
    #[tokio::test]
    async fn orders_are_delivered_and_actions_applied_once() {
        let (_dir, dispatch, ctx, unit_id, device_id) = enrolled().await;
        let mut wire = Wire::start(ctx);
        wire.send(hello(device_id));
        assert_eq!(wire.next().await["type"], "welcome");
        let store = &dispatch.store;
        let order = crate::service::testing::order_for(store, unit_id).await;
        let delivered = wire.next().await;
        assert_eq!(delivered["type"], "deliver");
        assert_eq!(delivered["body"]["order_id"], order.id);
        wire.send(json!({ "type": "ack", "upto": delivered["seq"] }));
        let accept = json!({ "type": "accept", "action_id": "a-1", "order_id": order.id });
        wire.send(accept.clone());
        assert_eq!(
            wire.next().await,
            json!({ "type": "done", "action_id": "a-1" })
        );
        wire.send(accept);
        assert_eq!(
            wire.next().await,
            json!({ "type": "done", "action_id": "a-1" })
        );
        wire.send(
            json!({ "type": "decline", "action_id": "a-1", "order_id": order.id,
                          "reason": "busy" }),
        );
        let refused = wire.next().await;
        assert_eq!(refused["type"], "rejected");
        assert_eq!(refused["code"], "action_id_reused");
        let stored = store.order(order.id).await.unwrap();
        assert_eq!(stored.state, crate::domain::OrderState::Accepted);
        assert!(stored.delivered_at_ms.is_some());
        assert_eq!(wire.ended().await, None);
    }

    /// The pins are announced right after `welcome`, and again when they change.
    #[tokio::test]
    async fn pins_follow_the_welcome_and_every_change() {
        let (_dir, _dispatch, mut ctx, _unit_id, device_id) = enrolled().await;
        let (old, next) = ("aa".repeat(32), "bb".repeat(32));
        let (pins, announced) = tokio::sync::watch::channel(Arc::from([old.clone()]));
        ctx.pins = announced;
        let mut wire = Wire::start(ctx);
        wire.send(hello(device_id));
        assert_eq!(wire.next_frame().await["type"], "welcome");
        assert_eq!(
            wire.next_frame().await,
            json!({ "type": "pins", "pins": [old] })
        );
        pins.send_replace(Arc::from([old.clone(), next.clone()]));
        assert_eq!(
            wire.next_frame().await,
            json!({ "type": "pins", "pins": [old, next] })
        );
        assert_eq!(wire.ended().await, None);
    }

    /// The newest fix wins: one taken earlier but sent later does not replace it.
    #[tokio::test]
    async fn an_older_fix_does_not_replace_a_newer_one() {
        let (_dir, dispatch, ctx, unit_id, device_id) = enrolled().await;
        let mut wire = Wire::start(ctx);
        wire.send(hello(device_id));
        assert_eq!(wire.next().await["type"], "welcome");
        wire.send(json!({ "type": "location", "lat": 60.2, "lon": 24.9, "fix_time_ms": 2000 }));
        wire.send(json!({ "type": "location", "lat": 60.1, "lon": 24.8, "fix_time_ms": 1000 }));
        // An action after both fixes: its answer means both were handled.
        wire.send(json!({ "type": "status", "action_id": "s-1", "status": "available" }));
        assert_eq!(wire.next().await["type"], "done");
        let position = dispatch
            .store
            .unit(unit_id)
            .await
            .unwrap()
            .position
            .unwrap();
        assert_eq!((position.lat, position.fix_time_ms), (60.2, 2000));
        assert_eq!(wire.ended().await, None);
    }

    /// Frames the WebSocket layer refused close the session with the documented code.
    #[tokio::test]
    async fn refused_transport_frames_close_with_a_code() {
        let (_dir, _dispatch, ctx, _, device_id) = enrolled().await;
        for (error, code) in [
            (
                tungstenite::Error::Utf8("invalid utf-8 sequence".into()),
                close::PROTOCOL_ERROR,
            ),
            (
                tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                    size: TRANSPORT_FRAME_LIMIT + 1,
                    max_size: TRANSPORT_FRAME_LIMIT,
                }),
                close::FRAME_TOO_LARGE,
            ),
        ] {
            let mut wire = Wire::start(ctx.clone());
            wire.send(hello(device_id));
            assert_eq!(wire.next().await["type"], "welcome");
            wire.to_server
                .unbounded_send(Err(axum::Error::new(error)))
                .unwrap();
            assert_eq!(wire.ended().await.map(|(c, _)| c), Some(code));
        }
    }
}
