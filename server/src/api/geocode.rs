//! Geocoding for the console: address search as the operator types, and the address at a
//! clicked point. Answered from the configured map extract, never from an outside service.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::openapi::{self, Conflict, InputErrors, NotFound, SessionErrors};
use crate::app::AppState;
use crate::domain::{coordinates, Invalid};
use dispatch_geo::geocode::{GeocodeHit, Geocoder, ReverseHit};

/// Longest query accepted, in characters; no address is longer.
const MAX_QUERY_CHARS: usize = 200;
const MAX_LIMIT: i64 = 50;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(search))
        .routes(routes!(reverse))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    /// An address, a street or a place's name: 1 to 200 characters besides spaces.
    #[serde(default)]
    #[param(pattern = "\\S", max_length = 200)]
    q: String,
    /// Default 10.
    #[serde(default)]
    #[param(minimum = 1, maximum = 50)]
    limit: Option<i64>,
}

#[tracing::instrument(skip_all, fields(chars = q.q.chars().count()), err(level = "warn"))]
#[utoipa::path(
    get, path = "/api/geocode", tag = "map",
    params(SearchQuery),
    responses((status = 200, body = Vec<GeocodeHit>), InputErrors, Conflict, SessionErrors)
)]
async fn search(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<Vec<GeocodeHit>>, ApiError> {
    let text = q.q.trim();
    if text.is_empty() {
        return Err(Invalid::field("q", "must not be empty").into());
    }
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(Invalid::field(
            "q",
            format_args!("is longer than {MAX_QUERY_CHARS} characters"),
        )
        .into());
    }
    let limit = q.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Invalid::field("limit", format_args!("must be 1 to {MAX_LIMIT}")).into());
    }
    let geocoder = geocoder(&state)?;
    Ok(Json(geocoder.search(text, limit as usize)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReverseQuery {
    #[param(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[param(minimum = -180.0, maximum = 180.0)]
    lon: f64,
}

#[tracing::instrument(skip_all, err(level = "warn"))]
#[utoipa::path(
    get, path = "/api/geocode/reverse", tag = "map",
    params(ReverseQuery),
    responses((status = 200, body = ReverseHit), InputErrors, NotFound, Conflict, SessionErrors)
)]
async fn reverse(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReverseQuery>,
) -> Result<Json<ReverseHit>, ApiError> {
    let (lat, lon) = coordinates(q.lat, q.lon)?;
    geocoder(&state)?
        .reverse(lat, lon)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("address or street within 300 m".into()))
}

/// The geocoder, or a 409 saying the server has no map to answer from.
fn geocoder(state: &AppState) -> Result<&Arc<Geocoder>, ApiError> {
    state.geocoder.as_ref().ok_or_else(|| ApiError::Conflict {
        code: "no_map",
        message: "no map is configured on this server; geocoding is unavailable".into(),
    })
}
