//! Exports for supervisors: every incident of a window with its response milestones, as JSON
//! or as CSV (RFC 4180 quoting) for spreadsheets; and the whole open-format export
//! ([`crate::export`]) of a window as one tar download.

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
use crate::domain::Invalid;
use crate::export::records::Time;
use crate::store::ResponseMilestones;

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(export))
        .routes(routes!(archive))
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
    let name = attachment_name("incidents", Some(since), until, format);
    let disposition = format!("attachment; filename=\"{name}\"");
    if format == "csv" {
        Ok((
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (CONTENT_DISPOSITION, disposition),
            ],
            crate::export::statistics::to_csv(&rows),
        )
            .into_response())
    } else {
        Ok(([(CONTENT_DISPOSITION, disposition)], Json(rows)).into_response())
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ArchiveQuery {
    /// Only incidents, broadcasts, texts, events and positions from this time (ms since the
    /// Unix epoch); none: from the beginning.
    #[serde(default)]
    since_ms: Option<i64>,
    /// Only those until this time (inclusive); none: to now.
    #[serde(default)]
    until_ms: Option<i64>,
}

/// The export of a window (everything when no bound is given) as
/// `dispatch-export_<from>_to_<until>.tar`: the
/// files are written into a private directory beside the database first (so a failure is an
/// error answer, not a cut download), recorded as `records_exported`, then streamed and removed.
#[utoipa::path(
    get, path = "/api/export/archive", tag = "stats",
    params(ArchiveQuery),
    responses(
        (
            status = 200,
            description = "The open-format export of the window (docs/operations.md, *Export and \
                import*) as a tar attachment `dispatch-export_<from>_to_<until>.tar` (UTC, \
                `2026-12-05T0341Z`; `start` for an open start) of the directory \
                `dispatch-export/`.",
            content((Vec<u8> = "application/x-tar")),
            headers(("Content-Disposition" = String)),
        ),
        InputErrors,
        SessionErrors,
        (
            status = 409,
            description = "`export_unavailable`: the store is PostgreSQL (`[store] backend`); \
                the full export reads the SQLite file.",
            body = openapi::ErrorBody,
        ),
        (
            status = 507,
            description = "`storage_full`: the disk is full; the export could not be recorded.",
            body = openapi::ErrorBody,
        ),
    )
)]
async fn archive(
    supervisor: Authorized<Supervisor>,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ArchiveQuery>,
) -> Result<Response, ApiError> {
    if let (Some(since), Some(until)) = (q.since_ms, q.until_ms) {
        if since > until {
            return Err(Invalid::field("until_ms", "must not be before since_ms").into());
        }
    }
    let window = crate::export::Window {
        from: q.since_ms.map(Time),
        until: q.until_ms.map(Time),
    };
    if state.config.store.backend == crate::config::Backend::Postgres {
        return Err(ApiError::Conflict {
            code: "export_unavailable",
            message: "the full export reads the SQLite file, and this server's store is \
                      PostgreSQL"
                .into(),
        });
    }
    let db = state.config.database_path();
    let staging = state
        .config
        .data_dir
        .join(format!("export-{}", crate::auth::random_hex(8)));
    let dir = staging.clone();
    let exported = tokio::task::spawn_blocking(move || crate::export::export(&db, &dir, window))
        .await
        .map_err(anyhow::Error::from)
        .and_then(|written| written);
    let manifest = match exported {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            tracing::error!("export failed: {e:#}");
            return Err(ApiError::StorageUnavailable(
                "the export could not be written".to_owned(),
            ));
        }
    };
    let detail = serde_json::json!({
        "from_ms": q.since_ms,
        "until_ms": q.until_ms,
        "files": manifest.files.len() + 1,
    });
    if let Err(e) = state
        .dispatch
        .store
        .record_export(&supervisor.actor(), detail)
        .await
    {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e.into());
    }
    let name = attachment_name(
        "dispatch-export",
        q.since_ms,
        q.until_ms.unwrap_or(manifest.exported_at.0),
        "tar",
    );
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    tokio::task::spawn_blocking(move || {
        let mut sender = ChannelWriter(tx.clone());
        let written = {
            let mut tar = tar::Builder::new(&mut sender);
            tar.append_dir_all("dispatch-export", &staging)
                .and_then(|()| tar.finish())
        };
        if let Err(e) = written {
            tracing::error!("export download cut: {e}");
            let _ = tx.blocking_send(Err(e));
        }
        let _ = std::fs::remove_dir_all(&staging);
    });
    let body = axum::body::Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    Ok((
        [
            (CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Hands what is written to the response body; fails once the client has gone.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The file name of an export of `[from, until]`: `{prefix}_{from}_to_{until}.{extension}` with
/// UTC times to the minute and no colons (`2026-12-05T0341Z`), `start` for an open start.
fn attachment_name(prefix: &str, from: Option<i64>, until: i64, extension: &str) -> String {
    let time = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(
                || "start".to_owned(),
                |t| t.format("%Y-%m-%dT%H%MZ").to_string(),
            )
    };
    format!(
        "{prefix}_{}_to_{}.{extension}",
        time(from),
        time(Some(until))
    )
}

#[cfg(test)]
mod tests {
    use super::attachment_name;

    #[test]
    fn export_names_carry_a_readable_range() {
        assert_eq!(
            attachment_name(
                "incidents",
                Some(1_796_441_502_282),
                1_796_527_902_282,
                "csv"
            ),
            "incidents_2026-12-05T0331Z_to_2026-12-06T0331Z.csv"
        );
        assert_eq!(
            attachment_name("dispatch-export", None, 1_796_441_502_282, "tar"),
            "dispatch-export_start_to_2026-12-05T0331Z.tar"
        );
        assert_eq!(
            attachment_name("incidents", Some(i64::MIN), 0, "json"),
            "incidents_start_to_1970-01-01T0000Z.json"
        );
    }
}
