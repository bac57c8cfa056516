//! The tablet's touch UI in a real browser: `field-client run --ui` against the real server,
//! driven by Debian's chromium headless through playwright-core (tests/e2e/tablet.mjs).
//! Screenshots are kept in tests/artifacts/ (git-ignored).

use std::path::Path;

use dispatch_tests::{enroll_with_binary, free_addr, spawn_app, within, AgentProcess};
use serde_json::json;

#[tokio::test]
async fn officer_confirms_accepts_and_reports_status_in_the_browser() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-61", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    let ui = free_addr().to_string();
    let mut agent = AgentProcess::spawn(state.path(), &["--ui", &ui], &[]);
    let url = agent
        .line_matching("the UI address", |l| l.starts_with("ui "))
        .await
        .expect("agent exited")
        .trim_start_matches("ui ")
        .to_owned();

    let (status, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "burglary", "priority": 1, "lat": 60.1690, "lon": 24.9402,
                    "address": "Mannerheimintie 5", "notes": "Alarm, back door" }),
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

    let e2e = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let run = tokio::process::Command::new("node")
        .arg(e2e.join("tablet.mjs"))
        .arg(&url)
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
        "browser test failed:\n{stderr}"
    );
    for shot in ["1-alert", "2-order", "3-cleared", "4-night-ko"] {
        assert!(
            artifacts.join(format!("tablet-{shot}.png")).exists(),
            "{shot}"
        );
    }

    // What the officer did in the browser reached the server.
    admin.wait_order_state(order_id, "completed").await;
    let kinds = admin.timeline_kinds(incident_id).await;
    let position = |k: &str| kinds.iter().position(|x| x.contains(k));
    assert!(position("accepted").is_some(), "{kinds:?}");
    let _ = within("the agent to stop", agent.child.kill()).await;
}
