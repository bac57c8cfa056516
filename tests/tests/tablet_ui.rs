//! The tablet's touch UI in a real browser: `field-client run --ui` against the real server,
//! driven by Debian's chromium headless through playwright-core (tests/e2e/tablet.mjs).
//! Screenshots are kept in tests/artifacts/ (git-ignored).

use std::path::Path;

use dispatch_tests::{
    binary, enroll_with_binary, free_addr, spawn_app, within, AgentProcess, Operator,
    ServerProcess, ADMIN, ADMIN_PASSWORD,
};
use field_client::enroll_link::EnrolmentLink;
use field_client::inbox::INBOX_FILE;
use field_client::{Credential, Trust};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Runs a browser script from tests/e2e against the UI; returns the artifact directory.
async fn browser(script: &str, url: &str) -> std::path::PathBuf {
    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let run = tokio::process::Command::new("node")
        .arg(e2e.join(script))
        .arg(url)
        .arg(&artifacts)
        .current_dir(&e2e)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("browser test timed out")
        .expect("cannot run node (is tests/e2e installed with npm ci?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "browser test {script} failed:\n{stderr}"
    );
    artifacts
}

/// The key in the UI's printed address (`http://ADDR/#k=KEY`).
fn key_of(url: &str) -> String {
    let (_, key) = url
        .split_once("#k=")
        .expect("the UI address carries its key");
    assert_eq!(key.len(), 64, "{url}");
    key.to_owned()
}

/// Starts the agent with the UI on a free loopback port; returns it and the UI's URL.
async fn tablet(state: &Path) -> (AgentProcess, String) {
    let ui = free_addr().to_string();
    let mut agent = AgentProcess::spawn(state, &["--ui", &ui], &[]);
    let url = agent
        .line_matching("the UI address", |l| l.starts_with("ui "))
        .await
        .expect("agent exited")
        .trim_start_matches("ui ")
        .to_owned();
    (agent, url)
}

#[tokio::test]
async fn officer_confirms_accepts_and_reports_status_in_the_browser() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-61", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    let (mut agent, url) = tablet(state.path()).await;

    // The agency knows of a dog at the address: the order must say so.
    let (status, premise) = admin
        .post(
            "/api/premises",
            json!({ "label": "Dog", "text": "Aggressive dog in the yard", "severity": "danger",
                    "lat": 60.1690, "lon": 24.9402, "radius_m": 30 }),
        )
        .await;
    assert_eq!(status, 201, "{premise}");
    let (status, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 1, "lat": 60.1690, "lon": 24.9402,
                    "address": "Mannerheimintie 5", "notes": "Alarm, back door",
                    "callback": "+358 40 123 4567" }),
        )
        .await;
    assert_eq!(status, 201, "{incident}");
    let incident_id = incident["id"].as_i64().unwrap();
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{incident_id}/assignments"),
            json!({ "unit_id": unit_id }),
        )
        .await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_i64().unwrap();
    // Once the officer accepted in the browser, the control room adds what a caller just said.
    let operator = admin.clone();
    let update = tokio::spawn(async move {
        operator.wait_order_state(order_id, "accepted").await;
        let (status, entry) = operator
            .post(
                &format!("/api/incidents/{incident_id}/narrative"),
                json!({ "text": "Suspect armed with a knife" }),
            )
            .await;
        assert_eq!(status, 201, "{entry}");
    });

    let artifacts = browser("tablet.mjs", &url).await;
    within("the narrative line", update).await.unwrap();
    for shot in [
        "1-alert",
        "2-order",
        "2b-update",
        "3-cleared",
        "3b-emergency",
        "4-night-ko",
    ] {
        assert!(
            artifacts.join(format!("tablet-{shot}.png")).exists(),
            "{shot}"
        );
    }

    // What the officer did in the browser reached the server, in order.
    admin.wait_order_state(order_id, "completed").await;
    let kinds: Vec<String> = admin
        .timeline_kinds(incident_id)
        .await
        .into_iter()
        .filter(|k| {
            k.starts_with("order_") && k != "order_queued" && k != "order_delivered"
                || k.starts_with("unit_")
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "order_displayed",
            "order_acknowledged",
            "order_accepted",
            "unit_en_route",
            "unit_on_scene",
            "unit_cleared",
            "order_completed"
        ]
    );
    let (_, texts) = admin.get(&format!("/api/units/{unit_id}/messages")).await;
    assert!(
        texts
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["direction"] == "from_unit"
                && t["text"] == "Scene cleared, returning to patrol"),
        "{texts}"
    );
    // The held emergency control raised one emergency; the short press none.
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let emergencies: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "officer_emergency")
        .collect();
    assert_eq!(emergencies.len(), 1, "{audit}");
    assert_eq!(emergencies[0]["unit_id"], unit_id);
    let _ = within("the agent to stop", agent.child.kill()).await;
}

#[tokio::test]
async fn texts_broadcasts_and_withdrawn_orders_in_the_browser() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-63", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    let (mut agent, url) = tablet(state.path()).await;

    let (status, text) = admin
        .post(
            &format!("/api/units/{unit_id}/messages"),
            json!({ "text": "Call the duty officer" }),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    let (status, broadcast) = admin
        .post(
            "/api/broadcasts",
            json!({ "target": { "unit_ids": [unit_id] }, "urgency": "Immediate",
                    "severity": "Severe", "certainty": "Observed",
                    "headline": "Stolen van ABC-123", "description": "White Ford Transit",
                    "instruction": "Report sightings, do not pursue" }),
        )
        .await;
    assert_eq!(status, 201, "{broadcast}");
    let (_, order_id) = admin.dispatch_to(unit_id, "Kaisaniemenkatu 3").await;
    // The tablet holds the order before it is withdrawn.
    agent
        .line_matching("the order", |l| {
            l.contains(&format!("\"order_id\":{order_id}"))
        })
        .await
        .expect("agent exited");
    let (status, cancelled) = admin
        .post(
            &format!("/api/orders/{order_id}/cancel"),
            json!({ "reason": "duplicate call" }),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");

    browser("tablet_messages.mjs", &url).await;

    let (_, texts) = admin.get(&format!("/api/units/{unit_id}/messages")).await;
    let texts = texts.as_array().unwrap().clone();
    assert!(
        texts
            .iter()
            .any(|t| t["direction"] == "from_unit" && t["text"] == "Calling now"),
        "{texts:?}"
    );
    let to_unit = texts.iter().find(|t| t["direction"] == "to_unit").unwrap();
    within("the text to be acknowledged on the server", async {
        loop {
            let (_, texts) = admin.get(&format!("/api/units/{unit_id}/messages")).await;
            let acked = texts
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == to_unit["id"] && !t["acknowledged_at_ms"].is_null());
            if acked {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, b) = admin
        .get(&format!("/api/broadcasts/{}", broadcast["id"]))
        .await;
    assert_eq!(b["counts"]["acknowledged"], 1, "{b}");
    let _ = agent.child.kill().await;
}

/// Enrolment from the link the server issues (scanned), then revocation: when the unit is enrolled on another
/// tablet, the server closes this one with 4003 and the agent erases its credential and inbox
/// at once; the UI says so and refuses actions.
#[tokio::test]
async fn enrolment_by_link_and_revocation_erases_the_tablet() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-62", &["patrol"]).await;
    // The link exactly as the admin screen shows it: the server's answer, scanned as it is.
    let (status, issued) = admin
        .post(&format!("/api/units/{unit_id}/enrolment-code"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["fingerprint"], app.fingerprint.as_str());
    let link = issued["link"]
        .as_str()
        .expect("the server knows its origin")
        .to_owned();
    let parsed = EnrolmentLink::parse(&link).unwrap();
    assert_eq!(
        (
            parsed.server_url.as_str(),
            parsed.code.as_str(),
            parsed.pin.as_str()
        ),
        (
            app.base.as_str(),
            issued["code"].as_str().unwrap(),
            app.fingerprint.as_str()
        )
    );
    assert!(
        issued["qr_svg"].as_str().unwrap().contains("<svg"),
        "{issued}"
    );
    let state = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(binary("field-client"))
        .args(["enroll-link", &link, "--state-dir"])
        .arg(state.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "P-62");
    let mode = std::fs::metadata(Credential::path(state.path())).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let ui = free_addr().to_string();
    let mut agent = AgentProcess::spawn(state.path(), &["--ui", &ui], &[]);
    let url = agent
        .line_matching("the UI address", |l| l.starts_with("ui "))
        .await
        .expect("agent exited");
    let key = key_of(&url);
    let (_, order_id) = admin.dispatch_to(unit_id, "Unioninkatu 1").await;
    agent
        .line_matching("the order", |l| {
            l.contains(&format!("\"order_id\":{order_id}"))
        })
        .await
        .expect("agent exited");
    let http = keyed_client(&key);
    let state_url = format!("http://{ui}/api/state");
    let before: Value = http
        .get(&state_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["online"], true, "{before}");
    assert_eq!(before["messages"].as_array().unwrap().len(), 1, "{before}");

    // A new tablet is enrolled for the unit: this one is revoked.
    let code = admin.enrolment_code(unit_id).await;
    field_client::enroll(
        &app.base,
        &Trust::pin(&app.fingerprint).unwrap(),
        &code,
        None,
    )
    .await
    .unwrap();
    let after = within("the UI to show the revocation", async {
        loop {
            let s: Value = http
                .get(&state_url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if !s["revoked"].is_null() {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        after["revoked"].as_str().unwrap().starts_with("4003"),
        "{after}"
    );
    assert_eq!(after["messages"], json!([]), "{after}");
    assert!(!Credential::exists(state.path()));
    assert!(!state.path().join(INBOX_FILE).exists());
    let refused = http
        .post(format!("http://{ui}/api/accept"))
        .json(&json!({ "order_id": order_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 410);
    // Only loopback host names are served (no DNS rebinding).
    let foreign = http
        .get(&state_url)
        .header("host", "evil.example:80")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let _ = agent.child.kill().await;
}

/// The offline indicator in the browser: the server dies, the officer reports en route and on
/// scene (shown as queued), the server comes back and both reach it, in order, once.
#[tokio::test]
async fn offline_indicator_and_queue_in_the_browser() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let unit_id = admin.create_unit("P-64", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&server.base, &server.fingerprint(), &code).await;
    let (mut agent, url) = tablet(state.path()).await;
    let (incident_id, order_id) = admin.dispatch_to(unit_id, "Pohjoisesplanadi 11").await;

    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let mut script = tokio::process::Command::new("node")
        .arg(e2e.join("tablet_offline.mjs"))
        .arg(&url)
        .arg(&artifacts)
        .current_dir(&e2e)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot run node (is tests/e2e installed with npm ci?)");
    let mut to_script = script.stdin.take().unwrap();
    let mut from_script = tokio::io::BufReader::new(script.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(std::time::Duration::from_secs(120), from_script.next_line())
            .await
            .expect("browser script timed out")
            .unwrap()
            .unwrap_or_default()
    };
    assert_eq!(next().await, "accepted");
    admin.wait_order_state(order_id, "accepted").await;
    server.kill9().await;
    to_script.write_all(b"offline\n").await.unwrap();
    assert_eq!(next().await, "queued");
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    to_script.write_all(b"online\n").await.unwrap();
    assert_eq!(next().await, "ok");
    drop(to_script);
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), script.wait())
        .await
        .expect("browser script did not exit")
        .unwrap();
    assert!(status.success());

    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let kinds: Vec<String> = admin
        .timeline_kinds(incident_id)
        .await
        .into_iter()
        .filter(|k| k.starts_with("unit_"))
        .collect();
    assert_eq!(kinds, ["unit_en_route", "unit_on_scene"]);
    let _ = agent.child.kill().await;
    server.kill9().await;
}

/// A client that sends the UI key on every request.
fn keyed_client(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-tablet-key", key.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The UI's API answers only requests with the key of this start, and writes only from the
/// page's own origin; refused requests change nothing. No response may be framed.
#[tokio::test]
async fn the_ui_api_needs_the_key_and_no_page_may_frame_it() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-65", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    let (mut agent, url) = tablet(state.path()).await;
    let key = key_of(&url);
    let page = url.split_once('#').unwrap().0.to_owned();
    let (_, order_id) = admin.dispatch_to(unit_id, "Unioninkatu 3").await;
    agent
        .line_matching("the order", |l| {
            l.contains(&format!("\"order_id\":{order_id}"))
        })
        .await
        .expect("agent exited");

    let plain = reqwest::Client::new();
    let frame_proof = |r: &reqwest::Response| {
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    };
    // The page itself needs no key, and says it may not be framed.
    let index = plain.get(&page).send().await.unwrap();
    assert_eq!(index.status(), 200);
    frame_proof(&index);

    // Without the key, or with another, nothing is read.
    let state_url = format!("{page}api/state");
    for attempt in [
        plain.get(&state_url),
        keyed_client(&"0".repeat(64)).get(&state_url),
        keyed_client(&key[..63]).get(&state_url),
    ] {
        let refused = attempt.send().await.unwrap();
        assert_eq!(refused.status(), 401);
        frame_proof(&refused);
        assert_eq!(refused.headers()["cache-control"], "no-store");
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("x-tablet-key"),
            "{body}"
        );
    }
    // Nor written: an accept without the key, or from another origin, changes nothing.
    let accept_url = format!("{page}api/accept");
    let accept = json!({ "order_id": order_id });
    let refused = plain.post(&accept_url).json(&accept).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let keyed = keyed_client(&key);
    let refused = keyed
        .post(&accept_url)
        .header("origin", "http://evil.example")
        .json(&accept)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let snapshot: Value = keyed
        .get(&state_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["pending"], 0, "{snapshot}");
    assert!(snapshot["messages"][0]["decision"].is_null(), "{snapshot}");
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_ne!(order["state"], "accepted", "{order}");

    // With the key, from the page's origin, the same accept goes through.
    let origin = page.trim_end_matches('/').to_owned();
    let accepted = keyed
        .post(&accept_url)
        .header("origin", origin)
        .json(&accept)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.headers()["cache-control"], "no-store");
    frame_proof(&accepted);
    admin.wait_order_state(order_id, "accepted").await;
    let _ = agent.child.kill().await;
}
