//! One console's WebSocket: check the session and origin, send a snapshot, then forward the
//! shared feed's deltas newer than the snapshot. A socket that lags is closed (the console
//! reconnects and gets a new snapshot); a logged-out session is closed within a heartbeat.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::{CLOSE_LAGGED, CLOSE_SESSION_ENDED};
use crate::app::AppState;
use crate::auth::extract::session_token;
use crate::auth::{sha256_hex, Authorized, OperatorRole};
use crate::domain::{now_ms, IncidentStatus};
use crate::error::ApiError;
use crate::store::SessionOperator;

/// A heartbeat frame goes out this often; the console shows "offline" when they stop.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Open incidents in a snapshot at most (newest first).
const SNAPSHOT_INCIDENTS: u32 = 1000;
/// Largest frame accepted from a console (it only ever sends small control frames).
const MAX_INBOUND: usize = 4096;

pub async fn upgrade(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_origin(&headers)?;
    let token = session_token(&headers).ok_or(ApiError::Unauthenticated)?;
    let operator = auth.operator;
    Ok(ws
        .max_message_size(MAX_INBOUND)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(socket, state, operator, sha256_hex(&token)).await {
                tracing::debug!(error = %e, "console socket ended");
            }
        }))
}

/// Refuses a cross-site WebSocket: a browser always sends `Origin`, and it must name this host.
fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(()); // not a browser (tests, tools): the session cookie is the check
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = origin.to_str().unwrap_or_default();
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    if origin_host.is_empty() || origin_host != host {
        return Err(ApiError::Forbidden(format!(
            "the live channel accepts only this server's own pages (origin {origin:?})"
        )));
    }
    Ok(())
}

async fn serve(
    socket: WebSocket,
    state: AppState,
    operator: SessionOperator,
    token_hash: String,
) -> anyhow::Result<()> {
    let (mut tx, mut rx) = socket.split();
    // Subscribe before reading the cursor: nothing committed after the snapshot is missed.
    let mut feed = state.console.subscribe();
    let mut stopped = state.console.stopped();
    let (cursor, snapshot) = snapshot(&state, &operator).await?;
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
            _ = heartbeat.tick() => {
                if state.store.session_operator(&token_hash).await?.is_none() {
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

/// The console's starting state and the event id it reflects.
async fn snapshot(
    state: &AppState,
    operator: &SessionOperator,
) -> crate::store::Result<(i64, serde_json::Value)> {
    let cursor = state.store.last_event_id().await?;
    let units = state.store.units().await?;
    let mut incidents = state
        .store
        .incidents(Some(IncidentStatus::Open), SNAPSHOT_INCIDENTS)
        .await?;
    incidents.extend(
        state
            .store
            .incidents(Some(IncidentStatus::Dispatched), SNAPSHOT_INCIDENTS)
            .await?,
    );
    let mut orders = Vec::new();
    for incident in &incidents {
        orders.extend(state.store.incident_orders(incident.id).await?);
    }
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
