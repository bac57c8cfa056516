//! Orders after dispatch: cancelling one; the console's alerts that an operator must
//! acknowledge, and the open reasons for attention.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::paging::LimitQuery;
use crate::app::AppState;
use crate::domain::{Invalid, Order};
use crate::store::{Alert, Attention, Withdrawal};

/// Longest cancel reason.
const MAX_REASON_LEN: usize = 500;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orders/{id}/cancel", post(cancel))
        .route("/api/alerts", get(alerts))
        .route("/api/attention", get(attention))
        .route(
            "/api/alerts/{event_id}/acknowledge",
            post(acknowledge_alert),
        )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancel {
    reason: String,
}

/// Withdraws an order; the device is told with a `cancel` message and the unit is released.
#[tracing::instrument(skip_all, fields(order = id), err(level = "warn"))]
async fn cancel(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Cancel>,
) -> Result<Json<Order>, ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(Invalid::field(
            "reason",
            format_args!("must be 1 to {MAX_REASON_LEN} characters"),
        )
        .into());
    }
    let order = state
        .dispatch
        .store
        .withdraw_order(id, Withdrawal::Cancel, reason, &auth.actor())
        .await?;
    Ok(Json(order))
}

/// Alerts no operator has acknowledged yet, oldest first.
async fn alerts(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    Ok(Json(
        state
            .dispatch
            .store
            .open_alerts(q.limit(100, 1000)?)
            .await?,
    ))
}

/// Every incident that needs an operator now, and why: severe first, then oldest.
async fn attention(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Attention>>, ApiError> {
    Ok(Json(state.dispatch.store.open_attention().await?))
}

/// An operator takes charge of an alert; recorded with who and when.
async fn acknowledge_alert(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(event_id): ApiPath<i64>,
) -> Result<Json<Alert>, ApiError> {
    Ok(Json(
        state
            .dispatch
            .store
            .acknowledge_alert(event_id, &auth.actor())
            .await?,
    ))
}
