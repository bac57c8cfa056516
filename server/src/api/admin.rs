//! Admin views of enrolled devices, and revoking a device (its channel is
//! closed at once with the "revoked" code, and it can never connect again); the scheduled
//! backups' configuration and last result.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiPath};
use super::extract::{Admin, Authorized};
use super::openapi::{self, Conflict, Malformed, NotFound, SessionErrors, WriteErrors};
use crate::app::AppState;
use crate::backup::schedule::LastBackup;
use crate::store::DeviceRecord;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list_devices))
        .routes(routes!(revoke_device))
        .routes(routes!(backups))
}

/// The scheduled backups: whether they are configured, where, how often, and the last result.
#[utoipa::path(
    get, path = "/api/admin/backups", tag = "admin",
    responses((status = 200, body = Backups), SessionErrors)
)]
async fn backups(_: Authorized<Admin>, State(state): State<AppState>) -> Json<Backups> {
    let schedule = state.config.backup.as_ref().map(|b| BackupSchedule {
        dir: b.dir.display().to_string(),
        every_secs: b.every_secs,
        keep: b.keep,
        max_rate_mib_s: b.max_rate_mib_s,
    });
    Json(Backups {
        schedule,
        last: state.backups.last(),
    })
}

/// The backup schedule (null when none is configured) and the last backup's result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Backups {
    schedule: Option<BackupSchedule>,
    last: Option<LastBackup>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct BackupSchedule {
    dir: String,
    every_secs: u64,
    keep: usize,
    /// The most MiB a second a backup copies and hashes; 0: no limit.
    max_rate_mib_s: u32,
}

#[utoipa::path(
    get, path = "/api/devices", tag = "admin",
    responses((status = 200, body = Vec<DeviceRecord>), SessionErrors)
)]
async fn list_devices(
    _: Authorized<Admin>,
    State(state): State<AppState>,
) -> Result<Json<Vec<DeviceRecord>>, ApiError> {
    Ok(Json(state.dispatch.store.device_records().await?))
}

#[tracing::instrument(skip_all, fields(device = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/devices/{id}/revoke", tag = "admin",
    params(("id" = i64, Path, description = "The device's id.")),
    responses(
        (status = 200, body = DeviceRecord),
        Malformed,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
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
