//! The upgrade to the console's live channel: the operator's session and the page's origin are
//! checked here, then `console::socket` serves the socket.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use super::extract::{session_token, Authorized, OperatorRole};
use crate::app::AppState;
use crate::auth::sha256_hex;
use crate::console::socket::{serve, MAX_INBOUND};
use crate::console::LIVE_PATH;

pub fn router() -> Router<AppState> {
    Router::new().route(LIVE_PATH, get(upgrade))
}

async fn upgrade(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_origin(&headers)?;
    let token = session_token(&headers).ok_or(ApiError::Unauthenticated)?;
    let operator = auth.operator;
    let (store, feed) = (state.dispatch.store.clone(), state.dispatch.feed.clone());
    Ok(ws
        .max_message_size(MAX_INBOUND)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(socket, store, feed, operator, sha256_hex(&token)).await {
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
