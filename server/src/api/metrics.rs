//! `GET /metrics`: this node's Prometheus metrics (`crate::metrics`), for a scraper that sends
//! the configured `metrics_token` as `Authorization: Bearer`. Without a configured token no
//! metrics are served.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::openapi;
use crate::app::AppState;
use crate::auth::{constant_time_eq, sha256_hex};
use crate::metrics::Now;

/// The exposition format's media type.
const EXPOSITION: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router().routes(routes!(metrics))
}

/// This node's metrics in the OpenMetrics text format (docs/operations.md, *Metrics*). Needs
/// `Authorization: Bearer <metrics_token>`; the session cookie does not count.
#[utoipa::path(
    get, path = "/metrics", tag = "health", security(()),
    responses(
        (
            status = 200,
            description = "The metrics.",
            body = String,
            content_type = "application/openmetrics-text",
        ),
        (
            status = 403,
            body = openapi::ErrorBody,
            description = "`forbidden`: no `metrics_token` is configured, or the request does not \
                carry it as `Authorization: Bearer`.",
        ),
    )
)]
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(token) = &state.config.metrics_token else {
        return Err(ApiError::Forbidden(
            "metrics are off: set metrics_token in the configuration".into(),
        ));
    };
    let sent = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared as hashes: equal lengths, so the time says nothing of the token's length either.
    if !sent.is_some_and(|sent| constant_time_eq(&sha256_hex(sent), &sha256_hex(token))) {
        return Err(ApiError::Forbidden(
            "GET /metrics needs the configured metrics_token as Authorization: Bearer".into(),
        ));
    }
    let dispatch = &state.dispatch;
    let now = Now {
        orders: dispatch.store.orders_by_state().await?,
        devices_connected: dispatch.devices.connected(),
        consoles_connected: dispatch.feed.connected(),
    };
    Ok(([(CONTENT_TYPE, EXPOSITION)], dispatch.metrics.render(&now)).into_response())
}
