//! The session sweep: ends sessions that have been idle for their role's limit or reached their
//! lifetime, records each (`session_expired`), and closes their console sockets. Requests with
//! such a session are refused before the sweep gets to it; the sweep makes it a record.

use std::time::Duration;

use tokio::sync::watch;

use crate::config::PerRole;
use crate::console::ConsoleFeed;
use crate::domain::now_ms;
use crate::store::Store;

/// The sweep runs this often at most (and four times per shortest idle limit at least).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Sweeps until `stop` turns true.
pub async fn run(store: Store, feed: ConsoleFeed, idle: PerRole, mut stop: watch::Receiver<bool>) {
    let shortest = idle.operator.min(idle.supervisor).min(idle.admin);
    let every = SWEEP_EVERY.min(Duration::from_millis(shortest.saturating_mul(250).max(100)));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => match store.end_expired_sessions(now_ms(), idle).await {
                Ok(ended) => feed.sessions_ended(&ended),
                Err(e) => tracing::warn!(error = %e, "session sweep failed; retrying"),
            },
            _ = stop.changed() => return,
        }
    }
}
