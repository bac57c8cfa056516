//! The order channel under load: a real `dispatchd` with thousands of simulated devices
//! (enrolled through the HTTP API), measured for order latency, durable orders per second,
//! broadcast fan-out, memory per idle connection and a reconnect storm after kill -9, with
//! every message counted for loss and duplication.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use field_client::Trust;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Mutex};

use crate::console_feed::ConsoleWatch;
use crate::dispatchd::{post_created, Dispatchd};
use crate::fleet::{Endpoint, Enrolled, Fleet};
use crate::stats::Samples;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `dispatchd` binary measured.
    pub dispatchd: std::path::PathBuf,
    pub devices: usize,
    pub order_rate: u32,
    pub seconds: u64,
    /// Concurrent API clients at saturation.
    pub saturation_clients: usize,
    /// Orders in the burst during which the server is killed.
    pub storm_orders: usize,
    /// Connections sending wrong passwords throughout the paced and saturation phases (0: none).
    /// The server then runs with the login throttle at its maximum, so every attempt costs a
    /// password check: what the bounded password workers must keep from dispatch.
    pub login_flood: usize,
    /// Back the server up again and again (`dispatchd backup`, one after another) throughout
    /// the paced and saturation phases.
    pub backups: bool,
}

/// Most paced order requests in flight at once.
const PACED_IN_FLIGHT: usize = 256;

/// The figures of one run.
#[derive(Debug)]
pub struct Results {
    pub devices: usize,
    pub enrol_time: Duration,
    pub connect_time: Duration,
    pub latency: Samples,
    /// Deliveries that reached the device before the client saw the 201.
    pub before_201: usize,
    pub latency_orders: usize,
    /// Orders per second actually placed in the paced phase.
    pub paced_rate: f64,
    pub latency_missing: usize,
    pub paced_skipped: usize,
    pub paced_errors: HashMap<String, u64>,
    /// 201 → the console's `order_queued` delta, for the paced orders.
    pub console_latency: Samples,
    /// Paced orders whose delta never reached the console, and deltas that came before the 201.
    pub console_missing: usize,
    pub console_before_201: usize,
    /// Frames the console received during the paced phase, and why it ended early (if it did).
    pub console_frames: u64,
    pub console_ended: Option<String>,
    pub saturation_per_s: f64,
    pub saturation_seconds: Vec<u64>,
    pub saturation_errors: HashMap<String, u64>,
    pub broadcast_all_acked: Option<Duration>,
    pub broadcast_received: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    pub storm_orders: usize,
    /// Orders of the burst whose request the kill cut off (no 201, nothing promised).
    pub storm_cut: usize,
    pub storm_resumed: usize,
    pub storm_after_restart: Option<Duration>,
    pub storm_after_kill: Option<Duration>,
    pub restart_time: Duration,
    pub orders_expected: usize,
    pub orders_lost: usize,
    pub broadcasts_lost: usize,
    pub duplicated: u64,
    pub redelivered_after_ack: u64,
    pub redelivered_unacked: u64,
    pub rejected_actions: usize,
    /// Answers to the login flood's attempts, by status.
    pub flood_answers: HashMap<String, u64>,
    /// Backups taken during the run.
    pub backups_taken: u64,
}

/// `dispatchd backup` of the running server, one after another, each removed once written.
struct BackupLoop {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<u64>>>,
}

impl BackupLoop {
    fn start(dispatchd: &std::path::Path, data_dir: &std::path::Path, on: bool) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = on.then(|| {
            let (bin, data, stop) = (dispatchd.to_owned(), data_dir.to_owned(), stop.clone());
            tokio::spawn(async move {
                let mut taken = 0;
                while !stop.load(Ordering::Relaxed) {
                    let to = data.with_extension(format!("backup-{taken}"));
                    let out = tokio::process::Command::new(&bin)
                        .arg("--data-dir")
                        .arg(&data)
                        .arg("backup")
                        .arg("--to")
                        .arg(&to)
                        .output()
                        .await?;
                    anyhow::ensure!(
                        out.status.success(),
                        "backup failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    std::fs::remove_dir_all(&to)?;
                    taken += 1;
                }
                Ok(taken)
            })
        });
        Self { stop, task }
    }

    /// Stops after the backup under way; answers how many were taken.
    async fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.task {
            Some(task) => task.await?,
            None => Ok(0),
        }
    }
}

/// Connections trying wrong passwords as fast as the server answers.
struct LoginFlood {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<HashMap<String, u64>>>,
}

impl LoginFlood {
    fn start(base: &str, connections: usize) -> anyhow::Result<Self> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for i in 0..connections {
            // One client each: its own connection, kept alive between attempts.
            let http = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .pool_max_idle_per_host(1)
                .build()?;
            let (url, stop) = (format!("{base}/api/login"), stop.clone());
            let body = serde_json::json!({ "username": format!("flood-{i}"), "password": "not the password, not at all" });
            tasks.push(tokio::spawn(async move {
                let mut answers: HashMap<String, u64> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let answer = match http.post(&url).json(&body).send().await {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(_) => "error".to_owned(),
                    };
                    *answers.entry(answer).or_default() += 1;
                }
                answers
            }));
        }
        Ok(Self { stop, tasks })
    }

    /// Stops the flood; answers how its attempts were answered.
    async fn stop(self) -> HashMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: HashMap<String, u64> = HashMap::new();
        for task in self.tasks {
            for (k, v) in task.await.unwrap_or_default() {
                *all.entry(k).or_default() += v;
            }
        }
        all
    }
}

/// An order the API answered 201 for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub(crate) order_id: i64,
    pub(crate) device: usize,
    pub(crate) at: Instant,
}

/// Where orders go: a node's API, the incidents ordered to in turn, and the free units.
pub(crate) struct Ctx {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) incidents: Vec<i64>,
    pub(crate) device_of_unit: HashMap<i64, usize>,
    pub(crate) free: Arc<Mutex<mpsc::UnboundedReceiver<i64>>>,
    pub(crate) next: AtomicU64,
}

impl Ctx {
    /// Orders `unit` to the next incident (round robin); `Ok(None)` for a non-201 answer,
    /// counted under its status and error code.
    pub(crate) async fn order(&self, unit: i64) -> anyhow::Result<Result<Placed, String>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation)]
        let incident = self.incidents[n as usize % self.incidents.len()];
        let res = self
            .http
            .post(format!(
                "{}/api/incidents/{incident}/assignments",
                self.base
            ))
            .json(&serde_json::json!({ "unit_id": unit }))
            .send()
            .await?;
        let at = Instant::now();
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        if status != reqwest::StatusCode::CREATED {
            let code = body["error"]["code"].as_str().unwrap_or("?");
            return Ok(Err(format!("{} {code}", status.as_u16())));
        }
        let order_id = body["id"].as_i64().context("order without id")?;
        Ok(Ok(Placed {
            order_id,
            device: self.device_of_unit[&unit],
            at,
        }))
    }
}

/// Runs every measurement of the order channel.
///
/// # Errors
/// When the server cannot be started, enrolment fails, or devices do not connect.
#[allow(clippy::too_many_lines)]
pub async fn run(plan: &Plan) -> anyhow::Result<Results> {
    let dir = tempfile::tempdir()?;
    let addr = crate::dispatchd::free_addr()?;
    let config = (plan.login_flood > 0)
        .then(|| -> anyhow::Result<_> {
            let path = dir.path().join("flood.toml");
            std::fs::write(&path, "[accounts]\nlogin_attempts_per_minute = 10000\n")?;
            Ok(path)
        })
        .transpose()?;
    let mut server = Dispatchd::start(&plan.dispatchd, dir.path(), addr, config.as_deref()).await?;
    let http = server.admin().await?;
    let base = server.base.clone();

    eprintln!(
        "channel: enrolling {} devices through the API …",
        plan.devices
    );
    let started = Instant::now();
    let enrolled: Vec<Enrolled> = futures_util::stream::iter(0..plan.devices)
        .map(|i| enrol(&http, &base, i))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let enrol_time = started.elapsed();
    eprintln!("channel: enrolled in {:.1} s", enrol_time.as_secs_f64());

    let incidents = incidents(&http, &base).await?;
    let endpoint = endpoint(addr, &server.fingerprint()?)?;
    let (free_tx, free_rx, device_of_unit) = free_units(&enrolled)?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_bytes()?;
    eprintln!("channel: connecting {} devices …", plan.devices);
    let started = Instant::now();
    let fleet = Fleet::start(&endpoint, &enrolled, 256, free_tx.clone());
    anyhow::ensure!(
        fleet
            .wait_welcomes(plan.devices, Duration::from_secs(300))
            .await,
        "only {} of {} devices were welcomed in 300 s ({} connect failures)",
        fleet.counters.welcomes.load(Ordering::SeqCst),
        plan.devices,
        fleet.counters.connect_failures.load(Ordering::SeqCst)
    );
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = server.rss_bytes()?;

    let ctx = Arc::new(Ctx {
        http: http.clone(),
        base: base.clone(),
        incidents,
        device_of_unit,
        free: Arc::new(Mutex::new(free_rx)),
        next: AtomicU64::new(0),
    });
    let mut placed: Vec<Placed> = Vec::new();
    let flood = LoginFlood::start(&base, plan.login_flood)?;
    let backups = BackupLoop::start(&plan.dispatchd, &server.data_dir, plan.backups);

    // Paced orders, open loop: latency from the 201 to the device's receipt of the deliver, and
    // to the console's delta of it.
    let console = ConsoleWatch::start(&endpoint, &server.session_cookie().await?).await?;
    eprintln!(
        "channel: {} orders/s for {} s …",
        plan.order_rate, plan.seconds
    );
    let Paced {
        placed: paced,
        errors: paced_errors,
        skipped: paced_skipped,
        took: paced_time,
    } = paced(&ctx, plan.order_rate, plan.seconds).await?;
    settle(&fleet, &paced, Duration::from_secs(10)).await;
    let mut latency = Samples::default();
    let (mut before_201, mut latency_missing) = (0, 0);
    for p in &paced {
        match fleet.arrival(p.device, &format!("order-{}", p.order_id)) {
            Some((arrived, _)) => {
                if arrived < p.at {
                    before_201 += 1;
                }
                latency.push(arrived.saturating_duration_since(p.at));
            }
            None => latency_missing += 1,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while paced
        .iter()
        .any(|p| console.queued_at(p.order_id).is_none())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut console_latency = Samples::default();
    let (mut console_missing, mut console_before_201) = (0, 0);
    for p in &paced {
        match console.queued_at(p.order_id) {
            Some(at) => {
                if at < p.at {
                    console_before_201 += 1;
                }
                console_latency.push(at.saturating_duration_since(p.at));
            }
            None => console_missing += 1,
        }
    }
    let console_seen = console.stop();
    let latency_orders = paced.len();
    #[allow(clippy::cast_precision_loss)]
    let paced_rate = latency_orders as f64 / paced_time.as_secs_f64();
    placed.extend(paced);

    // Saturation: many API clients, each taking a free unit and ordering it.
    eprintln!(
        "channel: saturation with {} API clients for {} s …",
        plan.saturation_clients, plan.seconds
    );
    let started = Instant::now();
    let until = started + Duration::from_secs(plan.seconds);
    let mut workers = Vec::new();
    for _ in 0..plan.saturation_clients {
        let ctx = ctx.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut errors: HashMap<String, u64> = HashMap::new();
            while Instant::now() < until {
                let unit = {
                    let mut rx = ctx.free.lock().await;
                    match tokio::time::timeout_at(until.into(), rx.recv()).await {
                        Ok(Some(u)) => u,
                        _ => break,
                    }
                };
                match ctx.order(unit).await? {
                    Ok(p) => mine.push(p),
                    Err(code) => *errors.entry(code).or_default() += 1,
                }
            }
            anyhow::Ok((mine, errors))
        }));
    }
    let mut saturation_errors: HashMap<String, u64> = HashMap::new();
    let mut saturated = Vec::new();
    for w in workers {
        let (mine, errors) = w.await??;
        saturated.extend(mine);
        for (k, v) in errors {
            *saturation_errors.entry(k).or_default() += v;
        }
    }
    let mut saturation_seconds = vec![0u64; usize::try_from(plan.seconds)?];
    for p in &saturated {
        let s = usize::try_from(p.at.saturating_duration_since(started).as_secs())?;
        if let Some(c) = saturation_seconds.get_mut(s) {
            *c += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let saturation_per_s = saturated.len() as f64 / plan.seconds as f64;
    placed.extend(saturated);
    let flood_answers = flood.stop().await;
    let backups_taken = backups.stop().await?;
    settle(&fleet, &placed, Duration::from_secs(20)).await;

    // Broadcast to every device: from sending the request to the last ack. (The commit hands
    // the deliveries to the sessions before the 201 goes out, so timing from the 201 would
    // often read 0.)
    eprintln!("channel: broadcast to all {} devices …", plan.devices);
    let t0 = Instant::now();
    let b = post_created(
        &http,
        &format!("{base}/api/broadcasts"),
        &serde_json::json!({"target": {"all": true}, "urgency": "Immediate", "severity": "Severe",
            "certainty": "Likely", "headline": "bench: vehicle sought, all units"}),
    )
    .await?;
    let broadcast_id = format!("broadcast-{}", b["id"].as_i64().context("broadcast id")?);
    let deadline = t0 + Duration::from_secs(60);
    let (broadcast_received, last_ack) = loop {
        let mut n = 0;
        let mut last: Option<Instant> = None;
        for i in 0..plan.devices {
            if let Some((_, acked)) = fleet.arrival(i, &broadcast_id) {
                n += 1;
                last = last.max(Some(acked));
            }
        }
        if n == plan.devices || Instant::now() > deadline {
            break (n, last);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let broadcast_all_acked = (broadcast_received == plan.devices)
        .then(|| last_ack.map(|l| l.saturating_duration_since(t0)))
        .flatten();

    // Reconnect storm: a burst of orders, kill -9 right after, restart on the same data.
    eprintln!(
        "channel: burst of {} orders, kill -9 halfway, restart …",
        plan.storm_orders
    );
    // The kill comes when half the burst has been answered, so orders are in flight: those
    // answered 201 must all arrive; those cut off by the kill were never promised.
    let answered = Arc::new(AtomicU64::new(0));
    let mut burst = Vec::new();
    for _ in 0..plan.storm_orders {
        let Ok(unit) = ctx.free.lock().await.try_recv() else {
            break;
        };
        let (ctx, answered) = (ctx.clone(), answered.clone());
        burst.push(tokio::spawn(async move {
            let placed = ctx.order(unit).await;
            if matches!(placed, Ok(Ok(_))) {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            placed
        }));
    }
    let half = (burst.len() as u64).div_ceil(2);
    let wait_until = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < half && Instant::now() < wait_until {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill9().await?;
    let mut storm_orders = 0;
    let mut storm_cut = 0;
    for t in burst {
        match t.await? {
            Ok(Ok(p)) => {
                placed.push(p);
                storm_orders += 1;
            }
            _ => storm_cut += 1,
        }
    }
    let killed = Instant::now();
    let restarted_at = Instant::now();
    let server = Dispatchd::start(&plan.dispatchd, dir.path(), addr, config.as_deref()).await?;
    let restart_time = restarted_at.elapsed();
    let ready = Instant::now();
    let deadline = ready + Duration::from_secs(120);
    let (storm_resumed, last_welcome) = loop {
        let (n, last) = fleet.welcomed_since(killed);
        if n == plan.devices || Instant::now() > deadline {
            break (n, last);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let done = storm_resumed == plan.devices;
    let storm_after_restart = done
        .then(|| last_welcome.map(|l| l.saturating_duration_since(ready)))
        .flatten();
    let storm_after_kill = done
        .then(|| last_welcome.map(|l| l.saturating_duration_since(killed)))
        .flatten();
    settle(&fleet, &placed, Duration::from_secs(30)).await;

    // Accounting: every order answered 201 and the broadcast, at exactly its device.
    let mut orders_lost = 0;
    for p in &placed {
        if fleet
            .arrival(p.device, &format!("order-{}", p.order_id))
            .is_none()
        {
            orders_lost += 1;
        }
    }
    let mut broadcasts_lost = 0;
    let (mut duplicated, mut redelivered_after_ack, mut redelivered_unacked) = (0, 0, 0);
    fleet.each_inbox(|_, inbox| {
        if !inbox.got.contains_key(&broadcast_id) {
            broadcasts_lost += 1;
        }
        duplicated += inbox.duplicated;
        redelivered_after_ack += inbox.redelivered_after_ack;
        redelivered_unacked += inbox.redelivered_unacked;
    });
    let rejected_actions = fleet.counters.rejected_actions.load(Ordering::SeqCst);
    fleet.stop();
    drop(server);
    Ok(Results {
        devices: plan.devices,
        enrol_time,
        connect_time,
        latency,
        before_201,
        latency_orders,
        paced_rate,
        latency_missing,
        paced_skipped,
        paced_errors,
        console_latency,
        console_missing,
        console_before_201,
        console_frames: console_seen.frames,
        console_ended: console_seen.ended,
        saturation_per_s,
        saturation_seconds,
        saturation_errors,
        broadcast_all_acked,
        broadcast_received,
        rss_before,
        rss_after,
        storm_orders,
        storm_cut,
        storm_resumed,
        storm_after_restart,
        storm_after_kill,
        restart_time,
        orders_expected: placed.len(),
        orders_lost,
        broadcasts_lost,
        duplicated,
        redelivered_after_ack,
        redelivered_unacked,
        rejected_actions,
        flood_answers,
        backups_taken,
    })
}

/// What a paced run of orders gave.
pub(crate) struct Paced {
    /// The orders answered 201.
    pub(crate) placed: Vec<Placed>,
    /// The other answers, by status and error code.
    pub(crate) errors: HashMap<String, u64>,
    /// Ticks that found no free unit.
    pub(crate) skipped: usize,
    pub(crate) took: Duration,
}

/// Orders through `ctx` at `rate` per second for `seconds`, open loop: a tick that finds no free
/// unit is skipped. Requests in flight are bounded (each is a socket); when the server falls
/// behind, ticks wait and the achieved rate drops below the target, which the report shows.
pub(crate) async fn paced(ctx: &Arc<Ctx>, rate: u32, seconds: u64) -> anyhow::Result<Paced> {
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::new();
    let mut skipped = 0;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(PACED_IN_FLIGHT));
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        let Ok(unit) = ctx.free.lock().await.try_recv() else {
            skipped += 1;
            continue;
        };
        let permit = in_flight.clone().acquire_owned().await?;
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let placed = ctx.order(unit).await;
            drop(permit);
            placed
        }));
    }
    let took = started.elapsed();
    let mut placed = Vec::new();
    let mut errors: HashMap<String, u64> = HashMap::new();
    for t in tasks {
        match t.await?? {
            Ok(p) => placed.push(p),
            Err(code) => *errors.entry(code).or_default() += 1,
        }
    }
    Ok(Paced {
        placed,
        errors,
        skipped,
        took,
    })
}

/// 100 incidents, a little apart, for the orders to go to in turn.
pub(crate) async fn incidents(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<i64>> {
    let mut incidents = Vec::new();
    for i in 0..100 {
        let lat = 60.15 + f64::from(i) * 0.001;
        let incident = post_created(
            http,
            &format!("{base}/api/incidents"),
            &serde_json::json!({"kind": "burglary", "priority": 2, "lat": lat, "lon": 24.94}),
        )
        .await?;
        incidents.push(incident["id"].as_i64().context("incident without id")?);
    }
    Ok(incidents)
}

/// Where the devices connect: `addr`, trusting the certificate of `fingerprint` alone.
pub(crate) fn endpoint(addr: std::net::SocketAddr, fingerprint: &str) -> anyhow::Result<Endpoint> {
    let trust = Trust::pin(fingerprint)?;
    Ok(Endpoint {
        addr,
        tls: tokio_rustls::TlsConnector::from(Arc::new(trust.client_config()?)),
    })
}

/// The queue of free units, every unit of `enrolled` in it, and each unit's device.
pub(crate) type FreeUnits = (
    mpsc::UnboundedSender<i64>,
    mpsc::UnboundedReceiver<i64>,
    HashMap<i64, usize>,
);

/// Every unit of `enrolled` free, and each unit's device (its index).
pub(crate) fn free_units(enrolled: &[Enrolled]) -> anyhow::Result<FreeUnits> {
    let (free_tx, free_rx) = mpsc::unbounded_channel();
    for e in enrolled {
        free_tx.send(e.unit_id)?;
    }
    let device_of_unit = enrolled
        .iter()
        .enumerate()
        .map(|(i, e)| (e.unit_id, i))
        .collect();
    Ok((free_tx, free_rx, device_of_unit))
}

/// Waits until every placed order has reached its device, or `limit` passes.
pub(crate) async fn settle(fleet: &Fleet, placed: &[Placed], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut pending: Vec<&Placed> = placed.iter().collect();
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|p| {
            fleet
                .arrival(p.device, &format!("order-{}", p.order_id))
                .is_none()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates unit `B-i`, an enrolment code for it, and enrols a device with the code.
pub(crate) async fn enrol(
    http: &reqwest::Client,
    base: &str,
    i: usize,
) -> anyhow::Result<Enrolled> {
    let unit = post_created(
        http,
        &format!("{base}/api/units"),
        &serde_json::json!({"call_sign": format!("B-{i}"), "kind": "patrol_car",
            "capabilities": ["patrol"]}),
    )
    .await?;
    let unit_id = unit["id"].as_i64().context("unit without id")?;
    let code = post_created(
        http,
        &format!("{base}/api/units/{unit_id}/enrolment-code"),
        &serde_json::json!({}),
    )
    .await?;
    let enrolled = post_created(
        http,
        &format!("{base}/api/devices/enroll"),
        &serde_json::json!({"code": code["code"], "device_name": format!("bench tablet {i}")}),
    )
    .await?;
    Ok(Enrolled {
        device_id: enrolled["device_id"].as_i64().context("no device_id")?,
        unit_id,
        token: enrolled["token"].as_str().context("no token")?.to_owned(),
    })
}
