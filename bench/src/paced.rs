//! Open-loop pacing shared by the recommendation API and its Redis peer: requests are due at a
//! fixed rate whatever the server does, and each one's latency counts from when it was due, so a
//! slow answer cannot slow the schedule down and hide itself.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::stats::Samples;

/// Sends `request(n)` for the n-th due time at `rate` per second for `duration`, at most
/// `in_flight` at once (a request waiting for a slot still counts its wait).
///
/// The schedule runs on a plain thread that sleeps to each due time: tokio's timer ticks in whole
/// milliseconds, which would add up to 1 ms to every sample.
///
/// # Errors
/// The first request that failed.
pub async fn open_loop<F, Fut>(
    rate: u32,
    duration: Duration,
    in_flight: usize,
    request: F,
) -> anyhow::Result<Samples>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let request = Arc::new(request);
    let runtime = tokio::runtime::Handle::current();
    let tasks = {
        let samples = samples.clone();
        tokio::task::spawn_blocking(move || {
            let period = Duration::from_secs(1) / rate;
            let started = Instant::now();
            let mut tasks = Vec::new();
            for n in 0u32.. {
                let due = started + period * n;
                if due - started >= duration {
                    break;
                }
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let (samples, slots, request) = (samples.clone(), slots.clone(), request.clone());
                tasks.push(runtime.spawn(async move {
                    let _slot = slots.acquire().await?;
                    request(u64::from(n)).await?;
                    let took = due.elapsed();
                    samples
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(took);
                    anyhow::Ok(())
                }));
            }
            tasks
        })
        .await?
    };
    for t in tasks {
        t.await??;
    }
    let samples = samples
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(samples)
}
