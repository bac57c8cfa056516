//! Premise information over HTTP: operators read it (all entries in force, or those at a
//! location for intake); admins add entries, import CSV or GeoJSON files and remove entries.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Admin, Authorized, OperatorRole};
use super::openapi::{self, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors};
use crate::app::AppState;
use crate::domain::{coordinates, Invalid};
use crate::geo::premise::{NewPremise, Premise, PremiseSeverity, PremiseShape};
use crate::geo::premise_import::{from_csv, from_geojson};

/// Largest import file, in bytes.
pub const MAX_IMPORT_BYTES: usize = 8 * 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list, add))
        .routes(routes!(at))
        .routes(routes!(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)))
        .routes(routes!(remove))
}

#[utoipa::path(
    get, path = "/api/premises", tag = "premises",
    responses((status = 200, body = Vec<Premise>), SessionErrors)
)]
async fn list(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Premise>>, ApiError> {
    Ok(Json(state.dispatch.store.premises().await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AtQuery {
    #[param(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[param(minimum = -180.0, maximum = 180.0)]
    lon: f64,
}

#[utoipa::path(
    get, path = "/api/premises/at", tag = "premises",
    params(AtQuery),
    responses(
        (status = 200, body = Vec<Premise>, description = "Entries at the place."),
        InputErrors,
        SessionErrors,
    )
)]
async fn at(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> Result<Json<Vec<Premise>>, ApiError> {
    let (lat, lon) = coordinates(q.lat, q.lon)?;
    Ok(Json(state.dispatch.store.premises_at(lat, lon).await?))
}

/// One entry: a point (`lat`, `lon`, optional `radius_m`) or a `polygon` of `[lat, lon]`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddPremise {
    label: String,
    text: String,
    #[schema(value_type = PremiseSeverity)]
    severity: String,
    /// A point (with `lon` and an optional `radius_m`), or else `polygon`.
    #[serde(default)]
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: Option<f64>,
    #[serde(default)]
    #[schema(minimum = -180.0, maximum = 180.0)]
    lon: Option<f64>,
    #[serde(default)]
    radius_m: Option<f64>,
    #[serde(default)]
    polygon: Option<Vec<[f64; 2]>>,
    #[serde(default)]
    expires_at_ms: Option<i64>,
}

#[tracing::instrument(skip_all, err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/premises", tag = "premises",
    request_body = AddPremise,
    responses((status = 201, body = PremiseAdded), InputErrors, WriteErrors, SessionErrors)
)]
async fn add(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddPremise>,
) -> Result<(StatusCode, Json<PremiseAdded>), ApiError> {
    let shape = match (body.polygon, body.lat, body.lon) {
        (Some(ring), None, None) => {
            PremiseShape::polygon(ring.into_iter().map(|[lat, lon]| (lat, lon)).collect())?
        }
        (None, Some(lat), Some(lon)) => PremiseShape::point(lat, lon, body.radius_m)?,
        _ => {
            return Err(Invalid(
                "an entry needs either `lat` and `lon` (a point) or `polygon`".into(),
            )
            .into())
        }
    };
    let entry = NewPremise::parse(
        &body.label,
        &body.text,
        &body.severity,
        shape,
        body.expires_at_ms,
    )?;
    let ids = state
        .dispatch
        .store
        .add_premises(vec![entry], &auth.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(PremiseAdded { id: ids[0] })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PremiseAdded {
    id: i64,
}

/// A CSV (`text/csv`) or GeoJSON (`application/geo+json` or `application/json`) file, taken
/// whole or not at all.
#[tracing::instrument(skip_all, err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/premises/import", tag = "premises",
    request_body(
        description = "A CSV file or a GeoJSON FeatureCollection (up to 8 MiB).",
        content(
            (String = "text/csv"),
            (Object = "application/geo+json"),
            (Object = "application/json"),
        ),
    ),
    responses((status = 201, body = PremisesImported), InputErrors, WriteErrors, SessionErrors)
)]
async fn import(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PremisesImported>), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(MAX_IMPORT_BYTES)
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    let body = std::str::from_utf8(&body)
        .map_err(|e| ApiError::BadRequest(format!("the file is not UTF-8: {e}")))?;
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let entries = match kind {
        "text/csv" => from_csv(body)?,
        "application/geo+json" | "application/json" => from_geojson(body)?,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Content-Type must be text/csv or application/geo+json (got {other:?})"
            )))
        }
    };
    if entries.is_empty() {
        return Err(Invalid("the file holds no entries".into()).into());
    }
    let ids = state
        .dispatch
        .store
        .add_premises(entries, &auth.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(PremisesImported {
            added: ids.len(),
            ids,
        }),
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PremisesImported {
    added: usize,
    ids: Vec<i64>,
}

#[tracing::instrument(skip_all, fields(premise = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/premises/{id}/remove", tag = "premises",
    params(("id" = i64, Path, description = "The entry's id.")),
    responses(
        (status = 200, body = PremiseRemoved),
        Malformed,
        WriteErrors,
        NotFound,
        SessionErrors,
    )
)]
async fn remove(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PremiseRemoved>, ApiError> {
    state
        .dispatch
        .store
        .remove_premise(id, &auth.actor())
        .await?;
    Ok(Json(PremiseRemoved { removed: id }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PremiseRemoved {
    /// The entry's id.
    removed: i64,
}
