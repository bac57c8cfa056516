//! Liveness and readiness probes, open without login.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi;
use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is up and serving HTTP, whatever the state of its storage.
#[utoipa::path(
    get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health, description = "The process answers."))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
}

/// Ready when the database answers reads and a write reaches the disk now (a small durable
/// write, unless one committed within the last second): a full, failing or read-only disk makes
/// the node unready, and it becomes ready again by itself once writes succeed.
#[utoipa::path(
    get, path = "/readyz", tag = "health", security(()),
    responses(
        (status = 200, body = Ready, description = "The database answers and takes writes."),
        (
            status = 503,
            body = NotReady,
            description = "The database does not answer, or refuses writes.",
        ),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let store = &state.dispatch.store;
    if !store.ping().await {
        let answer = NotReady {
            status: "database unavailable",
            storage_full: None,
            error: None,
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response();
    }
    if let Err(e) = store.probe_write().await {
        let answer = NotReady {
            status: "storage refuses writes",
            storage_full: Some(matches!(e, crate::store::Error::StorageFull)),
            error: Some(e.to_string()),
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(answer)).into_response();
    }
    let last_backup = state.backups.last();
    Json(Ready {
        status: "ready",
        connected_devices: state.dispatch.devices.connected(),
        synchronous_standbys: store.synchronous_standbys().await.ok().flatten(),
        last_backup: last_backup.map(|b| BackupOutcome {
            at_ms: b.at_ms,
            ok: b.ok,
        }),
    })
    .into_response()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Ready {
    status: &'static str,
    /// Tablets connected on the device channel now.
    connected_devices: usize,
    /// On PostgreSQL, the standbys every COMMIT waits for now: 0 means a confirmed write is on
    /// the primary alone. Absent on SQLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    synchronous_standbys: Option<i64>,
    /// The last scheduled backup, if one ran.
    last_backup: Option<BackupOutcome>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct BackupOutcome {
    at_ms: i64,
    ok: bool,
}

/// Why the server is not ready.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct NotReady {
    status: &'static str,
    /// When the storage refuses writes: whether because the disk is full.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_full: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}
