//! The audit log: every recorded event, and the head of its hash chain for an outside
//! witness, for supervisors (and admins).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiQuery};
use super::extract::{Authorized, Supervisor};
use super::openapi::{self, InputErrors, SessionErrors};
use crate::app::AppState;
use crate::domain::{Invalid, TimelineEvent};
use crate::store::ChainHead;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(audit_log))
        .routes(routes!(audit_head))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Return events with an id above this (0 for the start); page with the last id seen.
    #[serde(default)]
    after: i64,
    /// Default 500.
    #[serde(default)]
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (
            status = 200,
            body = Vec<TimelineEvent>,
            description = "Every event after `after`, oldest first.",
        ),
        InputErrors,
        SessionErrors,
    )
)]
async fn audit_log(
    _: Authorized<Supervisor>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<TimelineEvent>>, ApiError> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=5000).contains(&limit) {
        return Err(Invalid::field("limit", "must be 1 to 5000").into());
    }
    Ok(Json(state.dispatch.store.audit_log(q.after, limit).await?))
}

/// The newest event's id and hash: a witness who keeps these can later show that no event up
/// to it was changed or cut off (`dispatchd audit verify --witness`).
#[utoipa::path(
    get, path = "/api/audit/head", tag = "audit",
    responses((status = 200, body = ChainHead), SessionErrors)
)]
async fn audit_head(
    _: Authorized<Supervisor>,
    State(state): State<AppState>,
) -> Result<Json<ChainHead>, ApiError> {
    Ok(Json(state.dispatch.store.audit_head().await?))
}
