//! Liveness and readiness probes, open without login.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up and serving HTTP, whatever the state of its storage.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers reads and a write reaches the disk now (a small durable
/// write, unless one committed within the last second): a full, failing or read-only disk makes
/// the node unready, and it becomes ready again by itself once writes succeed.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store = &state.dispatch.store;
    if !store.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "database unavailable" })),
        );
    }
    if let Err(e) = store.probe_write().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "storage refuses writes",
                "storage_full": matches!(e, crate::store::Error::StorageFull),
                "error": e.to_string(),
            })),
        );
    }
    let devices = state.dispatch.devices.connected();
    // The last scheduled backup's time and result (where it went and why it failed are for
    // admins: `GET /api/admin/backups`).
    let backup = state
        .backups
        .last()
        .map(|b| serde_json::json!({ "at_ms": b.at_ms, "ok": b.ok }));
    (
        StatusCode::OK,
        Json(serde_json::json!({
            "status": "ready",
            "connected_devices": devices,
            "last_backup": backup,
        })),
    )
}
