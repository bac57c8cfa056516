//! The peers measured beside our index on the same points: Redis `GEOSEARCH` and PostGIS KNN.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::stats::Samples;

/// Where Redis listens on these machines.
const REDIS: &str = "127.0.0.1:6379";

/// A minimal RESP client: enough for GEOADD and GEOSEARCH over one connection.
struct Redis {
    stream: BufReader<TcpStream>,
}

impl Redis {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        Ok(Self {
            stream: BufReader::new(
                TcpStream::connect(addr)
                    .await
                    .context("connecting to Redis")?,
            ),
        })
    }

    async fn command(&mut self, args: &[String]) -> anyhow::Result<()> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.get_mut().write_all(out.as_bytes()).await?;
        self.read_reply().await
    }

    fn read_reply(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            let mut line = String::new();
            self.stream.read_line(&mut line).await?;
            let (kind, rest) = line.split_at(1);
            let n: i64 = rest.trim().parse().unwrap_or(0);
            match kind {
                "-" => anyhow::bail!("redis error: {}", rest.trim()),
                "$" if n >= 0 => {
                    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0) + 2];
                    self.stream.read_exact(&mut buf).await?;
                }
                "*" => {
                    for _ in 0..n {
                        self.read_reply().await?;
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }
}

/// Redis `GEOSEARCH` timed two ways on the same points.
#[derive(Debug)]
pub struct GeoSearch {
    /// One query at a time, each sent when the previous answer arrived.
    pub one_at_a_time: Samples,
    /// Open loop at the recommendation API's rate, latency from when each query was due.
    pub at_rate: Samples,
}

/// Connections the paced queries share (as many as the API bench keeps).
const PACED_CONNECTIONS: usize = 64;

fn geosearch(key: &str, (lat, lon): (f64, f64)) -> Vec<String> {
    [
        "GEOSEARCH",
        key,
        "FROMLONLAT",
        &lon.to_string(),
        &lat.to_string(),
        "BYRADIUS",
        "1",
        "km",
        "ASC",
        "COUNT",
        "5",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Loads the points into Redis and times `GEOSEARCH … BYRADIUS … ASC COUNT 5` at each query,
/// one at a time and then open loop at `rate` per second for `duration`.
///
/// # Errors
/// When Redis is not reachable or refuses a command.
pub async fn redis_geosearch(
    points: &[(f64, f64)],
    queries: &[(f64, f64)],
    rate: u32,
    duration: Duration,
) -> anyhow::Result<GeoSearch> {
    let mut r = Redis::connect(REDIS).await?;
    let key = "dispatch-bench:units".to_owned();
    r.command(&["DEL".into(), key.clone()]).await?;
    for (chunk_no, chunk) in points.chunks(1000).enumerate() {
        let mut args = vec!["GEOADD".to_owned(), key.clone()];
        for (i, (lat, lon)) in chunk.iter().enumerate() {
            args.extend([
                lon.to_string(),
                lat.to_string(),
                (chunk_no * 1000 + i).to_string(),
            ]);
        }
        r.command(&args).await?;
    }
    let mut one_at_a_time = Samples::default();
    for q in queries {
        let args = geosearch(&key, *q);
        let started = Instant::now();
        r.command(&args).await?;
        one_at_a_time.push(started.elapsed());
    }
    let mut connections = Vec::new();
    for _ in 0..PACED_CONNECTIONS {
        connections.push(Redis::connect(REDIS).await?);
    }
    let pool = Arc::new(Mutex::new(connections));
    let (queries, paced_key) = (Arc::new(queries.to_vec()), key.clone());
    let at_rate = crate::paced::open_loop(rate, duration, PACED_CONNECTIONS, move |n| {
        let (pool, queries) = (pool.clone(), queries.clone());
        let args = geosearch(
            &paced_key,
            queries[usize::try_from(n).unwrap_or(0) % queries.len()],
        );
        async move {
            // A slot of the open loop guarantees a free connection.
            let mut conn = pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .context("no free Redis connection")?;
            let answer = conn.command(&args).await;
            pool.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            answer
        }
    })
    .await?;
    r.command(&["DEL".into(), key]).await?;
    Ok(GeoSearch {
        one_at_a_time,
        at_rate,
    })
}

/// Loads the points into a PostGIS table with a GiST index and times
/// `ORDER BY geom <-> point LIMIT 5` at each query.
///
/// # Errors
/// When PostgreSQL is not reachable or PostGIS is not installed.
pub async fn postgis_knn(
    url: &str,
    points: &[(f64, f64)],
    queries: &[(f64, f64)],
) -> anyhow::Result<Samples> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS postgis")
        .execute(&pool)
        .await
        .context("PostGIS is not installed")?;
    sqlx::query("DROP TABLE IF EXISTS dispatch_bench_units")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE TABLE dispatch_bench_units (id integer PRIMARY KEY, geom geometry(Point, 4326) NOT NULL)").execute(&pool).await?;
    for (chunk_no, chunk) in points.chunks(10_000).enumerate() {
        let ids: Vec<i32> = (0..chunk.len())
            .map(|i| i32::try_from(chunk_no * 10_000 + i).unwrap_or(0))
            .collect();
        let lats: Vec<f64> = chunk.iter().map(|p| p.0).collect();
        let lons: Vec<f64> = chunk.iter().map(|p| p.1).collect();
        sqlx::query(
            "INSERT INTO dispatch_bench_units (id, geom)
             SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) FROM UNNEST($1::int[], $2::float8[], $3::float8[]) AS t(id, lat, lon)",
        )
        .bind(&ids)
        .bind(&lats)
        .bind(&lons)
        .execute(&pool)
        .await?;
    }
    sqlx::query("CREATE INDEX ON dispatch_bench_units USING gist (geom)")
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE dispatch_bench_units")
        .execute(&pool)
        .await?;
    let mut samples = Samples::default();
    for (lat, lon) in queries {
        let started = Instant::now();
        let rows: Vec<(i32,)> = sqlx::query_as(
            "SELECT id FROM dispatch_bench_units ORDER BY geom <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT 5",
        )
        .bind(lon)
        .bind(lat)
        .fetch_all(&pool)
        .await?;
        samples.push(started.elapsed());
        anyhow::ensure!(rows.len() == 5, "PostGIS returned {} rows", rows.len());
    }
    sqlx::query("DROP TABLE dispatch_bench_units")
        .execute(&pool)
        .await?;
    Ok(samples)
}
