//! The OpenAPI document (`GET /api/openapi.json`) checked against the running server by
//! schemathesis (installed by `make test` from PyPI): every operation is called with generated
//! requests, valid and invalid, and no answer may be a server error or differ from the document
//! (status, content type, body schema).

use std::process::Stdio;

use dispatch_tests::{
    helsinki_map, session_cookie, spawn_app_with, Operator, ADMIN, ADMIN_PASSWORD,
};
use reqwest::StatusCode;

/// Generated requests per operation and phase: enough to reach every documented refusal, few
/// enough that the run takes a minute or two on a busy two-core machine.
const EXAMPLES: &str = "40";

/// Operations left out of the run, and why. Each would end or change the session the run
/// uses, after which every later call would only test the 401:
/// - `POST /api/logout`, `POST /api/sessions/{id}/end`: end the run's session (ids are small);
/// - `POST /api/password`: ends the account's other sessions;
/// - `POST /api/users/{id}/disable`, `reset-password`, `role`, `second-factor/reset`: end the
///   sessions of account `id`, and the admin is account 1;
/// - `POST /api/me/second-factor` and `.../confirm`: enrol the admin's second factor, which its
///   next login would then need.
///
/// The two WebSocket upgrades (`/api/console/live`, `/api/device/channel`) are left out because
/// an upgrade is not an HTTP exchange that a schema can describe; their own tests drive them.
const EXCLUDED: &str = r"^/api/(logout|password|sessions/\{id\}/end|users/\{id\}/(disable|reset-password|role|second-factor/reset)|me/second-factor(/confirm)?|console/live|device/channel)$";

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_matches_the_openapi_document() {
    // The generated `POST /api/login` calls would meet the default throttle (20 a minute) and
    // get 429s that hide what the login answers. The map brings the geocoder, the tiles and the
    // road graph into reach.
    let app = spawn_app_with(|c| {
        c.accounts.login_attempts_per_minute = 10_000;
        c.map = Some(helsinki_map());
    })
    .await;

    let (status, body) = Operator::anonymous(&app.base)
        .get("/api/openapi.json")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");

    let (status, document) = app.admin().await.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{document}");
    assert_eq!(document["openapi"], "3.1.0");
    assert!(
        document["paths"]["/api/incidents/{id}"]["patch"].is_object(),
        "the document describes the API"
    );
    let path = app.dir.path().join("openapi.json");
    std::fs::write(&path, document.to_string()).unwrap();

    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let run = tokio::process::Command::new("python3")
        .args(["-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"])
        .arg("run")
        .arg(&path)
        .args(["--url", &app.base])
        .args(["--header", &format!("Cookie: {cookie}")])
        .args(["--tls-verify", "false"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--exclude-path-regex", EXCLUDED])
        .args(["--max-examples", EXAMPLES])
        // Deterministic: the same requests on every run, so a failure is a regression, not luck.
        .args(["--seed", "1", "--generation-deterministic", "--workers", "1"])
        // The cookie above is the credential; generated ones would only test the 401.
        .args(["--generation-with-security-parameters", "false"])
        .current_dir(app.dir.path())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("python3 runs (schemathesis is installed by `make test`)");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found answers that are server errors or differ from the document:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    app.stop().await;
}
