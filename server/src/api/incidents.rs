//! Incidents: intake, edits, closing, recommendations, assignments (orders) and the timeline.

use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::openapi::{Ref, RefOr};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{Authorized, OperatorRole};
use super::idempotency::IdempotencyKey;
use super::openapi::{
    self, Code, Conflict, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use crate::app::AppState;
use crate::domain::{
    callback_number, coordinates, need_for, now_ms, optional_text, Incident, IncidentStatus,
    Invalid, NewIncident, Order, PlanNeed, Priority, TimelineEvent,
};
use crate::geo::recommend::{rank, EtaSource, Ranked};
use crate::store::IncidentPatch;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update))
        .routes(routes!(close))
        .routes(routes!(recommendations))
        .routes(routes!(orders, assign))
        .routes(routes!(dispatch_plan))
        .routes(routes!(timeline))
        .routes(routes!(order))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateIncident {
    #[schema(pattern = "^[a-z0-9_]{1,40}$")]
    kind: String,
    #[schema(minimum = 0, maximum = 4)]
    priority: i64,
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    lon: f64,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    caller: Option<String>,
    #[serde(default)]
    callback: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    /// Overrides the response plan of `kind`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Code>>)]
    required_capabilities: Option<Vec<String>>,
}

#[tracing::instrument(skip_all, fields(kind = %body.kind), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/incidents", tag = "incidents",
    params(IdempotencyKey),
    request_body = CreateIncident,
    responses((status = 201, body = Incident), InputErrors, WriteErrors, Conflict, SessionErrors)
)]
async fn create(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CreateIncident>,
) -> Result<(StatusCode, Json<Incident>), ApiError> {
    let plan_priority = u8::try_from(body.priority).unwrap_or(u8::MAX);
    let required = body.required_capabilities.unwrap_or_else(|| {
        need_for(&state.config.response_plans, &body.kind, plan_priority).capabilities
    });
    let new = NewIncident::parse(
        &body.kind,
        body.priority,
        body.lat,
        body.lon,
        body.address,
        body.caller,
        body.callback,
        body.notes,
        &required,
    )?;
    let incident = state
        .dispatch
        .store
        .create_incident(&new, &auth.actor(), key.as_deref())
        .await?;
    tracing::info!(
        id = incident.id,
        priority = incident.priority,
        "incident created"
    );
    Ok((StatusCode::CREATED, Json(incident)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    #[param(value_type = Option<IncidentStatus>)]
    status: Option<String>,
    /// Default 200.
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[utoipa::path(
    get, path = "/api/incidents", tag = "incidents",
    params(ListQuery),
    responses((status = 200, body = Vec<Incident>), InputErrors, SessionErrors)
)]
async fn list(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let status = q.status.as_deref().map(IncidentStatus::parse).transpose()?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Invalid::field("limit", "must be 1 to 1000").into());
    }
    Ok(Json(state.dispatch.store.incidents(status, limit).await?))
}

#[utoipa::path(
    get, path = "/api/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id.")),
    responses((status = 200, body = Incident), Malformed, NotFound, SessionErrors)
)]
async fn get_one(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Incident>, ApiError> {
    Ok(Json(state.dispatch.store.incident(id).await?))
}

/// A partial update; absent fields stay, `null` clears an optional text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateIncident {
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9_]{1,40}$")]
    kind: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 4)]
    priority: Option<i64>,
    /// With `lon`: both or neither.
    #[serde(default)]
    #[schema(minimum = -90.0, maximum = 90.0)]
    lat: Option<f64>,
    #[serde(default)]
    #[schema(minimum = -180.0, maximum = 180.0)]
    lon: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    address: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    caller: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    callback: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    notes: Option<Option<String>>,
}

/// Tells an explicit `null` (Some(None)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn patch_from(body: UpdateIncident) -> Result<IncidentPatch, Invalid> {
    let location = match (body.lat, body.lon) {
        (Some(lat), Some(lon)) => Some(coordinates(lat, lon)?),
        (None, None) => None,
        _ => return Err(Invalid("`lat` and `lon` must be given together".into())),
    };
    let text = |name, v: Option<Option<String>>, max| -> Result<Option<Option<String>>, Invalid> {
        v.map(|v| optional_text(name, v, max)).transpose()
    };
    let patch = IncidentPatch {
        kind: body
            .kind
            .as_deref()
            .map(|k| crate::domain::code("kind", k))
            .transpose()?,
        priority: body.priority.map(Priority::parse).transpose()?,
        location,
        address: text("address", body.address, 200)?,
        caller: text("caller", body.caller, 200)?,
        callback: body.callback.map(callback_number).transpose()?,
        notes: text("notes", body.notes, 4000)?,
    };
    if patch.changed().is_empty() {
        return Err(Invalid("the update names no field to change".into()));
    }
    Ok(patch)
}

#[tracing::instrument(skip_all, fields(incident = id), err(level = "warn"))]
#[utoipa::path(
    patch, path = "/api/incidents/{id}", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id.")),
    request_body = UpdateIncident,
    responses(
        (status = 200, body = Incident),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn update(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateIncident>,
) -> Result<Json<Incident>, ApiError> {
    let patch = patch_from(body)?;
    Ok(Json(
        state
            .dispatch
            .store
            .update_incident(id, &patch, &auth.actor())
            .await?,
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CloseIncident {
    #[serde(default)]
    disposition: Option<String>,
}

#[tracing::instrument(skip_all, fields(incident = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/incidents/{id}/close", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id.")),
    request_body = CloseIncident,
    responses(
        (status = 200, body = Incident),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn close(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CloseIncident>,
) -> Result<Json<Incident>, ApiError> {
    let disposition = optional_text("disposition", body.disposition, 500)?;
    Ok(Json(
        state
            .dispatch
            .store
            .close_incident(id, disposition.as_deref(), &auth.actor())
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RecommendQuery {
    /// Candidates to list (default 3).
    #[serde(default)]
    #[param(minimum = 1, maximum = 50)]
    count: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Recommendation {
    incident_id: i64,
    required_capabilities: Vec<String>,
    /// What the response plan asks for.
    plan: PlanNeed,
    /// The units that fill the plan: the first `plan.units` candidates.
    proposed: Vec<i64>,
    candidates: Vec<RecommendedUnit>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RecommendedUnit {
    unit_id: i64,
    #[schema(value_type = String)]
    call_sign: std::sync::Arc<str>,
    /// Straight-line distance from the unit's last fix.
    distance_m: f64,
    eta_s: f64,
    /// `road` (fastest legal route) or `straight_line_estimate` (no map, snap or route).
    eta_source: EtaSource,
    fix_age_s: f64,
    accuracy_m: Option<f64>,
}

/// Available units with the required capabilities and a fresh fix, soonest arrival first, and
/// the ones that fill the incident's response plan.
#[utoipa::path(
    get, path = "/api/incidents/{id}/recommendations", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id."), RecommendQuery),
    responses((status = 200, body = Recommendation), InputErrors, NotFound, SessionErrors)
)]
async fn recommendations(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RecommendQuery>,
) -> Result<Json<Recommendation>, ApiError> {
    let count = q.count.unwrap_or(3);
    if !(1..=50).contains(&count) {
        return Err(Invalid::field("count", "must be 1 to 50").into());
    }
    let incident = state.dispatch.store.incident(id).await?;
    let plan = PlanNeed {
        units: need_for(
            &state.config.response_plans,
            &incident.kind,
            incident.priority,
        )
        .units,
        capabilities: incident.required_capabilities.clone(),
    };
    let wanted = count.max(plan.units as usize);
    let now = now_ms();
    let ranked = rank_for(&state, &incident, wanted, now).await?;
    // Everything a candidate shows is in the live index already: no store read per unit.
    let candidates: Vec<RecommendedUnit> = ranked
        .into_iter()
        .filter_map(|r| {
            #[allow(clippy::cast_precision_loss)]
            let fix_age_s = (now - r.fix_received_ms) as f64 / 1000.0;
            Some(RecommendedUnit {
                unit_id: r.unit_id,
                call_sign: state.dispatch.live.call_sign(r.unit_id)?,
                distance_m: r.distance_m.round(),
                eta_s: r.eta_s.round(),
                eta_source: r.source,
                fix_age_s,
                accuracy_m: r.accuracy_m,
            })
        })
        .collect();
    let proposed = candidates
        .iter()
        .take(plan.units as usize)
        .map(|c| c.unit_id)
        .collect();
    Ok(Json(Recommendation {
        incident_id: id,
        required_capabilities: incident.required_capabilities,
        plan,
        proposed,
        candidates,
    }))
}

/// The `k` units that would reach the incident first, never the unit whose officer raised it
/// as an emergency.
async fn rank_for(
    state: &AppState,
    incident: &Incident,
    k: usize,
    now: i64,
) -> Result<Vec<Ranked>, ApiError> {
    let Some(in_danger) = incident.emergency_unit_id else {
        return rank_all(state, incident, k, now).await;
    };
    let mut ranked = rank_all(state, incident, k + 1, now).await?;
    ranked.retain(|r| r.unit_id != in_danger);
    ranked.truncate(k);
    Ok(ranked)
}

/// The `k` units that would reach the incident first. Drive times are searched off the async
/// threads; without a road graph the ranking is a few microseconds and runs in place.
async fn rank_all(
    state: &AppState,
    incident: &Incident,
    k: usize,
    now: i64,
) -> Result<Vec<Ranked>, ApiError> {
    let stale_ms = i64::try_from(state.config.stale_fix_secs * 1000).unwrap_or(i64::MAX / 2);
    let at = (incident.lat, incident.lon);
    let Some(roads) = state.roads.clone() else {
        return Ok(rank(
            None,
            &state.dispatch.live,
            at,
            k,
            &incident.required_capabilities,
            now - stale_ms,
        ));
    };
    let (live, required) = (
        state.dispatch.live.clone(),
        incident.required_capabilities.clone(),
    );
    tokio::task::spawn_blocking(move || rank(Some(&roads), &live, at, k, &required, now - stale_ms))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PlanDispatch {
    orders: Vec<Order>,
    /// Units of the plan that could not be assigned, with why.
    failed: Vec<PlanFailure>,
}

/// The 409 of a plan dispatch: either no order could be queued (the answer lists why), or the
/// plan was refused whole (an error body).
struct PlanConflict;

impl utoipa::IntoResponses for PlanConflict {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let either = utoipa::openapi::schema::OneOfBuilder::new()
            .item(Ref::from_schema_name("PlanDispatch"))
            .item(Ref::from_schema_name("ErrorBody"));
        let response = utoipa::openapi::ResponseBuilder::new()
            .description(
                "No order could be queued (`failed` says why for each unit), or the plan was \
                 refused whole: `plan_fulfilled`, `no_unit_available`, `incident_closed`.",
            )
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(either))
                    .build(),
            )
            .build();
        BTreeMap::from([("409".to_owned(), response.into())])
    }
}

/// A unit of the plan that could not be assigned.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PlanFailure {
    unit_id: i64,
    error: String,
}

/// How many times a plan dispatch ranks the units: again when a ranked unit was assigned by a
/// racing dispatch before its order was committed (the live index lags the commit by moments).
const PLAN_RANKINGS: usize = 3;

/// Dispatches the whole response plan: the units that would arrive first, as many as the plan
/// asks for. Each order is committed on its own; the answer lists what was queued and what not.
/// A unit a racing dispatch took meanwhile is replaced by the next-best one.
#[tracing::instrument(skip_all, fields(incident = id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/incidents/{id}/dispatch-plan", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id."), IdempotencyKey),
    responses(
        (status = 201, body = PlanDispatch, description = "At least one order was queued."),
        PlanConflict,
        Malformed,
        WriteErrors,
        NotFound,
        SessionErrors,
    )
)]
async fn dispatch_plan(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<i64>,
) -> Result<(StatusCode, Json<PlanDispatch>), ApiError> {
    let incident = state.dispatch.store.incident(id).await?;
    if let Some(key) = key.as_deref() {
        // A retry of a plan dispatch answers what the first attempt queued.
        let earlier = state
            .dispatch
            .store
            .orders_by_key_prefix(&format!("{key}#"))
            .await?;
        if !earlier.is_empty() {
            return Ok((
                StatusCode::CREATED,
                Json(PlanDispatch {
                    orders: earlier,
                    failed: Vec::new(),
                }),
            ));
        }
    }
    let units = need_for(
        &state.config.response_plans,
        &incident.kind,
        incident.priority,
    )
    .units as usize;
    let sent: Vec<String> = state
        .dispatch
        .store
        .incident_orders(id)
        .await?
        .into_iter()
        .filter(|o| o.state.is_active())
        .map(|o| o.call_sign)
        .collect();
    if sent.len() >= units {
        return Err(crate::store::plan_fulfilled(id, units, &sent).into());
    }
    let mut result = PlanDispatch {
        orders: Vec::new(),
        failed: Vec::new(),
    };
    let mut needed = units - sent.len();
    // Units found assigned when their order was committed: a racing dispatch took them after
    // the ranking read the live index. They are passed over for the next-best units.
    let mut taken = HashSet::new();
    let mut fulfilled = None;
    let mut part = 0;
    for _ in 0..PLAN_RANKINGS {
        let ranked = rank_for(&state, &incident, needed + taken.len(), now_ms()).await?;
        let candidates: Vec<Ranked> = ranked
            .into_iter()
            .filter(|r| !taken.contains(&r.unit_id))
            .take(needed)
            .collect();
        let mut raced = false;
        for r in candidates {
            let queued = state
                .dispatch
                .store
                .create_plan_order(
                    id,
                    r.unit_id,
                    &auth.actor(),
                    key.part(part).as_deref(),
                    units,
                )
                .await;
            part += 1;
            match queued {
                Ok(order) => {
                    tracing::info!(order = order.id, unit = %order.call_sign, "order queued");
                    result.orders.push(order);
                    needed -= 1;
                }
                // Another dispatch filled the plan meanwhile: nothing more to send.
                Err(
                    e @ crate::store::Error::Conflict {
                        code: "plan_fulfilled",
                        ..
                    },
                ) => {
                    fulfilled = Some(e);
                    break;
                }
                Err(crate::store::Error::Conflict {
                    code: "unit_unavailable",
                    ..
                }) => {
                    taken.insert(r.unit_id);
                    raced = true;
                }
                Err(e) => result.failed.push(PlanFailure {
                    unit_id: r.unit_id,
                    error: e.to_string(),
                }),
            }
        }
        if !raced || needed == 0 || fulfilled.is_some() {
            break;
        }
    }
    if let (true, Some(e)) = (result.orders.is_empty(), fulfilled) {
        return Err(e.into());
    }
    if result.orders.is_empty() && result.failed.is_empty() {
        return Err(ApiError::Conflict {
            code: "no_unit_available",
            message: format!(
                "no available unit with {:?} has a fresh position",
                incident.required_capabilities
            ),
        });
    }
    let status = if result.orders.is_empty() {
        StatusCode::CONFLICT
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(result)))
}

/// Commits one order (the commit hands its delivery to the unit's device session and the now
/// assigned unit to the live index).
async fn queue_order(
    state: &AppState,
    incident_id: i64,
    unit_id: i64,
    auth: &Authorized<OperatorRole>,
    key: &IdempotencyKey,
) -> Result<Order, ApiError> {
    let order = state
        .dispatch
        .store
        .create_order(incident_id, unit_id, &auth.actor(), key.as_deref())
        .await?;
    tracing::info!(order = order.id, unit = %order.call_sign, "order queued");
    Ok(order)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Assign {
    unit_id: i64,
}

/// Commits an order to the unit's device outbox; answers only after the commit, so a `queued`
/// order is on disk.
#[tracing::instrument(skip_all, fields(incident = id, unit = body.unit_id), err(level = "warn"))]
#[utoipa::path(
    post, path = "/api/incidents/{id}/assignments", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id."), IdempotencyKey),
    request_body = Assign,
    responses(
        (status = 201, body = Order),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn assign(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<Assign>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let order = queue_order(&state, id, body.unit_id, &auth, &key).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

#[utoipa::path(
    get, path = "/api/incidents/{id}/assignments", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id.")),
    responses((status = 200, body = Vec<Order>), Malformed, NotFound, SessionErrors)
)]
async fn orders(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<Order>>, ApiError> {
    state.dispatch.store.incident(id).await?;
    Ok(Json(state.dispatch.store.incident_orders(id).await?))
}

#[utoipa::path(
    get, path = "/api/orders/{id}", tag = "orders",
    params(("id" = i64, Path, description = "The order's id.")),
    responses((status = 200, body = Order), Malformed, NotFound, SessionErrors)
)]
async fn order(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(state.dispatch.store.order(id).await?))
}

#[utoipa::path(
    get, path = "/api/incidents/{id}/timeline", tag = "incidents",
    params(("id" = i64, Path, description = "The incident's id.")),
    responses((status = 200, body = Vec<TimelineEvent>), Malformed, NotFound, SessionErrors)
)]
async fn timeline(
    _: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<TimelineEvent>>, ApiError> {
    Ok(Json(state.dispatch.store.incident_timeline(id).await?))
}
