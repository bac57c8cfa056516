//! Broadcasts (BOLOs and other alerts, CAP 1.2 shaped) to all units, a station, a list of units
//! or every unit inside a polygon, with per-recipient delivery tracking.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use dispatch_protocol::{BroadcastArea, Certainty, Severity, Urgency, MAX_TEXT_LEN};
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
use crate::domain::{now_ms, Invalid};
use crate::store::{Broadcast, NewBroadcast};
use dispatch_geo::fence::Fence;

/// Longest headline (CAP suggests under 160 characters for SMS-like display).
const MAX_HEADLINE_LEN: usize = 160;

/// Longest time a broadcast may stay current.
const MAX_EXPIRES_SECS: u64 = 7 * 24 * 3600;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list, create))
        .routes(routes!(get_one))
}

/// Who receives a broadcast: exactly one of the fields.
#[derive(Debug, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    station: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit_ids: Option<Vec<i64>>,
    /// `[[lat, lon], ...]`: every unit whose live position is inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<[f64; 2]>>)]
    polygon: Option<Vec<(f64, f64)>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBroadcast {
    target: Target,
    urgency: Urgency,
    severity: Severity,
    certainty: Certainty,
    headline: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    instruction: Option<String>,
    #[serde(default)]
    area_desc: Option<String>,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

fn optional_text(field: &str, value: Option<String>) -> Result<Option<String>, Invalid> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(Invalid::field(
            field,
            format_args!("is longer than {MAX_TEXT_LEN} characters"),
        ));
    }
    Ok(Some(value))
}

/// Resolves the target to unit ids, and the CAP area when it is a polygon.
async fn recipients(
    state: &AppState,
    target: &Target,
    area_desc: Option<String>,
) -> Result<(Vec<i64>, Option<BroadcastArea>), ApiError> {
    let chosen = [
        target.all.is_some(),
        target.station.is_some(),
        target.unit_ids.is_some(),
        target.polygon.is_some(),
    ]
    .iter()
    .filter(|&&c| c)
    .count();
    if chosen != 1 {
        return Err(Invalid::field(
            "target",
            "must have exactly one of `all`, `station`, `unit_ids`, `polygon`",
        )
        .into());
    }
    let named_area = |default: &str| BroadcastArea {
        area_desc: area_desc.clone().unwrap_or_else(|| default.to_owned()),
        polygon: Vec::new(),
    };
    if let Some(all) = target.all {
        if !all {
            return Err(Invalid::field("target.all", "must be true when given").into());
        }
        return Ok((
            state.dispatch.store.all_unit_ids().await?,
            Some(named_area("all units")),
        ));
    }
    if let Some(station) = &target.station {
        let units = state
            .dispatch
            .store
            .units_of_station(station.trim())
            .await?;
        if units.is_empty() {
            return Err(ApiError::NotFound(format!("station {station:?}")));
        }
        return Ok((units, Some(named_area(&format!("station {station}")))));
    }
    if let Some(ids) = &target.unit_ids {
        if ids.is_empty() || ids.len() > 10_000 {
            return Err(Invalid::field("target.unit_ids", "must hold 1 to 10000 ids").into());
        }
        let mut ids = ids.clone();
        ids.sort_unstable();
        ids.dedup();
        return Ok((
            ids,
            area_desc.map(|d| BroadcastArea {
                area_desc: d,
                polygon: Vec::new(),
            }),
        ));
    }
    let polygon = target.polygon.clone().unwrap_or_default();
    let fence = Fence::new(polygon.clone())?;
    let mut ids: Vec<i64> = state
        .dispatch
        .live
        .within(&fence)
        .iter()
        .map(|u| u.unit_id)
        .collect();
    ids.sort_unstable();
    let mut ring: Vec<[f64; 2]> = polygon.iter().map(|&(lat, lon)| [lat, lon]).collect();
    if ring.first() != ring.last() {
        if let Some(&first) = ring.first() {
            ring.push(first);
        }
    }
    Ok((
        ids,
        Some(BroadcastArea {
            area_desc: area_desc.unwrap_or_else(|| "area drawn on the map".to_owned()),
            polygon: ring,
        }),
    ))
}

/// Commits the broadcast and one delivery per recipient (each goes to its device's session
/// once committed).
#[tracing::instrument(skip_all, err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/broadcasts", tag = "broadcasts",
    params(IdempotencyKey),
    request_body = CreateBroadcast,
    responses(
        (status = 201, body = Broadcast),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn create(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CreateBroadcast>,
) -> Result<(StatusCode, Json<Broadcast>), ApiError> {
    let headline = body.headline.trim().to_owned();
    if headline.is_empty() || headline.chars().count() > MAX_HEADLINE_LEN {
        return Err(Invalid::field(
            "headline",
            format_args!("must be 1 to {MAX_HEADLINE_LEN} characters"),
        )
        .into());
    }
    let expires_at = match body.expires_in_secs {
        None => None,
        Some(s) if (1..=MAX_EXPIRES_SECS).contains(&s) => {
            Some(now_ms() + i64::try_from(s * 1000).unwrap_or(i64::MAX / 2))
        }
        Some(_) => {
            return Err(Invalid::field(
                "expires_in_secs",
                format_args!("must be 1 to {MAX_EXPIRES_SECS}"),
            )
            .into())
        }
    };
    let description = optional_text("description", body.description)?;
    let instruction = optional_text("instruction", body.instruction)?;
    let area_desc = optional_text("area_desc", body.area_desc)?;
    let (unit_ids, area) = recipients(&state, &body.target, area_desc).await?;
    if unit_ids.is_empty() {
        return Err(ApiError::Conflict {
            code: "no_recipients",
            message: "no unit is in the broadcast's target".into(),
        });
    }
    let spec = NewBroadcast {
        target: serde_json::to_value(&body.target).unwrap_or_default(),
        urgency: body.urgency,
        severity: body.severity,
        certainty: body.certainty,
        headline,
        description,
        instruction,
        area,
        expires_at,
    };
    let broadcast = state
        .dispatch
        .store
        .create_broadcast(&spec, &unit_ids, &auth.actor(), key.as_deref())
        .await?;
    tracing::info!(
        broadcast = broadcast.id,
        recipients = broadcast.counts.recipients,
        "broadcast queued"
    );
    Ok((StatusCode::CREATED, Json(broadcast)))
}

#[utoipa::path(
    get, path = "/api/broadcasts", tag = "broadcasts",
    params(LimitQuery),
    responses((status = 200, body = Vec<Broadcast>), InputErrors, SessionErrors)
)]
async fn list(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<Vec<Broadcast>>, ApiError> {
    Ok(Json(
        state.dispatch.store.broadcasts(q.limit(50, 500)?).await?,
    ))
}

/// One broadcast with its counts and the recipients that have not acknowledged.
#[utoipa::path(
    get, path = "/api/broadcasts/{id}", tag = "broadcasts",
    params(("id" = i64, Path, description = "The broadcast's id.")),
    responses((status = 200, body = Broadcast), Malformed, NotFound, SessionErrors)
)]
async fn get_one(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Broadcast>, ApiError> {
    Ok(Json(state.dispatch.store.broadcast(id).await?))
}
