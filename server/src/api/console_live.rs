//! The upgrade to the console's live channel: the operator's session is checked here (the page's
//! origin, as for every upgrade, by `api::guard`), then `console::socket` serves the socket.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{session_token, Authorized, OperatorRole};
use super::openapi::{self, SessionErrors};
use crate::app::AppState;
use crate::auth::sha256_hex;
use crate::console::socket::{serve, MAX_INBOUND};
use crate::console::LIVE_PATH;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router().routes(routes!(upgrade))
}

#[utoipa::path(
    get, path = LIVE_PATH, tag = "session",
    description = "The console's live feed: a WebSocket upgrade (see docs/architecture.md). Not \
        testable as HTTP.",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "Not a WebSocket upgrade."),
        SessionErrors,
    )
)]
async fn upgrade(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = session_token(&headers).ok_or(ApiError::Unauthenticated)?;
    let operator = auth.operator;
    let (store, feed) = (state.dispatch.store.clone(), state.dispatch.feed.clone());
    let idle = state.config.accounts.idle_timeout_secs;
    Ok(ws
        .max_message_size(MAX_INBOUND)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(socket, store, feed, operator, sha256_hex(&token), idle).await {
                tracing::debug!(error = %e, "console socket ended");
            }
        }))
}
