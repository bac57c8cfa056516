//! Orders after dispatch: cancelling one; the console's alerts that an operator must
//! acknowledge, and the open reasons for attention.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::openapi::{
    self, Conflict, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use super::paging::LimitQuery;
use crate::app::AppState;
use crate::domain::{Invalid, Order};
use crate::store::{Alert, Attention, Withdrawal};

/// Longest cancel reason.
const MAX_REASON_LEN: usize = 500;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(cancel))
        .routes(routes!(alerts))
        .routes(routes!(attention))
        .routes(routes!(acknowledge_alert))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Cancel {
    reason: String,
}

/// Withdraws an order; the device is told with a `cancel` message and the unit is released.
#[tracing::instrument(skip_all, fields(order = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/orders/{id}/cancel", tag = "orders",
    params(("id" = i64, Path, description = "The order's id.")),
    request_body = Cancel,
    responses(
        (status = 200, body = Order),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
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
#[utoipa::path(
    get, path = "/api/alerts", tag = "orders",
    params(LimitQuery),
    responses(
        (status = 200, body = Vec<Alert>, description = "Escalations not yet acknowledged."),
        InputErrors,
        SessionErrors,
    )
)]
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
#[utoipa::path(
    get, path = "/api/attention", tag = "orders",
    responses(
        (
            status = 200,
            body = Vec<Attention>,
            description = "What needs an operator's attention now.",
        ),
        SessionErrors,
    )
)]
async fn attention(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Attention>>, ApiError> {
    Ok(Json(state.dispatch.store.open_attention().await?))
}

/// An operator takes charge of an alert; recorded with who and when.
#[utoipa::path(
    post, path = "/api/alerts/{event_id}/acknowledge", tag = "orders",
    params(("event_id" = i64, Path, description = "The alert's timeline event.")),
    responses((status = 200, body = Alert), Malformed, WriteErrors, NotFound, SessionErrors)
)]
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
