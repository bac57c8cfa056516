//! The PostgreSQL write path (issue 13's first figures): durable orders per second through the
//! group-committed `PostgresWriter`, each write the store's own order write (`insert_order`, as
//! `create_order` runs it on SQLite: the incident with its hazards and newest entries, the unit,
//! the order, the device's outbox entry, the unit assigned, the chained timeline event), on the
//! machine's PostgreSQL alone and on a primary whose every COMMIT waits for a synchronous standby
//! on this machine. The write path only: the device sessions and the HTTP API are not in these
//! figures (the channel section measures the whole server on SQLite).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_server::domain::Actor;
use dispatch_server::store::insert_order;
use dispatch_server::store::postgres::{PgTx, PostgresSettings, PostgresWriter};
use dispatch_server::store::sql::{Param, Statements};
use dispatch_tests::pg_cluster::PgCluster;
use postgres::{Client, NoTls};

use crate::stats::Row;

/// Units (each with a device), one per order: an order holds its unit, and no run at these rates
/// writes this many orders.
const UNITS: i64 = 200_000;

/// Writers waiting at once: what many consoles and device sessions are.
const CLIENTS: usize = 64;

/// Measures both setups; a setup that cannot run is a row saying why.
pub async fn run(database_url: &str, seconds: u64) -> Vec<Row> {
    let single = measure_single(database_url, seconds).await;
    let standby = measure_with_standby(seconds).await;
    vec![
        row(
            "PostgreSQL write path, one server: durable order writes/s",
            single,
            "≥ 3,000/s",
        ),
        row(
            "… with a synchronous standby on this machine",
            standby,
            "≥ 1,500/s",
        ),
    ]
}

fn row(what: &str, measured: anyhow::Result<f64>, target: &str) -> Row {
    Row {
        what: what.into(),
        ours: match measured {
            Ok(rate) => format!("{rate:.0}/s"),
            Err(e) => format!("failed: {e:#}"),
        },
        peer: String::new(),
        ratio: String::new(),
        target: target.into(),
    }
}

/// On a database of its own on the server at `database_url`.
async fn measure_single(database_url: &str, seconds: u64) -> anyhow::Result<f64> {
    let name = format!("dispatch_bench_{}", std::process::id());
    let (admin, db) = (database_url.to_owned(), name.clone());
    blocking(move || {
        let mut client = Client::connect(&admin, NoTls)?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))?;
        client.batch_execute(&format!("CREATE DATABASE {db}"))?;
        anyhow::Ok(())
    })
    .await?;
    let (prefix, _) = database_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database name"))?;
    let measured = measure(&format!("{prefix}/{name}"), seconds).await;
    let admin = database_url.to_owned();
    blocking(move || {
        Client::connect(&admin, NoTls)?
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        anyhow::Ok(())
    })
    .await?;
    measured
}

/// On a primary and synchronous standby made for the run.
async fn measure_with_standby(seconds: u64) -> anyhow::Result<f64> {
    let cluster = PgCluster::start()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no PostgreSQL server binaries in /usr/lib/postgresql"))?;
    cluster
        .psql(cluster.primary_port, "postgres", "CREATE DATABASE dispatch")
        .await?;
    measure(&cluster.url("dispatch"), seconds).await
}

/// Seeds the units and devices, then writes orders from [`CLIENTS`] tasks for `seconds`.
async fn measure(url: &str, seconds: u64) -> anyhow::Result<f64> {
    let writer = PostgresWriter::start(PostgresSettings::parse(url)?, Arc::new(())).await?;
    writer.write(seed).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (writer, stop, written, next) =
                (writer.clone(), stop.clone(), written.clone(), next.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let unit = next.fetch_add(1, Ordering::Relaxed) as i64 + 1;
                    anyhow::ensure!(unit <= UNITS, "every unit was dispatched: raise UNITS");
                    writer.write(move |tx| write_order(tx, unit)).await?;
                    written.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let count = written.load(Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// One operator, one incident, [`UNITS`] available units with a device each.
fn seed(tx: &mut PgTx<'_>) -> dispatch_server::store::Result<()> {
    tx.run(
        "INSERT INTO operators (username, password_hash, role, created_at)
         VALUES ('bench', 'x', 'operator', 0)",
        &[],
    )?;
    tx.run(
        "INSERT INTO incidents (kind, priority, lat, lon, created_at, updated_at)
         VALUES ('assault', 1, 60.17, 24.94, 0, 0)",
        &[],
    )?;
    tx.run(
        "INSERT INTO units (call_sign, kind, created_at)
         SELECT 'B-' || n, 'patrol', 0 FROM generate_series(1, ?1) AS n",
        &[Param::Int(UNITS)],
    )?;
    tx.run(
        "INSERT INTO devices (unit_id, token_hash, epoch, enrolled_at)
         SELECT id, 'x', 'e', 0 FROM units",
        &[],
    )?;
    Ok(())
}

/// One order for `unit` on the incident: the store's own order write ([`insert_order`]).
fn write_order(tx: &mut PgTx<'_>, unit: i64) -> dispatch_server::store::Result<()> {
    let operator = Actor::Operator {
        id: 1,
        username: "bench".into(),
    };
    insert_order(tx, 1, unit, &operator, None, None).map(drop)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}
