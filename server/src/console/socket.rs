//! One console's WebSocket after its upgrade: a snapshot, then the shared feed's deltas newer than
//! the snapshot. A socket that lags is closed (the console reconnects and gets a new snapshot); a
//! socket whose session ends (logout, ended by an admin, account disabled, expired) is closed
//! at once, and one whose session went idle within a heartbeat.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{ConsoleFeed, CLOSE_LAGGED, CLOSE_SESSION_ENDED};
use crate::config::PerRole;
use crate::domain::{now_ms, IncidentStatus};
use crate::store::{SessionOperator, Store};

/// A heartbeat frame goes out this often; the console shows "offline" when they stop.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Open incidents in a snapshot at most (newest first).
const SNAPSHOT_INCIDENTS: u32 = 1000;
/// Largest frame accepted from a console (it only ever sends small control frames).
pub const MAX_INBOUND: usize = 4096;

/// Serves one console's socket until it closes, the session ends or the server shuts down.
///
/// # Errors
/// When the socket fails or the store cannot be read.
pub async fn serve(
    socket: WebSocket,
    store: Store,
    console: ConsoleFeed,
    operator: SessionOperator,
    token_hash: String,
    idle: PerRole,
) -> anyhow::Result<()> {
    let (mut tx, mut rx) = socket.split();
    // Subscribe before reading the cursor: nothing committed after the snapshot is missed.
    let mut feed = console.subscribe();
    let mut stopped = console.stopped();
    let mut ended = console.ended_sessions();
    let (cursor, snapshot) = snapshot(&store, &operator).await?;
    tx.send(Message::Text(snapshot.to_string().into())).await?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let close = |code: u16, reason: &'static str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
    };
    loop {
        tokio::select! {
            delta = feed.recv() => match delta {
                Ok(delta) => {
                    if delta.event_id.is_some_and(|id| id <= cursor) {
                        continue;
                    }
                    tx.send(Message::Text(delta.text.clone().into())).await?;
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::info!(user = %operator.username, missed = n, "console too slow; dropped to resync");
                    let _ = tx.send(close(CLOSE_LAGGED, "fell behind; reconnect for a new snapshot")).await;
                    return Ok(());
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            id = ended.recv() => {
                let lagged = matches!(id, Err(RecvError::Lagged(_)));
                if id.ok() == Some(operator.session_id)
                    || (lagged && !session_live(&store, &token_hash, &idle).await?)
                {
                    let _ = tx.send(close(CLOSE_SESSION_ENDED, "session ended; log in again")).await;
                    return Ok(());
                }
            }
            _ = heartbeat.tick() => {
                if !session_live(&store, &token_hash, &idle).await? {
                    let _ = tx.send(close(CLOSE_SESSION_ENDED, "session ended; log in again")).await;
                    return Ok(());
                }
                let beat = json!({ "type": "heartbeat", "server_time_ms": now_ms() });
                tx.send(Message::Text(beat.to_string().into())).await?;
            }
            inbound = rx.next() => match inbound {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(_)) => {} // pings are answered by the library; nothing else is expected
            },
            _ = stopped.changed() => {
                let _ = tx.send(close(1001, "server is shutting down")).await;
                return Ok(());
            }
        }
    }
}

/// Whether the socket's session still exists, its account is enabled and it is not idle.
async fn session_live(store: &Store, token_hash: &str, idle: &PerRole) -> anyhow::Result<bool> {
    Ok(store
        .session_operator(token_hash)
        .await?
        .is_some_and(|o| !o.idle_at(now_ms(), idle)))
}

/// The console's starting state and the event id it reflects.
async fn snapshot(
    store: &Store,
    operator: &SessionOperator,
) -> crate::store::Result<(i64, serde_json::Value)> {
    let cursor = store.last_event_id().await?;
    let units = store.units().await?;
    let mut incidents = store
        .incidents(Some(IncidentStatus::Open), SNAPSHOT_INCIDENTS)
        .await?;
    incidents.extend(
        store
            .incidents(Some(IncidentStatus::Dispatched), SNAPSHOT_INCIDENTS)
            .await?,
    );
    let ids: Vec<i64> = incidents.iter().map(|i| i.id).collect();
    let orders = store.orders_of_incidents(&ids).await?;
    Ok((
        cursor,
        json!({
            "type": "snapshot",
            "cursor": cursor,
            "server_time_ms": now_ms(),
            "operator": { "username": operator.username, "role": operator.role },
            "units": units,
            "incidents": incidents,
            "orders": orders,
        }),
    ))
}
