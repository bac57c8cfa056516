//! Units and their enrolment codes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Admin, Authorized, OperatorRole};
use super::idempotency::IdempotencyKey;
use super::openapi::{
    self, Code, Conflict, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use crate::app::AppState;
use crate::auth::qr::qr_svg;
use crate::auth::{new_enrolment_code, normalise_enrolment_code, sha256_hex};
use crate::domain::{now_ms, Invalid, NewUnit, Unit};
use crate::geo::recommend::SNAP_MAX_M;
use crate::store::TrailPoint;
use dispatch_geo::fence::Fence;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list_units, create_unit))
        .routes(routes!(get_unit, update_unit))
        .routes(routes!(unit_kinds))
        .routes(routes!(trail))
        .routes(routes!(trail_along_roads))
        .routes(routes!(route))
        .routes(routes!(units_within))
        .routes(routes!(set_sms_number))
        .routes(routes!(create_enrolment_code))
        .routes(routes!(disable_unit))
        .routes(routes!(enable_unit))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUnit {
    /// 1 to 20 letters, digits, - or _ (around spaces).
    call_sign: String,
    /// One of the configured `unit_kinds` (`GET /api/units/kinds`).
    #[schema(value_type = Code)]
    kind: String,
    /// At most 32 distinct.
    #[serde(default)]
    #[schema(value_type = Vec<Code>)]
    capabilities: Vec<String>,
    #[serde(default)]
    home_station: Option<String>,
}

impl CreateUnit {
    /// The unit, checked, with a kind from `kinds` (the configured `unit_kinds`).
    fn parse(self, kinds: &[String]) -> Result<NewUnit, Invalid> {
        NewUnit::parse(
            &self.call_sign,
            &self.kind,
            &self.capabilities,
            self.home_station,
            kinds,
        )
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SmsNumber {
    sms_number: Option<String>,
}

/// Sets (or clears, with null) the number the SMS fallback reaches the unit at.
#[utoipa::path(
    put, path = "/api/units/{id}/sms-number", tag = "units",
    params(("id" = i64, Path, description = "The unit's id.")),
    request_body = SmsNumber,
    responses(
        (status = 204, description = "Set."),
        InputErrors,
        WriteErrors,
        NotFound,
        SessionErrors,
    )
)]
async fn set_sms_number(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<SmsNumber>,
) -> Result<StatusCode, ApiError> {
    let number = body.sms_number.as_deref().map(str::trim);
    if let Some(n) = number {
        let digits = n.strip_prefix('+').unwrap_or(n);
        if digits.len() < 3 || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::domain::Invalid::field(
                "sms_number",
                "must be 3 to 20 digits, optionally after a leading +",
            )
            .into());
        }
    }
    state
        .dispatch
        .store
        .set_sms_number(id, number, &auth.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get, path = "/api/units", tag = "units",
    responses((status = 200, body = Vec<Unit>), SessionErrors)
)]
async fn list_units(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Vec<Unit>>, ApiError> {
    Ok(Json(state.dispatch.store.units().await?))
}

#[utoipa::path(
    get, path = "/api/units/{id}", tag = "units",
    params(("id" = i64, Path, description = "The unit's id.")),
    responses((status = 200, body = Unit), InputErrors, NotFound, SessionErrors)
)]
async fn get_unit(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Unit>, ApiError> {
    Ok(Json(state.dispatch.store.unit(id).await?))
}

#[tracing::instrument(skip_all, fields(call_sign = %body.call_sign), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/units", tag = "units",
    params(IdempotencyKey),
    request_body = CreateUnit,
    responses((status = 201, body = Unit), InputErrors, WriteErrors, Conflict, SessionErrors)
)]
async fn create_unit(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CreateUnit>,
) -> Result<(StatusCode, Json<Unit>), ApiError> {
    let unit = body.parse(&state.config.unit_kinds)?;
    let unit = state
        .dispatch
        .store
        .create_unit(&unit, &auth.actor(), key.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(unit)))
}

/// Edits a unit: its call sign, kind, capabilities and home station, all given (the body of a
/// creation). Its status, device and orders are not touched; an active order keeps the call
/// sign it was sent with. The change is audited (`unit_updated`, before and after).
#[tracing::instrument(skip_all, fields(unit = id), err(level = "warn"))]
#[utoipa::path(
    put, path = "/api/units/{id}", tag = "units",
    params(("id" = i64, Path, description = "The unit's id.")),
    request_body = CreateUnit,
    responses((status = 200, body = Unit), InputErrors, WriteErrors, NotFound, Conflict, SessionErrors)
)]
async fn update_unit(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CreateUnit>,
) -> Result<Json<Unit>, ApiError> {
    let unit = body.parse(&state.config.unit_kinds)?;
    Ok(Json(
        state
            .dispatch
            .store
            .update_unit(id, &unit, &auth.actor())
            .await?,
    ))
}

/// Takes a unit out of the fleet: its tablet's credential is revoked (the live connection is
/// closed with 4003), pending enrolment codes are withdrawn and it is set out of service; it is
/// not recommended, dispatched or enrolled until enabled. Refused (`orders_active`) while the
/// unit holds an active order. Audited (`unit_disabled`); disabling a disabled unit changes
/// nothing.
#[tracing::instrument(skip_all, fields(unit = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/units/{id}/disable", tag = "units",
    params(("id" = i64, Path, description = "The unit's id.")),
    responses((status = 200, body = Unit), Malformed, WriteErrors, NotFound, Conflict, SessionErrors)
)]
async fn disable_unit(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Unit>, ApiError> {
    let store = &state.dispatch.store;
    Ok(Json(
        store.set_unit_disabled(id, true, &auth.actor()).await?,
    ))
}

/// Puts a disabled unit back in the fleet, still out of service: a tablet is enrolled for it
/// again and reports it available. Audited (`unit_enabled`); enabling an enabled unit changes
/// nothing.
#[tracing::instrument(skip_all, fields(unit = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/units/{id}/enable", tag = "units",
    params(("id" = i64, Path, description = "The unit's id.")),
    responses((status = 200, body = Unit), Malformed, WriteErrors, NotFound, SessionErrors)
)]
async fn enable_unit(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Unit>, ApiError> {
    let store = &state.dispatch.store;
    Ok(Json(
        store.set_unit_disabled(id, false, &auth.actor()).await?,
    ))
}

/// The configured unit kinds (`unit_kinds`), in the configured order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct UnitKinds {
    #[schema(value_type = Vec<Code>)]
    kinds: Vec<String>,
}

/// The kinds a unit may have, as the configuration lists them.
#[utoipa::path(
    get, path = "/api/units/kinds", tag = "units",
    responses((status = 200, body = UnitKinds), SessionErrors)
)]
async fn unit_kinds(_: Authorized<OperatorRole>, State(state): State<AppState>) -> Json<UnitKinds> {
    Json(UnitKinds {
        kinds: state.config.unit_kinds.clone(),
    })
}

/// Issues a one-time enrolment code for the unit's tablet. Only its hash is stored, so a retry
/// with the same `Idempotency-Key` withdraws the code issued first and answers a new one.
#[tracing::instrument(skip_all, fields(unit = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/units/{id}/enrolment-code", tag = "units",
    params(("id" = i64, Path, description = "The unit's id."), IdempotencyKey),
    responses(
        (status = 201, body = EnrolmentCode),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn create_enrolment_code(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<EnrolmentCode>), ApiError> {
    let code = new_enrolment_code();
    let ttl_ms = i64::try_from(state.config.enrolment_code_ttl_secs * 1000).unwrap_or(i64::MAX / 2);
    let expires_at = now_ms() + ttl_ms;
    state
        .dispatch
        .store
        .create_enrolment_code(
            id,
            &sha256_hex(&normalise_enrolment_code(&code)),
            expires_at,
            &auth.actor(),
            key.as_deref(),
        )
        .await?;
    let fingerprint = state.tls_pins.borrow().first().cloned().unwrap_or_default();
    let link = state
        .config
        .public_url
        .as_deref()
        .map(|origin| dispatch_protocol::enrolment_link(origin, &code, &fingerprint));
    let qr_svg = link.as_deref().and_then(qr_svg);
    Ok((
        StatusCode::CREATED,
        Json(EnrolmentCode {
            unit_id: id,
            code,
            expires_at_ms: expires_at,
            fingerprint,
            link,
            qr_svg,
        }),
    ))
}

/// A one-time code a tablet enrols with (`POST /api/devices/enroll`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct EnrolmentCode {
    unit_id: i64,
    code: String,
    expires_at_ms: i64,
    /// SHA-256 of the certificate the server presents, 64 hex digits: what
    /// `field-client enroll --pin` takes.
    fingerprint: String,
    /// `dispatch-enrol://HOST:PORT?code=CODE&pin=FINGERPRINT` at the server's public origin
    /// (docs/protocol.md); null when no origin is known (listening on `0.0.0.0` or `::` with
    /// neither `public_url` nor `tls_names`). A secret until used, like the code.
    link: Option<String>,
    /// The link as a QR code (SVG), drawn by the server; null without a link.
    qr_svg: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TrailQuery {
    #[serde(default)]
    since_ms: Option<i64>,
    #[serde(default)]
    until_ms: Option<i64>,
}

/// The unit's sampled positions, for replaying its movements (default: the last hour).
#[utoipa::path(
    get, path = "/api/units/{id}/trail", tag = "units",
    params(("id" = i64, Path, description = "The unit's id."), TrailQuery),
    responses((status = 200, body = Vec<TrailPoint>), InputErrors, NotFound, SessionErrors)
)]
async fn trail(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<TrailQuery>,
) -> Result<Json<Vec<TrailPoint>>, ApiError> {
    let until = q.until_ms.unwrap_or_else(now_ms);
    let since = q.since_ms.unwrap_or(until.saturating_sub(3_600_000));
    if since > until {
        return Err(crate::domain::Invalid::field("since_ms", "must not be after until_ms").into());
    }
    Ok(Json(
        state.dispatch.store.unit_trail(id, since, until).await?,
    ))
}

/// A unit's recorded movements as a line to draw.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct TrailLine {
    unit_id: i64,
    /// `[lon, lat]` points (GeoJSON order), oldest first.
    #[schema(value_type = Vec<[f64; 2]>)]
    coordinates: Vec<[f64; 2]>,
}

/// The unit's sampled positions as a line along the roads it drove (default: the last hour):
/// between two fixes the fastest road drive, unless that is no road drive (a fix more than 40 m
/// from a road, or a drive more than twice the straight line and 100 m longer), where the
/// straight line stays. Without a map, the fixes as recorded.
#[utoipa::path(
    get, path = "/api/units/{id}/trail/roads", tag = "units",
    params(("id" = i64, Path, description = "The unit's id."), TrailQuery),
    responses((status = 200, body = TrailLine), InputErrors, NotFound, SessionErrors)
)]
async fn trail_along_roads(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<TrailQuery>,
) -> Result<Json<TrailLine>, ApiError> {
    let Json(points) = trail(auth, State(state.clone()), ApiPath(id), ApiQuery(q)).await?;
    let fixes: Vec<(f64, f64)> = points.iter().map(|p| (p.lat, p.lon)).collect();
    let line = match state.roads.clone() {
        Some(roads) => tokio::task::spawn_blocking(move || roads.along_roads(&fixes))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?,
        None => fixes,
    };
    Ok(Json(TrailLine {
        unit_id: id,
        coordinates: geojson_order(&line),
    }))
}

/// `(lat, lon)` points as GeoJSON's `[lon, lat]`.
fn geojson_order(points: &[(f64, f64)]) -> Vec<[f64; 2]> {
    points.iter().map(|&(lat, lon)| [lon, lat]).collect()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RouteQuery {
    /// Where the unit is to drive (an incident's place), degrees.
    lat: f64,
    lon: f64,
}

/// The fastest drive from a unit's last position to a place, on the road graph the ETAs use.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct UnitRoute {
    unit_id: i64,
    /// The drive time by road in whole seconds: the ETA the recommendation gives.
    eta_s: f64,
    /// The drive as `[lon, lat]` points (GeoJSON order), from the unit to the place.
    #[schema(value_type = Vec<[f64; 2]>)]
    coordinates: Vec<[f64; 2]>,
}

/// The route a unit would drive from its last position to (`lat`, `lon`), for the console to
/// draw: 404 when the unit, its position, or a road within 150 m of either end is missing, or no
/// legal drive exists; 409 `no_map` without a map.
#[utoipa::path(
    get, path = "/api/units/{id}/route", tag = "units",
    params(("id" = i64, Path, description = "The unit's id."), RouteQuery),
    responses((status = 200, body = UnitRoute), InputErrors, NotFound, Conflict, SessionErrors)
)]
async fn route(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> Result<Json<UnitRoute>, ApiError> {
    let (lat, lon) = crate::domain::coordinates(q.lat, q.lon)?;
    let roads = state.roads.clone().ok_or_else(|| ApiError::Conflict {
        code: "no_map",
        message: "no map is configured on this server; there are no roads to route on".into(),
    })?;
    let unit = state.dispatch.store.unit(id).await?;
    let position = unit
        .position
        .ok_or_else(|| ApiError::NotFound(format!("a position of unit {}", unit.call_sign)))?;
    let call_sign = unit.call_sign;
    let found = tokio::task::spawn_blocking(move || {
        let from = roads.snap(position.lat, position.lon, SNAP_MAX_M);
        let to = roads.snap(lat, lon, SNAP_MAX_M);
        from.zip(to).and_then(|(from, to)| roads.route(&from, &to))
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    let route = found.ok_or_else(|| {
        ApiError::NotFound(format!(
            "a road route from unit {call_sign} to {lat}, {lon} (both within {SNAP_MAX_M} m of a road)"
        ))
    })?;
    Ok(Json(UnitRoute {
        unit_id: id,
        eta_s: (route.drive_ms / 1000.0).round(),
        coordinates: geojson_order(&route.points),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WithinRequest {
    /// Vertices as `[lat, lon]` pairs; the polygon closes itself.
    #[schema(value_type = Vec<[f64; 2]>)]
    polygon: Vec<(f64, f64)>,
}

/// Units whose last position lies inside a polygon (for broadcasts to an area), any status.
#[utoipa::path(
    post, path = "/api/units/within", tag = "units",
    request_body = WithinRequest,
    responses((status = 200, body = Vec<Unit>), InputErrors, WriteErrors, SessionErrors)
)]
async fn units_within(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<WithinRequest>,
) -> Result<Json<Vec<Unit>>, ApiError> {
    let fence = Fence::new(body.polygon)?;
    let mut units = Vec::new();
    for snapshot in state.dispatch.live.within(&fence) {
        units.push(state.dispatch.store.unit(snapshot.unit_id).await?);
    }
    Ok(Json(units))
}
