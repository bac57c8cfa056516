//! One device's WebSocket session: hello and authentication, replay of the outbox from the
//! device's floor, receipts, officer actions, positions and heartbeats.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use dispatch_protocol::{
    close, ClientFrame, Delivery, Hello, ServerFrame, Welcome, PROTOCOL_VERSION,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tracing::Instrument;

use crate::app::AppState;
use crate::auth::{constant_time_eq, sha256_hex};
use crate::domain::now_ms;
use crate::push::Mailbox;
use crate::store::{ActionOutcome, DeviceAction, DeviceAuth, PendingDelivery};

/// How long a new connection has to send `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Outbox entries read per query while replaying.
const REPLAY_PAGE: u32 = 256;

type Sink = SplitSink<WebSocket, WsMessage>;

/// Why a session ends: a close code and reason to send, or nothing when the peer is gone.
type End = Option<(u16, String)>;

fn end(code: u16, reason: impl Into<String>) -> End {
    Some((code, reason.into()))
}

/// Runs a device session until it closes.
pub async fn serve(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let result = run(&mut sink, &mut stream, &state).await;
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

async fn run(sink: &mut Sink, stream: &mut SplitStream<WebSocket>, state: &AppState) -> End {
    let hello = match timeout(HELLO_TIMEOUT, stream.next()).await {
        Err(_) => return end(close::HELLO_TIMEOUT, "no hello within 10 seconds"),
        Ok(None | Some(Err(_))) => return None,
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
    let device = match authenticate(&hello, state).await {
        Ok(d) => d,
        Err(end) => return end,
    };
    let span = tracing::info_span!("device", id = device.device_id, unit = %device.call_sign);
    async {
        let registration = state.hub.register(device.device_id);
        let ended = session(
            sink,
            stream,
            state,
            &device,
            &hello,
            &registration.mailbox,
            registration.kick,
        )
        .await;
        state
            .hub
            .unregister(device.device_id, registration.connection);
        tracing::info!("device disconnected");
        ended
    }
    .instrument(span)
    .await
}

async fn authenticate(hello: &Hello, state: &AppState) -> Result<DeviceAuth, End> {
    if hello.protocol != PROTOCOL_VERSION {
        return Err(end(
            close::UNSUPPORTED_VERSION,
            format!(
                "protocol {} is not supported; this server speaks {PROTOCOL_VERSION}",
                hello.protocol
            ),
        ));
    }
    let device = match state.store.device_auth(hello.device_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(end(close::BAD_CREDENTIAL, "unknown device or wrong token")),
        Err(e) => {
            tracing::error!(error = %e, "device lookup failed");
            return Err(end(1011, "server error; retry later"));
        }
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

#[allow(clippy::too_many_arguments)]
async fn session(
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
    state: &AppState,
    device: &DeviceAuth,
    hello: &Hello,
    mailbox: &Mailbox,
    mut kick: tokio::sync::watch::Receiver<crate::push::Kick>,
) -> End {
    let instance = match state.store.instance_id().await {
        Ok(i) => i,
        Err(_) => return end(1011, "server error; retry later"),
    };
    let epoch = format!("{instance}-{}", device.epoch);
    // A floor above anything we ever allocated means the device and this database disagree
    // (restored backup, re-enrolment): replay everything.
    let resync =
        hello.epoch.as_deref() != Some(epoch.as_str()) || hello.ack_floor > device.last_seq;
    let floor = if resync { 0 } else { hello.ack_floor };
    let mut window = Window {
        sent_upto: floor,
        acked_upto: floor,
        limit: u64::from(state.config.inflight_window),
        backlog: true,
    };
    let heartbeat = Duration::from_secs(state.config.heartbeat_secs);
    let welcome = ServerFrame::Welcome(Welcome {
        device_id: device.device_id,
        unit_id: device.unit_id,
        call_sign: device.call_sign.clone(),
        epoch,
        resync,
        server_time_ms: now_ms(),
        heartbeat_secs: state.config.heartbeat_secs,
    });
    if send(sink, &welcome).await.is_err() {
        return None;
    }
    tracing::info!(resync, from_seq = floor, "device connected");
    // The device holds everything up to its floor. A receipt it sent before a server crash may
    // not have been saved; record it again so those orders do not wait (and escalate) forever.
    if floor > 0 {
        if let Err(e) = state.store.record_receipt(device.device_id, floor).await {
            tracing::error!(error = %e, "recording the hello's floor failed");
            return end(1011, "server error; retry later");
        }
    }
    if let Err(e) = send_pending(sink, state, device.device_id, &mut window).await {
        return e;
    }
    let mut ping = interval(heartbeat);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut last_trail_sample: Option<i64> = None;
    loop {
        tokio::select! {
            () = mailbox.changed() => {
                if let Err(e) = send_news(sink, state, device.device_id, &mut window, mailbox.take()).await {
                    return e;
                }
            }
            changed = kick.changed() => {
                let reason = kick.borrow().clone();
                if reason.is_some() || changed.is_err() {
                    return reason;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > heartbeat * 3 {
                    tracing::warn!("no sign of life for three heartbeats; dropping the link");
                    return end(close::GOING_AWAY, "heartbeat timeout");
                }
                if sink.send(WsMessage::Ping(Vec::new().into())).await.is_err() {
                    return None;
                }
            }
            message = stream.next() => {
                last_heard = Instant::now();
                match message {
                    None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => return None,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                    Some(Ok(WsMessage::Binary(_))) => {
                        return end(close::PROTOCOL_ERROR, "binary frames are not accepted; send JSON text");
                    }
                    Some(Ok(WsMessage::Text(text))) => {
                        let frame = match ClientFrame::parse(&text) {
                            Ok(f) => f,
                            Err(e) => return end(frame_error_code(&e.0), e.0),
                        };
                        let acked_before = window.acked_upto;
                        let mut ctx = FrameContext { state, device, window: &mut window, last_trail_sample: &mut last_trail_sample };
                        match handle(&mut ctx, frame).await {
                            Ok(Some(reply)) => {
                                if send(sink, &reply).await.is_err() {
                                    return None;
                                }
                            }
                            Ok(None) => {}
                            Err(e) => return e,
                        }
                        // Receipts open the window: send what was waiting behind it.
                        if window.acked_upto > acked_before && window.backlog {
                            if let Err(e) = send_pending(sink, state, device.device_id, &mut window).await {
                                return e;
                            }
                        }
                    }
                }
            }
        }
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

async fn send(sink: &mut Sink, frame: &ServerFrame) -> Result<(), axum::Error> {
    let text = serde_json::to_string(frame).unwrap_or_default();
    sink.send(WsMessage::Text(text.into())).await
}

/// What was sent to the device and what it confirmed, on this connection.
#[derive(Debug)]
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

/// Sends the entries just handed over that directly follow what was sent, while the window has
/// room; for anything else (a gap, a full window, word that the outbox grew) it reads the
/// outbox.
async fn send_news(
    sink: &mut Sink,
    state: &AppState,
    device_id: i64,
    window: &mut Window,
    news: crate::push::News,
) -> Result<(), End> {
    window.backlog |= news.read_outbox;
    let mut handed = news.handed;
    handed.sort_unstable_by_key(|d| d.seq);
    for d in handed {
        if d.seq <= window.sent_upto {
            continue;
        }
        if window.backlog || d.seq != window.sent_upto + 1 || window.room() == 0 {
            window.backlog = true;
            break;
        }
        send_delivery(sink, window, d).await?;
    }
    if window.backlog {
        send_pending(sink, state, device_id, window).await?;
    }
    Ok(())
}

/// Sends outbox entries above `window.sent_upto`, read from the database, in order, as far as
/// the in-flight window allows; clears `window.backlog` once the outbox is read to its end.
async fn send_pending(
    sink: &mut Sink,
    state: &AppState,
    device_id: i64,
    window: &mut Window,
) -> Result<(), End> {
    loop {
        let room = window.room();
        if room == 0 {
            return Ok(());
        }
        let asked = u32::try_from(room.min(u64::from(REPLAY_PAGE))).unwrap_or(REPLAY_PAGE);
        let page = state
            .store
            .pending_deliveries(device_id, window.sent_upto, asked)
            .await
            .map_err(|_| end(1011, "server error; retry later"))?;
        // A short page is the end of the outbox (as of this read; what commits later is handed
        // over or announced through the mailbox).
        let read_to_end = page.len() < asked as usize;
        for d in page {
            send_delivery(sink, window, d).await?;
        }
        if read_to_end {
            window.backlog = false;
            return Ok(());
        }
    }
}

/// Sends one outbox entry and moves `window.sent_upto` to it.
async fn send_delivery(
    sink: &mut Sink,
    window: &mut Window,
    d: PendingDelivery,
) -> Result<(), End> {
    let body = serde_json::from_str(&d.body).map_err(|_| end(1011, "server error; retry later"))?;
    let frame = ServerFrame::Deliver(Delivery {
        seq: d.seq,
        message_id: d.message_id,
        queued_at_ms: d.queued_at,
        body,
    });
    send(sink, &frame).await.map_err(|_| None)?;
    tracing::info!(seq = d.seq, "delivery sent");
    window.sent_upto = d.seq;
    Ok(())
}

struct FrameContext<'a> {
    state: &'a AppState,
    device: &'a DeviceAuth,
    window: &'a mut Window,
    last_trail_sample: &'a mut Option<i64>,
}

/// Applies one frame after `hello`; returns the reply to send, if any.
async fn handle(
    ctx: &mut FrameContext<'_>,
    frame: ClientFrame,
) -> Result<Option<ServerFrame>, End> {
    let server_error = |e: crate::store::Error| {
        tracing::error!(error = %e, "device frame failed");
        end(1011, "server error; retry later")
    };
    let device = ctx.device;
    match frame {
        ClientFrame::Hello(_) => Err(end(close::PROTOCOL_ERROR, "hello was already received")),
        ClientFrame::Ack { upto } => {
            if upto > ctx.window.sent_upto {
                return Err(end(
                    close::PROTOCOL_ERROR,
                    format!(
                        "ack upto {upto} is beyond the last seq sent ({})",
                        ctx.window.sent_upto
                    ),
                ));
            }
            let outcome = ctx
                .state
                .store
                .record_receipt(device.device_id, upto)
                .await
                .map_err(server_error)?;
            for order in outcome.delivered_orders {
                tracing::info!(order, "order delivered (device receipt)");
            }
            ctx.window.acked_upto = ctx.window.acked_upto.max(upto);
            Ok(None)
        }
        ClientFrame::Location(loc) => {
            let received = now_ms();
            let sample = ctx.last_trail_sample.is_none_or(|t| {
                received - t
                    >= i64::try_from(ctx.state.config.trail_sample_secs * 1000).unwrap_or(i64::MAX)
            });
            ctx.state
                .store
                .record_position(device.unit_id, &loc, received, sample)
                .await
                .map_err(server_error)?;
            if sample {
                *ctx.last_trail_sample = Some(received);
            }
            if !ctx
                .state
                .live
                .moved(device.unit_id, (loc.lat, loc.lon), loc.accuracy_m, received)
            {
                ctx.state.refresh_unit(device.unit_id).await;
            }
            Ok(None)
        }
        ClientFrame::Accept {
            action_id,
            order_id,
        } => act(ctx, action_id, DeviceAction::Accept { order_id }).await,
        ClientFrame::Decline {
            action_id,
            order_id,
            reason,
        } => act(ctx, action_id, DeviceAction::Decline { order_id, reason }).await,
        ClientFrame::Status {
            action_id,
            status,
            order_id,
        } => act(ctx, action_id, DeviceAction::Status { status, order_id }).await,
        ClientFrame::Displayed {
            action_id,
            message_id,
        } => act(ctx, action_id, DeviceAction::Displayed { message_id }).await,
        ClientFrame::Acknowledge {
            action_id,
            message_id,
        } => act(ctx, action_id, DeviceAction::Acknowledge { message_id }).await,
        ClientFrame::Text {
            action_id,
            text,
            incident_id,
        } => act(ctx, action_id, DeviceAction::Text { text, incident_id }).await,
    }
}

async fn act(
    ctx: &mut FrameContext<'_>,
    action_id: String,
    action: DeviceAction,
) -> Result<Option<ServerFrame>, End> {
    let described = format!("{action:?}");
    let live = ctx.state.live.clone();
    let outcome = ctx
        .state
        .store
        .apply_device_action(
            ctx.device.device_id,
            ctx.device.unit_id,
            &action_id,
            action,
            move |outcome| {
                if let ActionOutcome::Done { unit: Some(unit) } = outcome {
                    live.load(unit);
                }
            },
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "device action failed");
            end(1011, "server error; retry later")
        })?;
    tracing::info!(%action_id, action = %described, ?outcome, "device action");
    Ok(Some(match outcome {
        ActionOutcome::Done { .. } => ServerFrame::Done { action_id },
        ActionOutcome::Rejected { code, message } => ServerFrame::Rejected {
            action_id,
            code,
            message,
        },
    }))
}
