//! Two `dispatchd` release binaries on one PostgreSQL database (a new database on the server of
//! `--database-url`), sharing one certificate. The devices connect to node B. Orders are placed
//! at a steady rate first on B (the same node: the peer row) and then on A (across nodes: the
//! commit reaches B by `pg_notify`); each latency is from the 201 to the device's receipt of the
//! `deliver`. Every order answered 201 must reach its device once.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use postgres::{Client, NoTls};
use tokio::sync::Mutex;

use crate::channel::{endpoint, enrol, free_units, incidents, paced, settle, Ctx, Paced, Placed};
use crate::dispatchd::{free_addr, Dispatchd};
use crate::fleet::Fleet;
use crate::stats::{ratio, show, Row, Samples};

/// What one run measured.
struct Figures {
    devices: usize,
    same: Samples,
    cross: Samples,
    same_rate: f64,
    cross_rate: f64,
    expected: usize,
    lost: usize,
    duplicated: u64,
    /// Order requests answered otherwise than 201.
    refused: u64,
}

/// The cluster section's rows; a failure is reported in them.
pub async fn run(
    dispatchd: &Path,
    database_url: &str,
    devices: usize,
    rate: u32,
    seconds: u64,
) -> Vec<Row> {
    let database = format!("dispatch_bench_cluster_{}", std::process::id());
    let outcome = measure(dispatchd, database_url, &database, devices, rate, seconds).await;
    let (admin, name) = (database_url.to_owned(), database.clone());
    let _ = tokio::task::spawn_blocking(move || {
        Client::connect(&admin, NoTls).and_then(|mut c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        })
    })
    .await;
    match outcome {
        Ok(f) => rows(&f, rate),
        Err(e) => vec![Row {
            what: "two nodes on PostgreSQL".into(),
            ours: format!("failed: {e:#}"),
            peer: String::new(),
            ratio: String::new(),
            target: String::new(),
        }],
    }
}

fn rows(f: &Figures, rate: u32) -> Vec<Row> {
    let p = |s: &Samples| {
        format!(
            "p50 {} / p99 {} ({} orders)",
            show(s.percentile(50)),
            show(s.percentile(99)),
            s.len()
        )
    };
    vec![
        Row {
            what: format!(
                "order on node A → device on node B, {} devices, {rate}/s asked ({:.0}/s done; \
                 peer: order and device on B, {:.0}/s)",
                f.devices, f.cross_rate, f.same_rate
            ),
            ours: p(&f.cross),
            peer: p(&f.same),
            ratio: ratio(f.same.percentile(99), f.cross.percentile(99)),
            target: "p99 ≤ 25 ms at 500/s".into(),
        },
        Row {
            what: "two nodes: orders answered 201 lost / duplicated at a device".into(),
            ours: format!(
                "{} / {} of {} ({} requests refused)",
                f.lost, f.duplicated, f.expected, f.refused
            ),
            peer: String::new(),
            ratio: String::new(),
            target: "0 / 0".into(),
        },
    ]
}

fn write_config(
    dir: &Path,
    url: &str,
    servers: &[SocketAddr],
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("dispatchd.toml");
    let servers: Vec<String> = servers.iter().map(|a| format!("\"https://{a}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "server_urls = [{}]\n\n[store]\nbackend = \"postgres\"\npostgres_url = {url:?}\n",
            servers.join(", ")
        ),
    )?;
    Ok(path)
}

#[allow(clippy::too_many_lines)]
async fn measure(
    dispatchd: &Path,
    database_url: &str,
    database: &str,
    devices: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let (admin, name) = (database_url.to_owned(), database.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(&admin, NoTls)?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))
    })
    .await??;
    let (prefix, _) = database_url
        .rsplit_once('/')
        .context("--database-url ends with a database name")?;
    let url = format!("{prefix}/{database}");
    let (addr_a, addr_b) = (free_addr()?, free_addr()?);
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let config_a = write_config(dir_a.path(), &url, &[addr_a, addr_b])?;
    let config_b = write_config(dir_b.path(), &url, &[addr_a, addr_b])?;
    let data_a = dir_a.path().join("data");
    let data_b = dir_b.path().join("data");
    eprintln!("cluster: starting node A …");
    let node_a = Dispatchd::start(dispatchd, &data_a, addr_a, Some(&config_a)).await?;
    std::fs::create_dir_all(data_b.join("tls"))?;
    for file in std::fs::read_dir(data_a.join("tls"))? {
        let file = file?;
        std::fs::copy(file.path(), data_b.join("tls").join(file.file_name()))?;
    }
    eprintln!("cluster: starting node B with A's certificate …");
    let node_b = Dispatchd::start(dispatchd, &data_b, addr_b, Some(&config_b)).await?;
    let (http_a, http_b) = (node_a.admin().await?, node_b.admin().await?);

    eprintln!("cluster: enrolling {devices} devices …");
    let enrolled: Vec<_> = futures_util::stream::iter(0..devices)
        .map(|i| enrol(&http_a, &node_a.base, i))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let incidents = incidents(&http_a, &node_a.base).await?;
    let endpoint = endpoint(addr_b, &node_b.fingerprint()?)?;
    let (free_tx, free_rx, device_of_unit) = free_units(&enrolled)?;
    eprintln!("cluster: connecting {devices} devices to node B …");
    let fleet = Fleet::start(&endpoint, &enrolled, 256, free_tx.clone());
    anyhow::ensure!(
        fleet.wait_welcomes(devices, Duration::from_secs(300)).await,
        "not every device was welcomed by node B in 300 s"
    );
    let free = Arc::new(Mutex::new(free_rx));
    let on = |http: reqwest::Client, base: &str| {
        Arc::new(Ctx {
            http,
            base: base.to_owned(),
            incidents: incidents.clone(),
            device_of_unit: device_of_unit.clone(),
            free: free.clone(),
            next: AtomicU64::new(0),
        })
    };
    eprintln!("cluster: {rate} orders/s on node B for {seconds} s …");
    let same = paced(&on(http_b, &node_b.base), rate, seconds).await?;
    eprintln!("cluster: {rate} orders/s on node A for {seconds} s …");
    let cross = paced(&on(http_a, &node_a.base), rate, seconds).await?;
    let placed: Vec<Placed> = same.placed.iter().chain(&cross.placed).copied().collect();
    settle(&fleet, &placed, Duration::from_secs(20)).await;
    let latency = |placed: &[Placed]| {
        let mut samples = Samples::default();
        for p in placed {
            if let Some((arrived, _)) = fleet.arrival(p.device, &format!("order-{}", p.order_id)) {
                samples.push(arrived.saturating_duration_since(p.at));
            }
        }
        samples
    };
    let lost = placed
        .iter()
        .filter(|p| {
            fleet
                .arrival(p.device, &format!("order-{}", p.order_id))
                .is_none()
        })
        .count();
    let mut duplicated = 0;
    fleet.each_inbox(|_, inbox| duplicated += inbox.duplicated);
    let figures = Figures {
        devices,
        same: latency(&same.placed),
        cross: latency(&cross.placed),
        same_rate: achieved(&same),
        cross_rate: achieved(&cross),
        expected: placed.len(),
        lost,
        duplicated,
        refused: [&same, &cross]
            .iter()
            .flat_map(|run| run.errors.values())
            .sum::<u64>(),
    };
    fleet.stop();
    drop((node_a, node_b));
    Ok(figures)
}

/// Orders answered 201 per second of a paced run.
#[allow(clippy::cast_precision_loss)]
fn achieved(run: &Paced) -> f64 {
    run.placed.len() as f64 / run.took.as_secs_f64()
}
