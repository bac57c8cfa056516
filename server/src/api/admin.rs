//! Admin views of enrolled devices, and revoking a device (its channel is
//! closed at once with the "revoked" code, and it can never connect again).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::app::AppState;
use crate::auth::{Admin, Authorized};
use crate::error::{ApiError, ApiPath};
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
    Ok(Json(state.store.device_records().await?))
}

#[tracing::instrument(skip_all, fields(device = id), err(level = "warn"))]
async fn revoke_device(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<DeviceRecord>, ApiError> {
    let device = state.store.revoke_device(id, &auth.actor()).await?;
    state.hub.kick(
        id,
        dispatch_protocol::close::REVOKED,
        "revoked by an administrator",
    );
    state.refresh_unit(device.unit_id).await;
    Ok(Json(device))
}
