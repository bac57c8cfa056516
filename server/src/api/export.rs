//! Incident export for supervisors: every incident of a window with its response milestones,
//! as JSON or as CSV (RFC 4180 quoting) for spreadsheets.

use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiQuery};
use super::extract::{Authorized, Supervisor};
use super::openapi::{self, InputErrors, SessionErrors};
use super::stats::{Window, MAX_INCIDENTS};
use crate::app::AppState;
use crate::domain::event::rfc3339;
use crate::domain::Invalid;
use crate::store::ResponseMilestones;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router().routes(routes!(export))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
    #[serde(default)]
    since_ms: Option<i64>,
    #[serde(default)]
    until_ms: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/export/incidents", tag = "stats",
    params(ExportQuery),
    responses(
        (
            status = 200,
            description = "The incidents created in the window with their milestones, as an \
                attachment: a JSON array, or CSV with one line per incident.",
            content((Vec<ResponseMilestones> = "application/json"), (String = "text/csv")),
            headers(("Content-Disposition" = String)),
        ),
        InputErrors,
        SessionErrors,
    )
)]
async fn export(
    _: Authorized<Supervisor>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let (since, until) = Window {
        since_ms: q.since_ms,
        until_ms: q.until_ms,
    }
    .bounds()?;
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv") {
        return Err(Invalid::field(
            "format",
            format_args!("must be json or csv (got {format:?})"),
        )
        .into());
    }
    let rows = state
        .dispatch
        .store
        .response_milestones(since, until, MAX_INCIDENTS)
        .await?;
    let name = format!("incidents-{since}-{until}.{format}");
    let disposition = format!("attachment; filename=\"{name}\"");
    if format == "csv" {
        Ok((
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (CONTENT_DISPOSITION, disposition),
            ],
            to_csv(&rows),
        )
            .into_response())
    } else {
        Ok(([(CONTENT_DISPOSITION, disposition)], Json(rows)).into_response())
    }
}

const COLUMNS: &[&str] = &[
    "incident_id",
    "kind",
    "priority",
    "status",
    "address",
    "lat",
    "lon",
    "created_at",
    "dispatched_at",
    "acknowledged_at",
    "arrived_at",
    "closed_at",
    "disposition",
    "units",
];

/// The rows as CSV with a header line; times as RFC 3339 UTC, empty when not reached.
pub fn to_csv(rows: &[ResponseMilestones]) -> String {
    let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for r in rows {
        let fields = [
            r.incident_id.to_string(),
            r.kind.clone(),
            r.priority.to_string(),
            r.status.clone(),
            r.address.clone().unwrap_or_default(),
            r.lat.to_string(),
            r.lon.to_string(),
            rfc3339(r.created_at_ms),
            time(r.dispatched_at_ms),
            time(r.acknowledged_at_ms),
            time(r.arrived_at_ms),
            time(r.closed_at_ms),
            r.disposition.clone().unwrap_or_default(),
            r.units.join(" "),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Quotes a field when it holds a comma, quote or line break; a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so that a spreadsheet does not run it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-24.5"), "-24.5");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_incident() {
        let row = ResponseMilestones {
            incident_id: 7,
            kind: "burglary".into(),
            priority: 1,
            status: "open".into(),
            address: Some("Aleksanterinkatu 52, Helsinki".into()),
            lat: 60.1,
            lon: 24.9,
            disposition: None,
            created_at_ms: 0,
            closed_at_ms: None,
            dispatched_at_ms: Some(1_000),
            acknowledged_at_ms: None,
            arrived_at_ms: None,
            units: vec!["P-1".into(), "P-2".into()],
        };
        let csv = to_csv(&[row]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "7,burglary,1,open,\"Aleksanterinkatu 52, Helsinki\",60.1,24.9,1970-01-01T00:00:00.000Z,1970-01-01T00:00:01.000Z,,,,,P-1 P-2"
        );
        assert_eq!(lines.len(), 3);
    }
}
