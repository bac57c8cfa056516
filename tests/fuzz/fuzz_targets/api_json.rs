//! The JSON bodies of the main console routes, sent through the real router in process (no
//! socket, so no login throttling), with an admin's session cookie. The first byte picks the
//! route, the rest is the body. Property: a body is answered, never with a server error (5xx)
//! other than the storage answers 503 and 507, and never by a panic or a hang.
//!
//! One server per fuzzing process, built once: a fresh data directory under `$TMPDIR`, an admin
//! logged in, one unit and one incident for the routes that name them.

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use dispatch_server::domain::{Actor, Role};
use dispatch_server::{Application, Config};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin";
const PASSWORD: &str = "correct-horse-battery-fuzz";

/// The routes whose bodies are fuzzed: method, path (`{incident}` and `{unit}` are replaced by
/// the ids made at start) and content type. Index = first input byte minus `a`, modulo the
/// count, so corpus files read `a{...}`, `b{...}`, ….
const ROUTES: [(&str, &str, &str); 13] = [
    ("POST", "/api/incidents", "application/json"),
    ("PATCH", "/api/incidents/{incident}", "application/json"),
    (
        "POST",
        "/api/incidents/{incident}/assignments",
        "application/json",
    ),
    (
        "POST",
        "/api/incidents/{incident}/narrative",
        "application/json",
    ),
    (
        "POST",
        "/api/incidents/{incident}/callers",
        "application/json",
    ),
    ("POST", "/api/broadcasts", "application/json"),
    ("POST", "/api/units", "application/json"),
    ("POST", "/api/units/within", "application/json"),
    ("POST", "/api/units/{unit}/messages", "application/json"),
    ("POST", "/api/users", "application/json"),
    ("POST", "/api/premises", "application/json"),
    ("POST", "/api/premises/import", "application/geo+json"),
    ("POST", "/api/premises/import", "text/csv"),
];

struct Server {
    runtime: tokio::runtime::Runtime,
    router: Router,
    cookie: String,
    incident: i64,
    unit: i64,
    /// Holds the data directory for the life of the process.
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        let (router, cookie, incident, unit) = runtime.block_on(async {
            let mut config = Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                data_dir: dir.path().join("data"),
                ..Config::default()
            };
            config.accounts.second_factor_roles.clear();
            let app = Application::build(config).await.expect("server builds");
            let state = app.state().clone();
            let hash = dispatch_server::auth::hash_password(PASSWORD).unwrap();
            state
                .dispatch
                .store
                .create_operator(ADMIN, &hash, Role::Admin, &Actor::System, None)
                .await
                .expect("admin created");
            let router = dispatch_server::api::router(state);
            let login = serde_json::json!({ "username": ADMIN, "password": PASSWORD });
            let response = send(
                &router,
                "POST",
                "/api/login",
                "application/json",
                "",
                login.to_string(),
            )
            .await;
            assert_eq!(response.0, StatusCode::OK, "login: {}", response.2);
            let cookie = response
                .1
                .split(';')
                .next()
                .expect("a session cookie")
                .to_owned();
            let unit = created_id(
                send(
                    &router,
                    "POST",
                    "/api/units",
                    "application/json",
                    &cookie,
                    r#"{"call_sign":"FUZZ-1","kind":"patrol_car","capabilities":["patrol"]}"#,
                )
                .await,
            );
            let incident = created_id(
                send(
                    &router,
                    "POST",
                    "/api/incidents",
                    "application/json",
                    &cookie,
                    r#"{"kind":"burglary","priority":2,"lat":60.17,"lon":24.94}"#,
                )
                .await,
            );
            (router, cookie, incident, unit)
        });
        Self {
            runtime,
            router,
            cookie,
            incident,
            unit,
            _dir: dir,
        }
    }
}

/// Status, `Set-Cookie` and body text of one request through the router.
async fn send(
    router: &Router,
    method: &str,
    path: &str,
    content_type: &str,
    cookie: &str,
    body: impl Into<Body>,
) -> (StatusCode, String, String) {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header(header::CONTENT_TYPE, content_type);
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .expect("the router is infallible");
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a readable body");
    (
        status,
        set_cookie,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn created_id((status, _, body): (StatusCode, String, String)) -> i64 {
    assert!(
        status.is_success(),
        "set-up request refused: {status} {body}"
    );
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["id"].as_i64().expect("an id in the answer")
}

static SERVER: OnceLock<Server> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let server = SERVER.get_or_init(Server::start);
    let (method, path, content_type) =
        ROUTES[usize::from(selector.wrapping_sub(b'a')) % ROUTES.len()];
    let path = path
        .replace("{incident}", &server.incident.to_string())
        .replace("{unit}", &server.unit.to_string());
    let (status, _, answer) = server.runtime.block_on(send(
        &server.router,
        method,
        &path,
        content_type,
        &server.cookie,
        body.to_vec(),
    ));
    assert!(
        !status.is_server_error()
            || status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::INSUFFICIENT_STORAGE,
        "{method} {path} answered {status}: {answer}"
    );
});
