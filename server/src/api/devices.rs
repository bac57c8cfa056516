//! Device enrolment (code → credential) and the upgrade to the device channel.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use crate::app::AppState;
use crate::auth::{normalise_enrolment_code, random_hex, sha256_hex};
use crate::channel::session::{CONNECTION_BUFFER, TRANSPORT_FRAME_LIMIT};
use crate::domain::optional_text;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/devices/enroll", post(enroll))
        .route(dispatch_protocol::DEVICE_CHANNEL_PATH, get(channel))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    code: String,
    #[serde(default)]
    device_name: Option<String>,
}

#[tracing::instrument(skip_all, err(level = "warn"))]
async fn enroll(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let name = optional_text("device_name", body.device_name, 100)?;
    let code = normalise_enrolment_code(&body.code);
    let token = random_hex(32);
    let enrolled = state
        .dispatch
        .store
        .enroll_device(
            &sha256_hex(&code),
            &sha256_hex(&token),
            &random_hex(8),
            name.as_deref(),
        )
        .await
        .map_err(|e| match e {
            crate::store::Error::NotFound(_) => ApiError::UnknownEnrolmentCode,
            other => other.into(),
        })?;
    tracing::info!(device = enrolled.device_id, unit = %enrolled.call_sign, "device enrolled");
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "device_id": enrolled.device_id,
            "token": token,
            "unit_id": enrolled.unit_id,
            "call_sign": enrolled.call_sign,
            "epoch": state.dispatch.store.device_epoch(&enrolled.epoch),
            "channel_path": dispatch_protocol::DEVICE_CHANNEL_PATH,
        })),
    ))
}

async fn channel(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let ctx = state.session_context();
    let source = crate::store::source::current_source();
    ws.max_message_size(TRANSPORT_FRAME_LIMIT)
        .max_frame_size(TRANSPORT_FRAME_LIMIT)
        .read_buffer_size(CONNECTION_BUFFER)
        .write_buffer_size(CONNECTION_BUFFER)
        .on_upgrade(move |socket| crate::channel::session::serve(socket, ctx, source))
}
