//! The tablet UI's HTTP surface: the embedded page and a small JSON API on loopback.
//!
//! Only `Host: 127.0.0.1|localhost|[::1]` is served (no DNS rebinding) and every write is a
//! JSON POST (a cross-site form cannot send one without a CORS preflight, which is refused).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dispatch_protocol::ReportedStatus;
use field_client::inbox::{InboxMessage, SentText};
use field_client::ClientError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Live, Tablet};

/// Longest a state request waits for a change.
const LONG_POLL: Duration = Duration::from_secs(20);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

pub fn router(tablet: Arc<Tablet>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/state", get(state))
        .route("/api/seen", post(seen))
        .route("/api/accept", post(accept))
        .route("/api/decline", post(decline))
        .route("/api/status", post(status))
        .route("/api/text", post(text))
        .route("/api/emergency", post(emergency))
        .layer(middleware::from_fn(loopback_host_only))
        .with_state(tablet)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
                ),
            ),
        ],
        body,
    )
        .into_response()
}

async fn loopback_host_only(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    if matches!(name, "127.0.0.1" | "localhost" | "[::1]") {
        next.run(request).await
    } else {
        error(
            StatusCode::FORBIDDEN,
            format!("host {host:?} is not served"),
        )
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn client_error(e: ClientError) -> Response {
    match e {
        ClientError::Invalid(invalid) => error(StatusCode::BAD_REQUEST, invalid.to_string()),
        other => {
            tracing::error!("tablet UI: {other}");
            error(StatusCode::INTERNAL_SERVER_ERROR, other.to_string())
        }
    }
}

/// The refusal of a write once the device is revoked.
fn refused(tablet: &Tablet) -> Option<Response> {
    tablet.is_revoked().then(|| {
        error(
            StatusCode::GONE,
            "this device was revoked or refused; enrol it again".into(),
        )
    })
}

#[derive(Deserialize)]
struct After {
    after: Option<u64>,
}

#[derive(Serialize)]
struct Snapshot {
    version: u64,
    call_sign: String,
    #[serde(flatten)]
    live: Live,
    /// Actions stored but not yet confirmed by the server (sent when back online).
    pending: usize,
    /// Those actions as the frames that will be sent, oldest first.
    pending_actions: Vec<serde_json::Value>,
    messages: Vec<InboxMessage>,
    sent_texts: Vec<SentText>,
}

async fn state(State(tablet): State<Arc<Tablet>>, Query(q): Query<After>) -> Response {
    let mut changes = tablet.subscribe();
    if let Some(after) = q.after {
        if *changes.borrow_and_update() <= after {
            let _ = tokio::time::timeout(LONG_POLL, changes.changed()).await;
        }
    }
    let version = *changes.borrow();
    let live = tablet.live();
    let snapshot = if live.revoked.is_some() {
        Snapshot {
            version,
            call_sign: tablet.call_sign.clone(),
            live,
            pending: 0,
            pending_actions: Vec::new(),
            messages: Vec::new(),
            sent_texts: Vec::new(),
        }
    } else {
        let c = &tablet.client;
        let read = async {
            Ok::<_, ClientError>((
                c.pending_actions().await?,
                c.messages().await?,
                c.sent_texts().await?,
            ))
        };
        match read.await {
            Ok((pending, messages, sent_texts)) => Snapshot {
                version,
                call_sign: tablet.call_sign.clone(),
                live,
                pending: pending.len(),
                pending_actions: pending
                    .iter()
                    .filter_map(|p| serde_json::from_str(&p.frame).ok())
                    .collect(),
                messages,
                sent_texts,
            },
            Err(e) => return client_error(e),
        }
    };
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(snapshot),
    )
        .into_response()
}

/// Answer to a write: the action id, or none when there was nothing new to send.
fn queued(tablet: &Tablet, action_id: Option<String>) -> Response {
    tablet.bump();
    Json(json!({ "action_id": action_id })).into_response()
}

#[derive(Deserialize)]
struct Seen {
    message_id: String,
    /// False: the alert is on screen (`displayed`); true: the officer tapped it.
    #[serde(default)]
    acknowledge: bool,
}

async fn seen(State(tablet): State<Arc<Tablet>>, Json(body): Json<Seen>) -> Response {
    if let Some(r) = refused(&tablet) {
        return r;
    }
    let c = &tablet.client;
    let result = if body.acknowledge {
        c.acknowledge(&body.message_id).await
    } else {
        c.displayed(&body.message_id).await
    };
    result.map_or_else(client_error, |id| queued(&tablet, id))
}

#[derive(Deserialize)]
struct OrderRef {
    order_id: i64,
}

async fn accept(State(tablet): State<Arc<Tablet>>, Json(body): Json<OrderRef>) -> Response {
    if let Some(r) = refused(&tablet) {
        return r;
    }
    tablet
        .client
        .accept(body.order_id)
        .await
        .map_or_else(client_error, |id| queued(&tablet, Some(id)))
}

#[derive(Deserialize)]
struct Decline {
    order_id: i64,
    reason: String,
    #[serde(default)]
    detail: Option<String>,
}

async fn decline(State(tablet): State<Arc<Tablet>>, Json(body): Json<Decline>) -> Response {
    if let Some(r) = refused(&tablet) {
        return r;
    }
    tablet
        .client
        .decline(body.order_id, &body.reason, body.detail.as_deref())
        .await
        .map_or_else(client_error, |id| queued(&tablet, Some(id)))
}

#[derive(Deserialize)]
struct StatusBody {
    status: ReportedStatus,
    order_id: Option<i64>,
}

async fn status(State(tablet): State<Arc<Tablet>>, Json(body): Json<StatusBody>) -> Response {
    if let Some(r) = refused(&tablet) {
        return r;
    }
    match tablet.client.status(body.status, body.order_id).await {
        Ok(id) => {
            let unit_status = match (body.status, body.order_id) {
                (ReportedStatus::Cleared, _) => "available",
                (s, _) => s.as_str(),
            };
            tablet.set_unit_status(unit_status);
            queued(&tablet, Some(id))
        }
        Err(e) => client_error(e),
    }
}

#[derive(Deserialize)]
struct TextBody {
    text: String,
    incident_id: Option<i64>,
}

async fn text(State(tablet): State<Arc<Tablet>>, Json(body): Json<TextBody>) -> Response {
    if let Some(r) = refused(&tablet) {
        return r;
    }
    tablet
        .client
        .text(body.text, body.incident_id)
        .await
        .map_or_else(client_error, |id| queued(&tablet, Some(id)))
}

/// The officer held the emergency control: sent with the newest position, and resent until
/// the server records it (also across restarts of this client).
async fn emergency(
    State(tablet): State<Arc<Tablet>>,
    Json(_): Json<serde_json::Value>,
) -> Response {
    if let Some(r) = refused(&tablet) {
        return r;
    }
    tablet
        .client
        .emergency()
        .await
        .map_or_else(client_error, |id| queued(&tablet, Some(id)))
}
