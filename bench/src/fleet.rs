//! Simulated tablets: thousands of raw WebSocket devices on the real device channel. Each one says
//! `hello`, records when every delivery arrives, acks it at once, accepts and clears orders (so
//! the unit becomes available again), and reconnects with full-jitter backoff after any drop.
//! Everything received is kept in memory so the run can count lost and duplicated messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_protocol::{
    ClientFrame, Hello, Message, ReportedStatus, ServerFrame, PROTOCOL_VERSION,
};
use field_client::backoff::Backoff;
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// One enrolled device, as the enrolment API answered.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: i64,
    pub unit_id: i64,
    pub token: String,
}

/// What one device received, first arrival of each message.
#[derive(Debug, Default)]
pub struct Inbox {
    /// `message_id` → (`seq`, when it first arrived, when its ack was written).
    pub got: HashMap<String, (u64, Instant, Instant)>,
    /// The same `message_id` under a second, different `seq`: a real duplicate.
    pub duplicated: u64,
    /// Redelivery of a `seq` this device had already acked on an earlier connection: the server
    /// should not do that.
    pub redelivered_after_ack: u64,
    /// Redelivery of a `seq` not yet acked when the connection dropped (allowed by the protocol).
    pub redelivered_unacked: u64,
}

#[derive(Debug, Default)]
struct DeviceState {
    epoch: Option<String>,
    ack_floor: u64,
    last_welcome: Option<Instant>,
    inbox: Inbox,
}

/// Counters shared by every device.
#[derive(Debug, Default)]
pub struct Counters {
    /// `welcome` frames received so far (over all connections).
    pub welcomes: AtomicUsize,
    pub connect_failures: AtomicUsize,
    pub closes: AtomicUsize,
    pub rejected_actions: AtomicUsize,
    pub protocol_errors: AtomicUsize,
    pub welcomed: Notify,
    /// Total deliveries (first arrivals) so far, to wait for quiescence.
    pub first_arrivals: AtomicU64,
}

/// The fleet: one task per device, all sharing counters and a channel of units made available
/// again (the device's `cleared` was answered `done`).
pub struct Fleet {
    devices: Vec<Arc<Mutex<DeviceState>>>,
    pub counters: Arc<Counters>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    pub tls: TlsConnector,
}

impl Fleet {
    /// Starts one task per device. At most `connect_concurrency` first connections are in
    /// progress at once (reconnects are not limited: that is the storm being measured).
    pub fn start(
        endpoint: &Endpoint,
        enrolled: &[Enrolled],
        connect_concurrency: usize,
        freed_units: mpsc::UnboundedSender<i64>,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let gate = Arc::new(Semaphore::new(connect_concurrency));
        let mut devices = Vec::with_capacity(enrolled.len());
        let mut tasks = Vec::with_capacity(enrolled.len());
        for e in enrolled {
            let state = Arc::new(Mutex::new(DeviceState::default()));
            devices.push(state.clone());
            tasks.push(tokio::spawn(run_device(
                endpoint.clone(),
                e.clone(),
                state,
                counters.clone(),
                gate.clone(),
                freed_units.clone(),
            )));
        }
        Self {
            devices,
            counters,
            tasks,
        }
    }

    /// Waits until `welcomes` reaches `n`, or `limit` passes; returns whether it did.
    pub async fn wait_welcomes(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.counters.welcomed.notified();
            if self.counters.welcomes.load(Ordering::SeqCst) >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.counters.welcomes.load(Ordering::SeqCst) >= n;
            }
        }
    }

    /// Arrival and ack instants of `message_id` at device `index`.
    pub fn arrival(&self, index: usize, message_id: &str) -> Option<(Instant, Instant)> {
        let d = self.devices[index].lock().unwrap();
        d.inbox.got.get(message_id).map(|(_, a, k)| (*a, *k))
    }

    /// How many devices have had a `welcome` after `t`, and when the last of them had it.
    pub fn welcomed_since(&self, t: Instant) -> (usize, Option<Instant>) {
        let mut n = 0;
        let mut last = None;
        for d in &self.devices {
            if let Some(w) = d.lock().unwrap().last_welcome.filter(|w| *w > t) {
                n += 1;
                last = last.max(Some(w));
            }
        }
        (n, last)
    }

    /// Runs `f` over every device's inbox.
    pub fn each_inbox(&self, mut f: impl FnMut(usize, &Inbox)) {
        for (i, d) in self.devices.iter().enumerate() {
            f(i, &d.lock().unwrap().inbox);
        }
    }

    /// Stops every device task (the sockets close).
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Whether the device should keep reconnecting.
enum End {
    Retry,
    Never,
}

async fn run_device(
    endpoint: Endpoint,
    me: Enrolled,
    state: Arc<Mutex<DeviceState>>,
    counters: Arc<Counters>,
    gate: Arc<Semaphore>,
    freed: mpsc::UnboundedSender<i64>,
) {
    let backoff = Backoff::default();
    let mut attempt = 0u32;
    let mut first = true;
    loop {
        let permit = if first {
            Some(gate.clone().acquire_owned().await.unwrap())
        } else {
            None
        };
        let (end, welcomed) = session(&endpoint, &me, &state, &counters, &freed, permit).await;
        first = false;
        if welcomed {
            attempt = 0;
        }
        if matches!(end, End::Never) {
            return;
        }
        let delay = backoff.delay(attempt, &mut rand::thread_rng());
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// One connection; returns how it ended and whether it reached `welcome`.
async fn session(
    endpoint: &Endpoint,
    me: &Enrolled,
    state: &Mutex<DeviceState>,
    counters: &Counters,
    freed: &mpsc::UnboundedSender<i64>,
    mut permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> (End, bool) {
    let ws = match tokio::time::timeout(Duration::from_secs(15), connect(endpoint)).await {
        Ok(Ok(ws)) => ws,
        _ => {
            counters.connect_failures.fetch_add(1, Ordering::Relaxed);
            return (End::Retry, false);
        }
    };
    let (mut tx, mut rx) = ws.split();
    let hello = {
        let s = state.lock().unwrap();
        ClientFrame::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            device_id: me.device_id,
            token: me.token.clone(),
            epoch: s.epoch.clone(),
            ack_floor: s.ack_floor,
            clock_ms: Some(field_client::unix_ms()),
        })
    };
    if tx.send(text(&hello)).await.is_err() {
        return (End::Retry, false);
    }
    let mut welcomed = false;
    // Highest seq acked on this connection (redeliveries below the floor at hello are wrong).
    let floor_at_hello = state.lock().unwrap().ack_floor;
    while let Some(frame) = rx.next().await {
        let Ok(frame) = frame else { break };
        let body = match frame {
            WsMessage::Text(t) => t,
            WsMessage::Close(c) => {
                counters.closes.fetch_add(1, Ordering::Relaxed);
                let code = c.map_or(0, |c| u16::from(c.code));
                if matches!(code, 4001 | 4003 | 4010) {
                    return (End::Never, welcomed);
                }
                break;
            }
            _ => continue,
        };
        let Ok(frame) = serde_json::from_str::<ServerFrame>(body.as_str()) else {
            counters.protocol_errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match frame {
            ServerFrame::Welcome(w) => {
                let mut s = state.lock().unwrap();
                if w.resync || s.epoch.as_deref() != Some(w.epoch.as_str()) {
                    s.ack_floor = 0;
                }
                s.epoch = Some(w.epoch);
                s.last_welcome = Some(Instant::now());
                drop(s);
                welcomed = true;
                permit.take();
                counters.welcomes.fetch_add(1, Ordering::SeqCst);
                counters.welcomed.notify_waiters();
            }
            ServerFrame::Deliver(d) => {
                let arrived = Instant::now();
                let order = match &d.body {
                    Message::Order(o) => Some(o.order_id),
                    _ => None,
                };
                let ack = text(&ClientFrame::Ack { upto: d.seq });
                if tx.send(ack).await.is_err() {
                    break;
                }
                let acked = Instant::now();
                let mut first_arrival = false;
                {
                    let mut s = state.lock().unwrap();
                    match s.inbox.got.get(&d.message_id).map(|(seq, _, _)| *seq) {
                        None => {
                            s.inbox.got.insert(d.message_id, (d.seq, arrived, acked));
                            counters.first_arrivals.fetch_add(1, Ordering::Relaxed);
                            first_arrival = true;
                        }
                        Some(seq) if seq != d.seq => s.inbox.duplicated += 1,
                        Some(_) if d.seq <= floor_at_hello => {
                            s.inbox.redelivered_after_ack += 1;
                        }
                        Some(_) => s.inbox.redelivered_unacked += 1,
                    }
                    s.ack_floor = s.ack_floor.max(d.seq);
                }
                if let Some(order_id) = order.filter(|_| first_arrival) {
                    // The officer accepts and, at once, is done: the unit is free again.
                    let at_ms = Some(field_client::unix_ms());
                    let accept = ClientFrame::Accept {
                        action_id: format!("a-{order_id}"),
                        order_id,
                        at_ms,
                    };
                    let clear = ClientFrame::Status {
                        action_id: format!("c-{order_id}"),
                        status: ReportedStatus::Cleared,
                        order_id: Some(order_id),
                        at_ms,
                    };
                    if tx.send(text(&accept)).await.is_err() || tx.send(text(&clear)).await.is_err()
                    {
                        break;
                    }
                }
            }
            // The simulated fleet connects with one pin and never reconnects past a rotation.
            ServerFrame::Pins { .. } => {}
            ServerFrame::Done { action_id } => {
                if action_id.starts_with("c-") {
                    let _ = freed.send(me.unit_id);
                }
            }
            ServerFrame::Rejected { action_id, .. } => {
                counters.rejected_actions.fetch_add(1, Ordering::Relaxed);
                // A clear after a lost `done` (reconnect) is rejected as already closed: the
                // unit is free all the same.
                if action_id.starts_with("c-") {
                    let _ = freed.send(me.unit_id);
                }
            }
        }
    }
    (End::Retry, welcomed)
}

fn text(frame: &ClientFrame) -> WsMessage {
    WsMessage::text(serde_json::to_string(frame).unwrap())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

async fn connect(endpoint: &Endpoint) -> anyhow::Result<Ws> {
    let tcp = TcpStream::connect(endpoint.addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::from(endpoint.addr.ip());
    let tls = endpoint.tls.connect(name, tcp).await?;
    let url = format!("wss://{}/api/device/channel", endpoint.addr);
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, tls, None).await?;
    Ok(ws)
}
