//! The recommendation API end to end (HTTPS, session, store, live index) at a fixed request
//! rate, against a server holding 100,000 units.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_server::domain::{Actor, NewIncident, Role};
use dispatch_server::store::Store;
use dispatch_server::{auth, Application, Config};

use crate::stats::Samples;

const PASSWORD: &str = "bench-password-1";
/// Keep-alive connections the client opens before timing, and its limit of requests in flight.
const CONNECTIONS: usize = 64;

/// Writes `points` as available, freshly located units straight into a new database.
async fn seed(db: &std::path::Path, points: &[(f64, f64)]) -> anyhow::Result<()> {
    Store::open_standalone(db).await?.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await?;
    let now = dispatch_server::domain::now_ms();
    let mut tx = pool.begin().await?;
    for (i, (lat, lon)) in points.iter().enumerate() {
        sqlx::query(
            "INSERT INTO units (call_sign, kind, capabilities, status, lat, lon, accuracy_m, fix_time, fix_received, created_at)
             VALUES ($1, 'patrol_car', '[\"patrol\"]', 'available', $2, $3, 5.0, $4, $4, $4)",
        )
        .bind(format!("B-{i}"))
        .bind(lat)
        .bind(lon)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    pool.close().await;
    Ok(())
}

/// The recommendation API timed two ways, as its Redis peer is.
#[derive(Debug)]
pub struct ApiRuns {
    /// Open loop at the requested rate, latency from when each request was due.
    pub at_rate: Samples,
    /// One request at a time on one connection, each sent when the previous answer arrived.
    pub one_at_a_time: Samples,
}

/// Requests `GET /api/incidents/{id}/recommendations` at `rate` per second for `duration`,
/// open loop (latency counted from when each request was due), then `sequential` times one at a
/// time.
///
/// # Errors
/// When the server cannot start or a request fails.
pub async fn recommendations(
    points: &[(f64, f64)],
    incidents: &[(f64, f64)],
    (rate, duration): (u32, Duration),
    sequential: usize,
) -> anyhow::Result<ApiRuns> {
    let dir = tempfile::tempdir()?;
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_owned(),
        stale_fix_secs: 24 * 3600,
        ..Config::default()
    };
    std::fs::create_dir_all(dir.path())?;
    seed(&config.database_path(), points).await?;
    let app = Application::build(config).await?;
    let store = app.state().dispatch.store.clone();
    store
        .create_operator(
            "bench",
            &auth::hash_password(PASSWORD)?,
            Role::Operator,
            &Actor::System,
            None,
        )
        .await?;
    let mut ids = Vec::new();
    for (lat, lon) in incidents {
        let new = NewIncident::parse(
            "burglary",
            2,
            *lat,
            *lon,
            None,
            None,
            None,
            None,
            &["patrol".to_owned()],
        )?;
        ids.push(store.create_incident(&new, &Actor::System, None).await?.id);
    }
    let base = format!("https://{}", app.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?;
    let login = http
        .post(format!("{base}/api/login"))
        .json(&serde_json::json!({ "username": "bench", "password": PASSWORD }))
        .send()
        .await?;
    anyhow::ensure!(
        login.status().is_success(),
        "login failed: {}",
        login.status()
    );
    let urls: Arc<Vec<String>> = Arc::new(
        ids.iter()
            .map(|id| format!("{base}/api/incidents/{id}/recommendations"))
            .collect(),
    );
    // Warm up: open CONNECTIONS keep-alive connections (requests at once) and the server's
    // caches before timing. Without them a burst of due requests opens new connections, and
    // their TLS handshakes cost more than the requests themselves.
    for _ in 0..4 {
        let batch = urls.iter().take(CONNECTIONS).map(|url| {
            let http = http.clone();
            async move { get_ok(&http, url).await }
        });
        for r in futures_util::future::join_all(batch).await {
            r?;
        }
    }
    // At most CONNECTIONS requests in flight, so the warm connections suffice.
    let at_rate = {
        let (http, urls) = (http.clone(), urls.clone());
        crate::paced::open_loop(rate, duration, CONNECTIONS, move |n| {
            let (http, urls) = (http.clone(), urls.clone());
            async move {
                let url = &urls[usize::try_from(n).unwrap_or(0) % urls.len()];
                get_ok(&http, url).await
            }
        })
        .await?
    };
    let mut one_at_a_time = Samples::default();
    for url in urls.iter().cycle().take(sequential) {
        let started = Instant::now();
        get_ok(&http, url).await?;
        one_at_a_time.push(started.elapsed());
    }
    let _ = stop_tx.send(());
    server.await??;
    Ok(ApiRuns {
        at_rate,
        one_at_a_time,
    })
}

/// Fetches `url` and reads the whole answer, which must be a success.
async fn get_ok(http: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let res = http.get(url).send().await?;
    anyhow::ensure!(res.status().is_success(), "status {}", res.status());
    res.bytes().await?;
    Ok(())
}
