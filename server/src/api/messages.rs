//! Texts between the control room and a unit, and marking a unit's texts read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dispatch_protocol::MAX_TEXT_LEN;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::idempotency::IdempotencyKey;
use super::openapi::{
    self, Conflict, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use super::paging::LimitQuery;
use crate::app::AppState;
use crate::domain::Invalid;
use crate::store::Text;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list, send))
        .routes(routes!(read))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SendText {
    text: String,
    #[serde(default)]
    incident_id: Option<i64>,
}

/// Commits a text to the unit's device outbox; answers after the commit.
#[tracing::instrument(skip_all, fields(unit = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/units/{id}/messages", tag = "messages",
    params(("id" = i64, Path, description = "The unit's id."), IdempotencyKey),
    request_body = SendText,
    responses(
        (status = 201, body = Text),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn send(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SendText>,
) -> Result<(StatusCode, Json<Text>), ApiError> {
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_LEN {
        return Err(Invalid::field(
            "text",
            format_args!("must be 1 to {MAX_TEXT_LEN} characters"),
        )
        .into());
    }
    let text = state
        .dispatch
        .store
        .send_text(id, text, body.incident_id, &auth.actor(), key.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(text)))
}

/// The unit's texts in both directions, oldest first.
#[utoipa::path(
    get, path = "/api/units/{id}/messages", tag = "messages",
    params(("id" = i64, Path, description = "The unit's id."), LimitQuery),
    responses((status = 200, body = Vec<Text>), InputErrors, NotFound, SessionErrors)
)]
async fn list(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Vec<Text>>, ApiError> {
    let limit = q.limit(200, 1000)?;
    state.dispatch.store.unit(id).await?;
    Ok(Json(state.dispatch.store.unit_texts(id, limit).await?))
}

/// How many of the unit's texts were unread.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct TextsRead {
    read: usize,
}

/// An operator has read the unit's texts: the `unread_text` attention goes away with the next
/// review (within a sweep).
#[utoipa::path(
    post, path = "/api/units/{id}/messages/read", tag = "messages",
    params(("id" = i64, Path, description = "The unit's id.")),
    responses(
        (
            status = 200,
            body = TextsRead,
            description = "The unit's texts to the console are marked read.",
        ),
        Malformed,
        WriteErrors,
        NotFound,
        SessionErrors,
    )
)]
async fn read(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<TextsRead>, ApiError> {
    let read = state
        .dispatch
        .store
        .mark_texts_read(id, &auth.actor())
        .await?;
    Ok(Json(TextsRead { read }))
}
