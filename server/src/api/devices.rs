//! Device enrolment (code → credential) and the upgrade to the device channel.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson};
use super::openapi::{self, ErrorBody, InputErrors, WriteErrors};
use crate::app::AppState;
use crate::auth::{normalise_enrolment_code, random_hex, sha256_hex};
use crate::channel::session::{CONNECTION_BUFFER, TRANSPORT_FRAME_LIMIT};
use crate::domain::optional_text;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(enroll))
        .routes(routes!(channel))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    code: String,
    #[serde(default)]
    device_name: Option<String>,
}

#[tracing::instrument(skip_all, err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/devices/enroll", tag = "devices", security(()),
    request_body = EnrollRequest,
    responses(
        (status = 201, body = DeviceEnrolled),
        (
            status = 403,
            body = ErrorBody,
            description = "`cross_origin`: an enrolment from another origin.",
        ),
        (
            status = 404,
            body = ErrorBody,
            description = "`unknown_enrolment_code`: the code is unknown, used or expired.",
        ),
        (
            status = 503,
            body = ErrorBody,
            description = "`storage_unavailable`: the storage failed; retry later.",
        ),
        InputErrors,
        WriteErrors,
    )
)]
async fn enroll(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EnrollRequest>,
) -> Result<(StatusCode, Json<DeviceEnrolled>), ApiError> {
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
        Json(DeviceEnrolled {
            device_id: enrolled.device_id,
            token,
            unit_id: enrolled.unit_id,
            call_sign: enrolled.call_sign,
            epoch: state.dispatch.store.device_epoch(&enrolled.epoch),
            channel_path: dispatch_protocol::DEVICE_CHANNEL_PATH,
            servers: state.config.server_urls.clone(),
        }),
    ))
}

/// An enrolled device: its token opens the device channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct DeviceEnrolled {
    device_id: i64,
    token: String,
    unit_id: i64,
    call_sign: String,
    epoch: String,
    channel_path: &'static str,
    /// Every address the service may be reached at (`server_urls` of the configuration).
    servers: Vec<String>,
}

#[utoipa::path(
    get, path = dispatch_protocol::DEVICE_CHANNEL_PATH, tag = "devices", security(()),
    description = "The device channel: a WebSocket upgrade; the device authenticates with its \
        token in the first frame (see docs/protocol.md). Not testable as HTTP.",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol."),
        (status = 400, description = "Not a WebSocket upgrade."),
        (
            status = 403,
            body = ErrorBody,
            description = "`cross_origin`: an upgrade from a page of another origin.",
        ),
    )
)]
async fn channel(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let ctx = state.session_context();
    let source = crate::store::source::current_source();
    ws.max_message_size(TRANSPORT_FRAME_LIMIT)
        .max_frame_size(TRANSPORT_FRAME_LIMIT)
        .read_buffer_size(CONNECTION_BUFFER)
        .write_buffer_size(CONNECTION_BUFFER)
        .on_upgrade(move |socket| crate::channel::session::serve(socket, ctx, source))
}
