//! Response-time figures for supervisors: call → dispatch → acknowledgement → arrival, the
//! 50th and 90th percentiles of each step by incident priority, from the append-only timeline.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiQuery};
use super::extract::{Authorized, Supervisor};
use super::openapi::{self, InputErrors, SessionErrors};
use crate::app::AppState;
use crate::domain::{now_ms, Invalid};
use crate::store::ResponseMilestones;

/// Most incidents one report reads.
pub const MAX_INCIDENTS: u32 = 50_000;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router().routes(routes!(response_times))
}

/// A time window, shared with the export: `since_ms`..`until_ms` (default: the last 24 hours).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Window {
    #[serde(default)]
    pub since_ms: Option<i64>,
    #[serde(default)]
    pub until_ms: Option<i64>,
}

impl Window {
    /// The window as `(since, until)`.
    ///
    /// # Errors
    /// When `since_ms` is after `until_ms`.
    pub fn bounds(&self) -> Result<(i64, i64), Invalid> {
        let until = self.until_ms.unwrap_or_else(now_ms);
        let since = self.since_ms.unwrap_or(until.saturating_sub(86_400_000));
        if since > until {
            return Err(Invalid::field("since_ms", "must not be after until_ms"));
        }
        Ok((since, until))
    }
}

/// Percentiles of one step, in seconds; `None` when no incident reached the step.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepFigures {
    pub count: usize,
    pub p50_s: Option<f64>,
    pub p90_s: Option<f64>,
}

/// The figures of one priority (or of all, `priority: null`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PriorityFigures {
    pub priority: Option<u8>,
    pub incidents: usize,
    pub call_to_dispatch: StepFigures,
    pub dispatch_to_acknowledgement: StepFigures,
    pub acknowledgement_to_arrival: StepFigures,
    pub call_to_arrival: StepFigures,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Report {
    since_ms: i64,
    until_ms: i64,
    by_priority: Vec<PriorityFigures>,
    all: PriorityFigures,
}

#[utoipa::path(
    get, path = "/api/stats/response-times", tag = "stats",
    params(Window),
    responses(
        (
            status = 200,
            body = Report,
            description = "Response-time figures of the incidents created in the window (default: \
                the last 24 hours).",
        ),
        InputErrors,
        SessionErrors,
    )
)]
async fn response_times(
    _: Authorized<Supervisor>,
    State(state): State<AppState>,
    ApiQuery(window): ApiQuery<Window>,
) -> Result<Json<Report>, ApiError> {
    let (since, until) = window.bounds()?;
    let rows = state
        .dispatch
        .store
        .response_milestones(since, until, MAX_INCIDENTS)
        .await?;
    let mut priorities: Vec<u8> = rows.iter().map(|r| r.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    let by_priority = priorities
        .iter()
        .map(|&p| {
            let of_p: Vec<&ResponseMilestones> = rows.iter().filter(|r| r.priority == p).collect();
            figures(Some(p), &of_p)
        })
        .collect();
    let all: Vec<&ResponseMilestones> = rows.iter().collect();
    let report = Report {
        since_ms: since,
        until_ms: until,
        by_priority,
        all: figures(None, &all),
    };
    Ok(Json(report))
}

/// The figures of a group of incidents.
pub fn figures(priority: Option<u8>, rows: &[&ResponseMilestones]) -> PriorityFigures {
    let step = |from: fn(&ResponseMilestones) -> Option<i64>,
                to: fn(&ResponseMilestones) -> Option<i64>| {
        let mut secs: Vec<f64> = rows
            .iter()
            .filter_map(|r| Some((to(r)? - from(r)?) as f64 / 1000.0))
            .filter(|s| *s >= 0.0)
            .collect();
        secs.sort_by(f64::total_cmp);
        StepFigures {
            count: secs.len(),
            p50_s: percentile(&secs, 50.0),
            p90_s: percentile(&secs, 90.0),
        }
    };
    PriorityFigures {
        priority,
        incidents: rows.len(),
        call_to_dispatch: step(|r| Some(r.created_at_ms), |r| r.dispatched_at_ms),
        dispatch_to_acknowledgement: step(|r| r.dispatched_at_ms, |r| r.acknowledged_at_ms),
        acknowledgement_to_arrival: step(|r| r.acknowledged_at_ms, |r| r.arrived_at_ms),
        call_to_arrival: step(|r| Some(r.created_at_ms), |r| r.arrived_at_ms),
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` % of the
/// values at or below it. `None` for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_at_the_edge_of_time_is_no_panic() {
        let earliest = Window {
            since_ms: None,
            until_ms: Some(i64::MIN),
        };
        assert_eq!(earliest.bounds().unwrap(), (i64::MIN, i64::MIN));
    }

    fn milestones(priority: u8, created: i64, dispatched: Option<i64>) -> ResponseMilestones {
        ResponseMilestones {
            incident_id: created,
            kind: "burglary".into(),
            priority,
            status: "open".into(),
            address: None,
            lat: 60.0,
            lon: 24.0,
            caller: None,
            callback: None,
            notes: None,
            disposition: None,
            created_at_ms: created,
            closed_at_ms: None,
            dispatched_at_ms: dispatched,
            delivered_at_ms: dispatched,
            acknowledged_at_ms: dispatched.map(|d| d + 5_000),
            accepted_at_ms: None,
            en_route_at_ms: None,
            arrived_at_ms: None,
            cleared_at_ms: None,
            units: vec![],
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn steps_skip_incidents_that_did_not_reach_them() {
        let a = milestones(1, 0, Some(30_000));
        let b = milestones(1, 1_000, Some(11_000));
        let c = milestones(1, 2_000, None);
        let f = figures(Some(1), &[&a, &b, &c]);
        assert_eq!(f.incidents, 3);
        assert_eq!(f.call_to_dispatch.count, 2);
        assert_eq!(f.call_to_dispatch.p50_s, Some(10.0));
        assert_eq!(f.call_to_dispatch.p90_s, Some(30.0));
        assert_eq!(f.dispatch_to_acknowledgement.p50_s, Some(5.0));
        assert_eq!(f.call_to_arrival.count, 0);
        assert_eq!(f.call_to_arrival.p50_s, None);
    }
}
