//! The peer: Mosquitto on 127.0.0.1:1883 with the same number of clients, each a persistent
//! session (clean_session = false) subscribed at QoS 1 to its own topic `units/<n>/orders` and
//! to `units/all`; a publisher at the same paced rate, and one publish to all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS, SubscribeFilter};
use tokio::sync::Semaphore;

use crate::stats::Samples;

/// The figures of the peer.
#[derive(Debug, Default)]
pub struct Results {
    pub clients: usize,
    pub subscribed: usize,
    pub connect_time: Duration,
    pub connect_errors: usize,
    pub first_error: Option<String>,
    pub latency: Samples,
    pub published: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub fanout_received: usize,
    pub fanout_all: Option<Duration>,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
}

#[derive(Default)]
struct Shared {
    /// Paced message number → first arrival.
    arrivals: Mutex<HashMap<u64, Instant>>,
    /// Client index → arrival of the publish to all.
    fanout: Mutex<HashMap<usize, Instant>>,
    duplicated: AtomicUsize,
    subscribed: AtomicUsize,
    connect_errors: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

fn mosquitto_rss() -> Option<u64> {
    let pid = std::fs::read_to_string("/run/mosquitto/mosquitto.pid").ok()?;
    crate::dispatchd::rss_of(pid.trim().parse().ok()?).ok()
}

/// Runs the peer with `clients` subscribers, `rate` publishes per second for `seconds`.
///
/// # Errors
/// When the publisher cannot connect at all.
#[allow(clippy::too_many_lines)]
pub async fn run(
    host: &str,
    port: u16,
    clients: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Results> {
    let run: u64 = rand::random::<u32>().into();
    let shared = Arc::new(Shared::default());
    let rss_before = mosquitto_rss();
    let gate = Arc::new(Semaphore::new(256));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..clients {
        let shared = shared.clone();
        let gate = gate.clone();
        let host = host.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut permit = Some(gate.acquire_owned().await.unwrap());
            // Stable ids: a rerun resumes the same persistent sessions instead of piling up new.
            let mut opts = MqttOptions::new(format!("dispatch-bench-{n}"), host, port);
            opts.set_clean_session(false);
            opts.set_keep_alive(Duration::from_secs(60));
            let (client, mut events) = AsyncClient::new(opts, 16);
            let filters = [
                SubscribeFilter::new(format!("units/{n}/orders"), QoS::AtLeastOnce),
                SubscribeFilter::new("units/all".into(), QoS::AtLeastOnce),
            ];
            if client.subscribe_many(filters).await.is_err() {
                return;
            }
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if permit.take().is_some() {
                            shared.subscribed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let at = Instant::now();
                        let text = String::from_utf8_lossy(&p.payload);
                        let Some((r, what)) = text.split_once(':') else {
                            continue;
                        };
                        if r.parse::<u64>().ok() != Some(run) {
                            continue; // left queued in the session by an earlier run
                        }
                        if what == "all" {
                            if shared.fanout.lock().unwrap().insert(n, at).is_some() {
                                shared.duplicated.fetch_add(1, Ordering::Relaxed);
                            }
                        } else if let Ok(k) = what.parse::<u64>() {
                            let mut a = shared.arrivals.lock().unwrap();
                            if let std::collections::hash_map::Entry::Vacant(e) = a.entry(k) {
                                e.insert(at);
                            } else {
                                shared.duplicated.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if shared.connect_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                            *shared.first_error.lock().unwrap() = Some(e.to_string());
                        }
                        permit.take();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    let deadline = started + Duration::from_secs(300);
    while shared.subscribed.load(Ordering::SeqCst) < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_time = started.elapsed();
    let subscribed = shared.subscribed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = mosquitto_rss();

    // Publisher: its event loop notes when each publish left, in order.
    let mut opts = MqttOptions::new(format!("dispatch-bench-publisher-{run}"), host, port);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_inflight(u16::MAX);
    let (publisher, mut events) = AsyncClient::new(opts, 10_000);
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let sent_by_loop = sent.clone();
    let publisher_loop = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                    sent_by_loop.lock().unwrap().push(Instant::now());
                }
                Ok(_) => {}
                Err(e) => return Err::<(), _>(e),
            }
        }
    });
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut k = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        #[allow(clippy::cast_possible_truncation)]
        let n = (k as usize) % clients;
        publisher
            .publish(
                format!("units/{n}/orders"),
                QoS::AtLeastOnce,
                false,
                format!("{run}:{k}"),
            )
            .await?;
        k += 1;
    }
    let published = usize::try_from(k)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.arrivals.lock().unwrap().len() < published && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latency = Samples::default();
    let mut lost = 0;
    {
        let sent = sent.lock().unwrap();
        let arrivals = shared.arrivals.lock().unwrap();
        for (k, t0) in sent.iter().enumerate().take(published) {
            match arrivals.get(&(k as u64)) {
                Some(t1) => latency.push(t1.saturating_duration_since(*t0)),
                None => lost += 1,
            }
        }
        lost += published.saturating_sub(sent.len());
    }

    // One publish to every client.
    publisher
        .publish("units/all", QoS::AtLeastOnce, false, format!("{run}:all"))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = shared.fanout.lock().unwrap().len();
        if n >= subscribed || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t0 = sent.lock().unwrap().get(published).copied();
    let fanout = shared.fanout.lock().unwrap();
    let fanout_received = fanout.len();
    let fanout_all = match (t0, fanout_received == clients) {
        (Some(t0), true) => fanout
            .values()
            .max()
            .map(|l| l.saturating_duration_since(t0)),
        _ => None,
    };
    drop(fanout);
    publisher_loop.abort();
    for t in tasks {
        t.abort();
    }
    let first_error = shared.first_error.lock().unwrap().clone();
    Ok(Results {
        clients,
        subscribed,
        connect_time,
        connect_errors: shared.connect_errors.load(Ordering::SeqCst),
        first_error,
        latency,
        published,
        lost,
        duplicated: shared.duplicated.load(Ordering::SeqCst),
        fanout_received,
        fanout_all,
        rss_before,
        rss_after,
    })
}
