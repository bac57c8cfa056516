//! The tablet UI's HTTP surface: the embedded page and a small JSON API on loopback.
//!
//! Only `Host: 127.0.0.1|localhost|[::1]` is served (no DNS rebinding). Every API request must
//! carry the key made at this start ([`KEY_HEADER`]), which only the printed UI address holds,
//! so another local page or process cannot drive the API; a write from a browser must also
//! come from the page's own origin. No response may be framed (clickjacking).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dispatch_protocol::ReportedStatus;
use field_client::inbox::{InboxMessage, SentText};
use field_client::ClientError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{Live, Tablet};

/// Longest a state request waits for a change.
const LONG_POLL: Duration = Duration::from_secs(20);

/// The request header that carries the UI key.
pub const KEY_HEADER: &str = "x-tablet-key";

/// The page's own policy: its assets only, fetches to itself only, never inside a frame.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The UI key: made at each start, it lets only whoever was given the printed address in.
#[derive(Clone)]
pub struct UiKey(Arc<str>);

impl UiKey {
    /// A new random key (256 bits, hex).
    pub fn random() -> Self {
        Self(hex::encode(rand::random::<[u8; 32]>()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compared in constant time, so that timing does not reveal how much of a guess is right.
    fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

pub fn router(tablet: Arc<Tablet>, key: UiKey) -> Router {
    let api = Router::new()
        .route("/api/state", get(state))
        .route("/api/seen", post(seen))
        .route("/api/accept", post(accept))
        .route("/api/decline", post(decline))
        .route("/api/status", post(status))
        .route("/api/text", post(text))
        .route("/api/emergency", post(emergency))
        .layer(middleware::from_fn_with_state(key, api_guard))
        .with_state(tablet);
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
        .route(
            "/kinds.json",
            get(|| async { asset("application/json", dispatch_protocol::INCIDENT_KINDS_JSON) }),
        )
        .merge(api)
        .layer(middleware::from_fn(loopback_host_only))
        .layer(middleware::map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// On every response, refusals included: no framing, no sniffing, no referrer, and the
/// policy of the page.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
}

async fn loopback_host_only(request: Request, next: Next) -> Response {
    let host = host(request.headers());
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

/// The API's gate: the key, then for a write an `Origin` (when the browser sends one) that is
/// the page's own; and answers that are never cached.
async fn api_guard(State(key): State<UiKey>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let presented = headers
        .get(HeaderName::from_static(KEY_HEADER))
        .map_or(&[][..], HeaderValue::as_bytes);
    let mut response = if !key.matches(presented) {
        error(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong {KEY_HEADER}: open the address field-client printed"),
        )
    } else if let Some(origin) = foreign_origin(request.method(), headers) {
        error(
            StatusCode::FORBIDDEN,
            format!("origin {origin:?} may not write here"),
        )
    } else {
        next.run(request).await
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `Origin` of a write that does not come from the page itself (`http://` + its `Host`).
/// Reads, and writes from programs that send no `Origin`, pass: the key guards them.
fn foreign_origin(method: &Method, headers: &HeaderMap) -> Option<String> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let own = format!("http://{}", host(headers));
    (origin.as_bytes() != own.as_bytes())
        .then(|| String::from_utf8_lossy(origin.as_bytes()).into_owned())
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
    Json(snapshot).into_response()
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
