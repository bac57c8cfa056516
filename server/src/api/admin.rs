//! Admin views of enrolled devices, and revoking a device (its channel is
//! closed at once with the "revoked" code, and it can never connect again).

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
