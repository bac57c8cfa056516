//! What intake and the incident panel add to incidents after creation: narrative lines, further
//! callers, and the check for earlier incidents a new call may duplicate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dispatch_protocol::IncidentEntry;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::idempotency::IdempotencyKey;
use super::openapi::{
    self, Conflict, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use crate::app::AppState;
use crate::domain::{callback_number, coordinates, now_ms, optional_text, Invalid};
use crate::store::{NewEntry, PossibleDuplicate};

/// Longest narrative line.
const MAX_NARRATIVE: usize = 2000;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(duplicates))
        .routes(routes!(entries))
        .routes(routes!(add_narrative))
        .routes(routes!(add_caller))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DuplicatesQuery {
    #[param(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[param(minimum = -180.0, maximum = 180.0)]
    lon: f64,
    #[serde(default)]
    address: Option<String>,
}

/// Open incidents, and those created or closed within `[intake] duplicate_window_secs`,
/// within `duplicate_radius_m` of the new call or at the same address.
#[utoipa::path(
    get, path = "/api/incidents/duplicates", tag = "incidents",
    params(DuplicatesQuery),
    responses(
        (
            status = 200,
            body = Vec<PossibleDuplicate>,
            description = "Open incidents near the place (or at the address) reported recently.",
        ),
        InputErrors,
        SessionErrors,
    )
)]
async fn duplicates(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DuplicatesQuery>,
) -> Result<Json<Vec<PossibleDuplicate>>, ApiError> {
    let at = coordinates(q.lat, q.lon)?;
    let address = optional_text("address", q.address, 200)?;
    let intake = &state.config.intake;
    let window_ms = i64::try_from(intake.duplicate_window_secs * 1000).unwrap_or(i64::MAX);
    Ok(Json(
        state
            .dispatch
            .store
            .possible_duplicates(
                at,
                address.as_deref(),
                now_ms().saturating_sub(window_ms),
                intake.duplicate_radius_m,
            )
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/api/incidents/{id}/entries", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id.")),
    responses((status = 200, body = Vec<IncidentEntry>), Malformed, NotFound, SessionErrors)
)]
async fn entries(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<IncidentEntry>>, ApiError> {
    Ok(Json(state.dispatch.store.incident_entries(id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddNarrative {
    text: String,
}

#[tracing::instrument(skip_all, fields(incident = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/incidents/{id}/narrative", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id."), IdempotencyKey),
    request_body = AddNarrative,
    responses(
        (status = 201, body = IncidentEntry),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn add_narrative(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AddNarrative>,
) -> Result<(StatusCode, Json<IncidentEntry>), ApiError> {
    let text = optional_text("text", Some(body.text), MAX_NARRATIVE)?
        .ok_or_else(|| Invalid::field("text", "must not be empty"))?;
    add(&state, id, NewEntry::Narrative { text }, &auth, &key).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddCaller {
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    callback: Option<String>,
    /// What this caller reports.
    #[serde(default)]
    text: Option<String>,
}

#[tracing::instrument(skip_all, fields(incident = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/incidents/{id}/callers", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id."), IdempotencyKey),
    request_body = AddCaller,
    responses(
        (status = 201, body = IncidentEntry),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn add_caller(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AddCaller>,
) -> Result<(StatusCode, Json<IncidentEntry>), ApiError> {
    let entry = NewEntry::Caller {
        caller: optional_text("caller", body.caller, 200)?,
        callback: callback_number(body.callback)?,
        text: optional_text("text", body.text, MAX_NARRATIVE)?,
    };
    if entry
        == (NewEntry::Caller {
            caller: None,
            callback: None,
            text: None,
        })
    {
        return Err(
            Invalid("a caller needs at least one of `caller`, `callback`, `text`".into()).into(),
        );
    }
    add(&state, id, entry, &auth, &key).await
}

async fn add(
    state: &AppState,
    id: i64,
    entry: NewEntry,
    auth: &Authorized<OperatorRole>,
    key: &IdempotencyKey,
) -> Result<(StatusCode, Json<IncidentEntry>), ApiError> {
    let entry = state
        .dispatch
        .store
        .add_incident_entry(id, entry, &auth.actor(), key.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(entry)))
}
