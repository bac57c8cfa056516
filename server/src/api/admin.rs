//! Admin views of enrolled devices, and revoking a device (its channel is
//! closed at once with the "revoked" code, and it can never connect again); the scheduled
//! backups' configuration and last result.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::{ApiError, ApiPath};
use super::extract::{Admin, Authorized};
use crate::app::AppState;
use crate::store::DeviceRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/devices", get(list_devices))
        .route("/api/devices/{id}/revoke", post(revoke_device))
        .route("/api/admin/backups", get(backups))
}

/// The scheduled backups: whether they are configured, where, how often, and the last result.
async fn backups(_: Authorized<Admin>, State(state): State<AppState>) -> Json<serde_json::Value> {
    let schedule =
        state.config.backup.as_ref().map(
            |b| serde_json::json!({ "dir": b.dir, "every_secs": b.every_secs, "keep": b.keep }),
        );
    Json(serde_json::json!({ "schedule": schedule, "last": state.backups.last() }))
}

async fn list_devices(
    _: Authorized<Admin>,
    State(state): State<AppState>,
) -> Result<Json<Vec<DeviceRecord>>, ApiError> {
    Ok(Json(state.dispatch.store.device_records().await?))
}

#[tracing::instrument(skip_all, fields(device = id), err(level = "warn"))]
async fn revoke_device(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeviceRecord>, ApiError> {
    Ok(Json(
        state
            .dispatch
            .store
            .revoke_device(id, &auth.actor())
            .await?,
    ))
}
