//! `dispatch-bench`: measures the dispatch system and, where a peer exists, the peer on the same
//! data in the same run, and prints one table. `make bench` runs it.

mod api;
mod channel;
mod channel_report;
mod cluster;
mod console_feed;
mod dispatchd;
mod eta;
mod fleet;
mod jetstream_peer;
mod live;
mod mqtt_peer;
mod paced;
mod peers;
mod pg_write;
mod records;
mod stats;
mod tiles;

use std::path::Path;
use std::time::Duration;

use clap::Parser;
use rand::{Rng, SeedableRng};
use stats::{print_table, ratio, show, Row};

/// Sections of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Live index, recommendation API and ETA ranking, beside Redis and PostGIS.
    Geo,
    /// Only the recommendation API beside Redis GEOSEARCH (a part of `geo`).
    Api,
    /// The order channel under load with thousands of devices, beside Mosquitto.
    Channel,
    /// Export and backup of a large synthetic record: time and peak memory.
    Records,
    /// Reading basemap tiles from a PMTiles file: our reader beside the `pmtiles` crate's.
    Tiles,
    /// The PostgreSQL write path: durable order writes/s on one server and with a synchronous
    /// standby.
    Postgres,
    /// Two `dispatchd` nodes on one PostgreSQL database: an order placed on one node reaching a
    /// device connected to the other, beside both on the same node.
    Cluster,
    /// Drive-time ranking on a country-sized synthetic road graph (5,000,000 nodes by default):
    /// preparation time, peak memory, K=5 ETA with 10,000 units. Run alone, so the peak memory
    /// is the road graph's.
    Country,
}

/// Geo benchmarks (live index vs Redis GEOSEARCH and PostGIS KNN, the recommendation API,
/// drive-time ranking on a synthetic city) and the order channel under load vs Mosquitto.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Run only this section (default: all).
    #[arg(long, value_enum)]
    only: Option<Section>,
    /// Simulated devices (and Mosquitto clients) in the channel section.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Paced orders (and Mosquitto publishes) per second in the channel section.
    #[arg(long, default_value_t = 1000)]
    order_rate: u32,
    /// Concurrent API clients placing orders at saturation.
    #[arg(long, default_value_t = 64)]
    saturation_clients: usize,
    /// Orders placed at full speed just before kill -9 in the reconnect storm.
    #[arg(long, default_value_t = 500)]
    storm_orders: usize,
    /// Connections sending wrong passwords during a second run of ours, compared with the first
    /// (0: no second run).
    #[arg(long, default_value_t = 0)]
    login_flood: usize,
    /// A further run of ours with `dispatchd backup` running back to back, compared with the
    /// first.
    #[arg(long)]
    backup_during: bool,
    /// Incidents (with 10 events each) in the synthetic record of the records section.
    #[arg(long, default_value_t = 1_000_000)]
    records_incidents: u64,
    /// Mosquitto's address.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt: String,
    /// The `dispatchd` binary the channel section measures (default: the one next to this
    /// benchmark). Another build measures another version of the server with the same run.
    #[arg(long)]
    dispatchd: Option<std::path::PathBuf>,
    /// `nats-server` 2.10 or later for the JetStream peer (default: the one
    /// bench/install-peers.sh puts in target/bench-peers).
    #[arg(long)]
    nats_server: Option<std::path::PathBuf>,
    /// Units in the live index.
    #[arg(long, default_value_t = 100_000)]
    units: usize,
    /// Position updates per second ingested while querying.
    #[arg(long, default_value_t = 100_000)]
    ingest_rate: u64,
    /// Seconds of each timed phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Recommendation API requests per second.
    #[arg(long, default_value_t = 1000)]
    api_rate: u32,
    /// Side of the synthetic grid city (side² nodes).
    #[arg(long, default_value_t = 708)]
    grid_side: usize,
    /// Side of the synthetic grid country (side² nodes) in the `country` section.
    #[arg(long, default_value_t = 2237)]
    country_side: usize,
    /// Devices of the `cluster` section (two nodes on PostgreSQL), all connected to node B.
    #[arg(long, default_value_t = 1000)]
    cluster_devices: usize,
    /// Orders per second of the `cluster` section, on each node in turn.
    #[arg(long, default_value_t = 500)]
    cluster_rate: u32,
    /// PostgreSQL with PostGIS for the KNN peer; its server also hosts the single-server run of
    /// the `postgres` section and the `cluster` section's database (each a database of its own).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    database_url: String,
}

/// Random points over a 22 × 28 km area around Helsinki.
fn points(n: usize, seed: u64) -> Vec<(f64, f64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (rng.gen_range(60.10..60.30), rng.gen_range(24.70..25.20)))
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.devices > 0, "--devices must be at least 1");
    anyhow::ensure!(
        (1..=100_000).contains(&args.order_rate),
        "--order-rate must be 1 to 100000"
    );
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    // Every device is a socket here and one in dispatchd (which inherits the limit); the
    // Mosquitto clients come after the devices are gone.
    let nofile = rlimit::increase_nofile_limit(u64::MAX)?;
    let mut rows = Vec::new();
    match args.only {
        None | Some(Section::Geo) => geo(&args, &mut rows).await?,
        Some(Section::Api) => {
            let units = points(args.units, 1);
            let queries = points(10_000, 2);
            eprintln!("redis GEOSEARCH …");
            let redis = peers::redis_geosearch(
                &units,
                &queries,
                args.api_rate,
                Duration::from_secs(args.seconds),
            )
            .await;
            rows.push(api_row(&args, &units, &queries, &redis).await?);
        }
        Some(Section::Country) => {
            eprintln!("ETA ranking on a {0}×{0} grid country …", args.country_side);
            let side = args.country_side;
            let eta = tokio::task::spawn_blocking(move || eta::run(side, 1000, &[10_000])).await?;
            eta_rows(&eta, "≤ 180 s and ≤ 4 GiB peak", "p99 ≤ 3 ms", &mut rows);
        }
        Some(Section::Tiles | Section::Channel) => {}
        Some(Section::Records | Section::Postgres | Section::Cluster) => {}
    }
    if args.only.is_none() || args.only == Some(Section::Tiles) {
        eprintln!("PMTiles: our reader beside the pmtiles crate's …");
        let pbf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/helsinki.osm.pbf");
        rows.extend(tiles::run(&pbf, 20).await?);
    }
    if args.only.is_none() || args.only == Some(Section::Postgres) {
        eprintln!("PostgreSQL write path …");
        rows.extend(pg_write::run(&args.database_url, args.seconds).await);
    }
    if args.only.is_none() || args.only == Some(Section::Cluster) {
        eprintln!("Two nodes on PostgreSQL …");
        let dispatchd = match &args.dispatchd {
            Some(path) => path.clone(),
            None => dispatchd::default_binary()?,
        };
        rows.extend(
            cluster::run(
                &dispatchd,
                &args.database_url,
                args.cluster_devices,
                args.cluster_rate,
                args.seconds,
            )
            .await,
        );
    }
    if args.only.is_none() || args.only == Some(Section::Records) {
        let dispatchd = match &args.dispatchd {
            Some(path) => path.clone(),
            None => dispatchd::default_binary()?,
        };
        match records::run(&dispatchd, args.records_incidents) {
            Ok(record_rows) => rows.extend(record_rows),
            Err(e) => rows.push(Row {
                what: "export and backup".into(),
                ours: format!("failed: {e:#}"),
                peer: String::new(),
                ratio: String::new(),
                target: String::new(),
            }),
        }
    }
    if args.only.is_none() || args.only == Some(Section::Channel) {
        anyhow::ensure!(
            nofile >= args.devices as u64 + 1000,
            "the open-file limit is {nofile}, too low for {} devices (one socket each, and 1000 more)",
            args.devices
        );
        match channel_section(&args).await {
            Ok(channel_rows) => rows.extend(channel_rows),
            // The geo rows are still worth printing; the failure is the channel's row.
            Err(e) => rows.push(Row {
                what: "order channel".into(),
                ours: format!("failed: {e:#}"),
                peer: String::new(),
                ratio: String::new(),
                target: String::new(),
            }),
        }
    }
    println!();
    print_table(&rows);
    Ok(())
}

async fn channel_section(args: &Args) -> anyhow::Result<Vec<Row>> {
    let dispatchd = match &args.dispatchd {
        Some(path) => path.clone(),
        None => dispatchd::default_binary()?,
    };
    let plan = channel::Plan {
        dispatchd,
        devices: args.devices,
        order_rate: args.order_rate,
        seconds: args.seconds,
        saturation_clients: args.saturation_clients,
        storm_orders: args.storm_orders,
        login_flood: 0,
        backups: false,
    };
    let ours = channel::run(&plan).await?;
    let flooded = if args.login_flood > 0 {
        eprintln!(
            "channel: again, with {} connections flooding the login …",
            args.login_flood
        );
        Some(
            channel::run(&channel::Plan {
                login_flood: args.login_flood,
                ..plan.clone()
            })
            .await?,
        )
    } else {
        None
    };
    let backed_up = if args.backup_during {
        eprintln!("channel: again, with `dispatchd backup` running back to back …");
        Some(
            channel::run(&channel::Plan {
                backups: true,
                ..plan.clone()
            })
            .await?,
        )
    } else {
        None
    };
    eprintln!("Mosquitto peer at {} …", args.mqtt);
    let (host, port) = args
        .mqtt
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--mqtt must be host:port, got {:?}", args.mqtt))?;
    let port: u16 = port
        .parse()
        .map_err(|e| anyhow::anyhow!("--mqtt port {port:?}: {e}"))?;
    let peer = mqtt_peer::run(host, port, args.devices, args.order_rate, args.seconds).await;
    let nats = match &args.nats_server {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .and_then(std::path::Path::parent)
            .map(|target| target.join("bench-peers/bin/nats-server"))
            .ok_or_else(|| anyhow::anyhow!("cannot place target/bench-peers"))?,
    };
    eprintln!("NATS JetStream peer ({}) …", nats.display());
    let jetstream =
        jetstream_peer::run(&nats, args.saturation_clients, args.seconds, order_body()).await;
    let mut rows = channel_report::rows(&ours, &peer, &jetstream, args.order_rate);
    if let Some(flooded) = &flooded {
        rows.extend(channel_report::flood_rows(&ours, flooded, args.login_flood));
    }
    if let Some(backed_up) = &backed_up {
        rows.extend(channel_report::backup_rows(&ours, backed_up));
    }
    Ok(rows)
}

/// The body the server stores and pushes for an order of the channel section.
fn order_body() -> Vec<u8> {
    let body = dispatch_protocol::Message::Order(dispatch_protocol::OrderMessage {
        order_id: 123_456,
        unit_id: 4_321,
        accepted: false,
        incident: dispatch_protocol::IncidentBrief {
            id: 42,
            kind: "burglary".into(),
            priority: 2,
            lat: 60.15,
            lon: 24.94,
            address: None,
            notes: None,
            caller: None,
            callback: None,
            hazards: Vec::new(),
            narrative: Vec::new(),
        },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

async fn geo(args: &Args, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let units = points(args.units, 1);
    let queries = points(10_000, 2);

    eprintln!(
        "live index: {} units, {} updates/s, {} s …",
        args.units, args.ingest_rate, args.seconds
    );
    let index = live::fill(&units, 3);
    let (u, q) = (units.clone(), queries.clone());
    let seconds = Duration::from_secs(args.seconds);
    let rate = args.ingest_rate;
    let runs = tokio::task::spawn_blocking(move || {
        live::query_while_ingesting(&index, &u, &q, rate, seconds)
    })
    .await?;
    let (ours, capacity) = (&runs.paced, &runs.unpaced);
    eprintln!("redis GEOSEARCH …");
    let redis = peers::redis_geosearch(&units, &queries, args.api_rate, seconds).await;
    eprintln!("PostGIS KNN …");
    let postgis = peers::postgis_knn(&args.database_url, &units, &queries).await;
    let ours_p99 = ours.queries.percentile(99);
    let peer_cell = |s: &anyhow::Result<stats::Samples>| match s {
        Ok(s) => (
            format!(
                "p50 {} / p99 {}",
                show(s.percentile(50)),
                show(s.percentile(99))
            ),
            ratio(s.percentile(99), ours_p99),
        ),
        Err(e) => (format!("unavailable: {e:#}"), "n/a".into()),
    };
    let ours_cell = format!(
        "p50 {} / p99 {} ({} queries)",
        show(ours.queries.percentile(50)),
        show(ours_p99),
        ours.queries.len()
    );
    let redis_one_at_a_time = redis
        .as_ref()
        .map(|g| g.one_at_a_time.clone())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    let (redis_cell, redis_ratio) = peer_cell(&redis_one_at_a_time);
    rows.push(Row {
        what: format!(
            "K=5 filtered nearest, {} units, in-process, while ingesting",
            args.units
        ),
        ours: ours_cell.clone(),
        peer: format!("Redis GEOSEARCH (loopback, unfiltered): {redis_cell}"),
        ratio: redis_ratio,
        target: "p99 ≤ 20 µs".into(),
    });
    let (pg_cell, pg_ratio) = peer_cell(&postgis);
    rows.push(Row {
        what: "same, against PostGIS".into(),
        ours: ours_cell,
        peer: format!("PostGIS KNN <-> GiST (loopback, unfiltered): {pg_cell}"),
        ratio: pg_ratio,
        target: String::new(),
    });
    rows.push(Row {
        what: "position updates ingested during the queries".into(),
        ours: format!(
            "{:.0} updates/s paced (at most {} behind schedule); {:.0} updates/s unpaced while querying (query p99 then {}); query p99 with the pacing thread waking but moving nothing: {}; with the query and ingest threads pinned to separate CPUs: p50 {} / p99 {} ({:.0} updates/s)",
            ours.updates_per_s,
            ours.max_backlog,
            capacity.updates_per_s,
            show(capacity.queries.percentile(99)),
            show(runs.idle_writer.queries.percentile(99)),
            show(runs.pinned.queries.percentile(50)),
            show(runs.pinned.queries.percentile(99)),
            runs.pinned.updates_per_s
        ),
        peer: String::new(),
        ratio: String::new(),
        target: "≥ 100,000/s".into(),
    });

    rows.push(api_row(args, &units, &queries, &redis).await?);

    eprintln!("ETA ranking on a {0}×{0} grid city …", args.grid_side);
    let side = args.grid_side;
    let eta = tokio::task::spawn_blocking(move || eta::run(side, 1000, &[100_000, 1_000])).await?;
    eta_rows(&eta, "", "p99 ≤ 5 ms", rows);
    Ok(())
}

/// The rows of one ETA run: preparation (time, sizes, peak memory), then p50/p99 per search
/// method and fleet size.
fn eta_rows(eta: &eta::EtaResult, prepare_target: &str, query_target: &str, rows: &mut Vec<Row>) {
    #[allow(clippy::cast_precision_loss)]
    let mib = |bytes: usize| bytes as f64 / (1024.0 * 1024.0);
    #[allow(clippy::cast_precision_loss)]
    let peak = eta.peak_rss_bytes.map_or("peak RSS unknown".into(), |b| {
        format!("peak RSS {:.0} MiB", b as f64 / (1024.0 * 1024.0))
    });
    rows.push(Row {
        what: format!(
            "ETA preparation: synthetic {} nodes, graph + contraction hierarchy",
            eta.nodes
        ),
        ours: format!(
            "{:.2} s (graph {:.0} MiB, hierarchy {:.0} MiB in {} upward edges, {peak})",
            eta.prepare.as_secs_f64(),
            mib(eta.memory_bytes),
            mib(eta.hierarchy_bytes),
            eta.hierarchy_edges
        ),
        peer: "no peer".into(),
        ratio: String::new(),
        target: prepare_target.into(),
    });
    for timing in &eta.timings {
        for (units, samples) in &timing.by_fleet {
            rows.push(Row {
                what: format!(
                    "ETA-ranked K=5, synthetic {} nodes, {} units, {:?}",
                    eta.nodes,
                    thousands(*units),
                    timing.search
                ),
                ours: format!(
                    "p50 {} / p99 {}",
                    show(samples.percentile(50)),
                    show(samples.percentile(99)),
                ),
                peer: "no peer".into(),
                ratio: String::new(),
                target: query_target.into(),
            });
        }
    }
}

/// `100000` as `100,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The recommendation API's row: its round trip at `--api-rate` beside Redis GEOSEARCH at the
/// same rate (and, for reference, one query at a time).
async fn api_row(
    args: &Args,
    units: &[(f64, f64)],
    queries: &[(f64, f64)],
    redis: &anyhow::Result<peers::GeoSearch>,
) -> anyhow::Result<Row> {
    eprintln!("recommendation API at {} req/s …", args.api_rate);
    let incidents: Vec<(f64, f64)> = queries.iter().take(200).copied().collect();
    let api = api::recommendations(
        units,
        &incidents,
        (args.api_rate, Duration::from_secs(args.seconds)),
        queries.len(),
    )
    .await?;
    let api_p99 = api.at_rate.percentile(99);
    Ok(Row {
        what: format!(
            "recommendation API round trip at {} req/s (HTTPS, {} units)",
            args.api_rate, args.units
        ),
        ours: format!(
            "p50 {} / p99 {} ({} requests); one at a time: p50 {} / p99 {} ({} requests)",
            show(api.at_rate.percentile(50)),
            show(api_p99),
            api.at_rate.len(),
            show(api.one_at_a_time.percentile(50)),
            show(api.one_at_a_time.percentile(99)),
            api.one_at_a_time.len()
        ),
        peer: match &redis {
            Ok(g) => format!(
                "Redis GEOSEARCH at {} req/s: p50 {} / p99 {} ({} queries); one at a time: p50 {} / p99 {}",
                args.api_rate,
                show(g.at_rate.percentile(50)),
                show(g.at_rate.percentile(99)),
                g.at_rate.len(),
                show(g.one_at_a_time.percentile(50)),
                show(g.one_at_a_time.percentile(99)),
            ),
            Err(e) => format!("Redis unavailable: {e:#}"),
        },
        ratio: redis
            .as_ref()
            .map_or("n/a".into(), |g| ratio(g.at_rate.percentile(99), api_p99)),
        target: "p99 ≤ Redis GEOSEARCH p99 at the same rate".into(),
    })
}
