//! Premise information over HTTP: operators read it (all entries in force, or those at a
//! location for intake); admins add entries, import CSV or GeoJSON files and remove entries.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Admin, Authorized, OperatorRole};
use crate::app::AppState;
use crate::domain::{coordinates, Invalid};
use crate::geo::premise::{NewPremise, Premise, PremiseShape};
use crate::geo::premise_import::{from_csv, from_geojson};

/// Largest import file, in bytes.
pub const MAX_IMPORT_BYTES: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/premises", get(list).post(add))
        .route("/api/premises/at", get(at))
        .route(
            "/api/premises/import",
            post(import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/api/premises/{id}/remove", post(remove))
}

async fn list(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Premise>>, ApiError> {
    Ok(Json(state.dispatch.store.premises().await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AtQuery {
    lat: f64,
    lon: f64,
}

async fn at(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> Result<Json<Vec<Premise>>, ApiError> {
    let (lat, lon) = coordinates(q.lat, q.lon)?;
    Ok(Json(state.dispatch.store.premises_at(lat, lon).await?))
}

/// One entry: a point (`lat`, `lon`, optional `radius_m`) or a `polygon` of `[lat, lon]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPremise {
    label: String,
    text: String,
    severity: String,
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
    #[serde(default)]
    radius_m: Option<f64>,
    #[serde(default)]
    polygon: Option<Vec<[f64; 2]>>,
    #[serde(default)]
    expires_at_ms: Option<i64>,
}

#[tracing::instrument(skip_all, err(level = "warn"))]
async fn add(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AddPremise>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
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
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": ids[0] })),
    ))
}

/// A CSV (`text/csv`) or GeoJSON (`application/geo+json` or `application/json`) file, taken
/// whole or not at all.
#[tracing::instrument(skip_all, err(level = "warn"))]
async fn import(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
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
        Json(serde_json::json!({ "added": ids.len(), "ids": ids })),
    ))
}

#[tracing::instrument(skip_all, fields(premise = id), err(level = "warn"))]
async fn remove(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .dispatch
        .store
        .remove_premise(id, &auth.actor())
        .await?;
    Ok(Json(serde_json::json!({ "removed": id })))
}
