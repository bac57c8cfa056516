//! `GET /metrics` on a real server: refused without the configured token (and when none is
//! configured), and with it an exposition that counts what happened: an order committed, handed
//! to a connected tablet's socket and acknowledged, the tablet and a console connected, and an
//! escalation step.

use dispatch_tests::{
    act, console_socket, enrolled, next_frame, say_hello, send_text, session_cookie, spawn_app,
    spawn_app_with, within, Operator,
};
use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "a-scraper-secret-of-at-least-32-characters";

/// The exposition with `token` as the bearer.
async fn scrape(base: &str, token: &str) -> (StatusCode, Value) {
    let op = Operator::anonymous(base);
    Operator::reply(
        op.http
            .get(format!("{base}/metrics"))
            .header("Authorization", format!("Bearer {token}")),
    )
    .await
}

/// The value of sample `name` (labels as written) in the exposition `text`.
fn sample(text: &Value, name: &str) -> Option<f64> {
    text.as_str()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Scrapes until `check` holds of the exposition; returns it.
async fn scrape_until(base: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    within(what, async {
        loop {
            let (status, text) = scrape(base, TOKEN).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            if check(&text) {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The family a sample's or metric's name belongs to (`x_total`, `x_bucket`, `x_sum` and
/// `x_count` are samples of `x`).
fn family(name: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

/// The `dispatch_…` names in `text`, as families.
fn names_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("dispatch_"))
        .map(|w| family(w).to_owned())
        .collect()
}

/// docs/operations.md (*Metrics*) documents exactly the families the server serves, and the
/// Grafana dashboard in docs/ queries none that it does not.
fn names_are_those_served(exposition: &Value) {
    let served: BTreeSet<String> = exposition
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_owned)
        .collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let operations = std::fs::read_to_string(docs.join("operations.md")).unwrap();
    let section = operations
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/operations.md has a Metrics section");
    let documented: BTreeSet<String> = section
        .lines()
        .filter(|l| l.starts_with("| `dispatch_"))
        .flat_map(names_in)
        .collect();
    assert_eq!(
        documented, served,
        "docs/operations.md, Metrics, against the exposition"
    );
    let dashboard = std::fs::read_to_string(docs.join("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let queried: BTreeSet<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .flat_map(|t| names_in(t["expr"].as_str().unwrap()))
        .collect();
    assert!(!queried.is_empty());
    let unknown: Vec<_> = queried.difference(&served).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries {unknown:?}, which are not served"
    );
}

#[tokio::test]
async fn metrics_are_refused_without_the_token_and_off_when_none_is_configured() {
    let app = spawn_app_with(|c| c.metrics_token = Some(TOKEN.into())).await;
    let admin = app.admin().await;
    let (status, body) = admin.get("/metrics").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a session is not the token: {body}"
    );
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = scrape(&app.base, &format!("{TOKEN}x")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("metrics_token"),
        "{body}"
    );
    app.stop().await;

    let app = spawn_app().await;
    let (status, body) = scrape(&app.base, TOKEN).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("off"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_exposition_counts_an_order_handed_to_a_connected_tablet() {
    let app = spawn_app_with(|c| {
        c.metrics_token = Some(TOKEN.into());
        // No receipt within a second escalates (the tablet below never acknowledges order 2).
        c.escalation.receipt_secs = [1; 5];
        c.escalation.sweep_millis = 100;
    })
    .await;
    let admin = app.admin().await;
    let (unit, device, token) = enrolled(&app, &admin, "M-1").await;
    let (mut ws, _) = say_hello(&app, device, &token, None, 0).await;
    // An answered action: the session has read its (empty) outbox and waits for news.
    let status = json!({ "type": "status", "action_id": "m-1", "status": "available" });
    assert_eq!(act(&mut ws, status).await["type"], "done");
    let cookie = session_cookie(&app.base, "admin", dispatch_tests::ADMIN_PASSWORD).await;
    let _console = console_socket(app.addr, &app.fingerprint, Some(&cookie), None)
        .await
        .unwrap();
    scrape_until(&app.base, "the tablet and the console connected", |m| {
        sample(m, "dispatch_devices_connected") == Some(1.0)
            && sample(m, "dispatch_consoles_connected") == Some(1.0)
    })
    .await;

    let (_, order) = admin.dispatch_to(unit, "Mannerheimintie 1").await;
    let delivered = next_frame(&mut ws).await;
    assert_eq!(delivered["type"], "deliver", "{delivered}");
    send_text(
        &mut ws,
        &json!({ "type": "ack", "upto": delivered["seq"] }).to_string(),
    )
    .await;
    admin.wait_order_state(order, "delivered").await;
    let m = scrape_until(&app.base, "the order delivered", |m| {
        sample(m, "dispatch_orders{state=\"delivered\"}") == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&m, "dispatch_orders{state=\"queued\"}"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "dispatch_delivery_duration_seconds_count"),
        Some(1.0),
        "the order went from its commit to the socket once: {m}"
    );
    assert!(
        sample(&m, "dispatch_commit_batch_writes_count").unwrap() >= 3.0,
        "{m}"
    );
    assert!(
        sample(&m, "dispatch_commit_duration_seconds_count").unwrap() >= 3.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "dispatch_commit_failed_batches_total"),
        Some(0.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            &format!("dispatch_store{{backend=\"{}\"}}", app.backend())
        ),
        Some(1.0),
        "{m}"
    );
    names_are_those_served(&m);

    // The tablet goes away; a second unit's order gets no receipt and escalates.
    drop(ws);
    let (unit2, _, _) = enrolled(&app, &admin, "M-2").await;
    admin.dispatch_to(unit2, "Mannerheimintie 2").await;
    scrape_until(&app.base, "the escalation counted", |m| {
        sample(m, "dispatch_escalations_total{stage=\"no_receipt\"}") >= Some(1.0)
            && sample(m, "dispatch_devices_connected") == Some(0.0)
    })
    .await;
    app.stop().await;
}
