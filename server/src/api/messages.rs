//! Texts between the control room and a unit, and marking a unit's texts read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use dispatch_protocol::MAX_TEXT_LEN;
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::idempotency::IdempotencyKey;
use super::paging::LimitQuery;
use crate::app::AppState;
use crate::domain::Invalid;
use crate::store::Text;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/units/{id}/messages", get(list).post(send))
        .route("/api/units/{id}/messages/read", post(read))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendText {
    text: String,
    #[serde(default)]
    incident_id: Option<i64>,
}

/// Commits a text to the unit's device outbox; answers after the commit.
#[tracing::instrument(skip_all, fields(unit = id), err(level = "warn"))]
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
#[derive(Debug, serde::Serialize)]
struct Read {
    read: usize,
}

/// An operator has read the unit's texts: the `unread_text` attention goes away with the next
/// review (within a sweep).
async fn read(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Read>, ApiError> {
    let read = state
        .dispatch
        .store
        .mark_texts_read(id, &auth.actor())
        .await?;
    Ok(Json(Read { read }))
}
