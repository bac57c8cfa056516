//! The dispatcher console in a real browser (playwright-core driving Debian's chromium
//! headless): log in, create an incident by address, dispatch the recommended unit, see a
//! simulated field client acknowledge it, open the timeline; an escalation shown as a banner
//! with a tone until acknowledged; the queue ordered by attention, answered in one click; and an
//! officer's emergency first in the banner with its incident selected.
//! The scripts fail on any request that is not to our own server. Needs the built console
//! (`make ui`) and `tests/e2e`'s `npm ci`; both are done by `make test`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use dispatch_server::config::Escalation;
use dispatch_tests::{helsinki_map, spawn_app_with, within, ADMIN, ADMIN_PASSWORD};
use field_client::Event;
use tokio::process::Command;

/// Where the address the script types is: Aleksanterinkatu 52, Helsinki (near enough).
const SCENE: (f64, f64) = (60.1686, 24.9441);
/// The browser's whole run may take this long on a loaded machine.
const BROWSER_PATIENCE: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Checks what the browser tests need, with a message that says how to get it.
fn browser_prerequisites() {
    let dist = repo().join("dispatcher-ui/dist/index.html");
    assert!(
        dist.is_file(),
        "{} is missing: build the console first (make ui)",
        dist.display()
    );
    let playwright = repo().join("tests/e2e/node_modules/playwright-core");
    assert!(
        playwright.is_dir(),
        "playwright-core is not installed: cd tests/e2e && npm ci"
    );
}

/// Runs a browser script to its end and fails the test with its output when it fails.
async fn run_browser(script: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("tests/e2e").join(script))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(
        BROWSER_PATIENCE,
        cmd.spawn()
            .expect("node must be installed")
            .wait_with_output(),
    )
    .await
    .expect("the browser run did not finish in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test {script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test]
async fn an_unreceived_order_escalates_and_the_operator_acknowledges_the_alert() {
    browser_prerequisites();
    let app = spawn_app_with(|c| {
        c.escalation = Escalation {
            receipt_secs: [1; 5],
            acknowledge_secs: [600; 5],
            expire_secs: [1200; 5],
            sweep_millis: 100,
        };
    })
    .await;
    let admin = app.admin().await;
    // The tablet is enrolled, then switched off: its order is never received.
    let device = admin
        .unit_with_device(&app.fingerprint, "P-88", &["patrol"])
        .await;
    let unit_id = device.unit_id;
    drop(device.crash().await);
    let (_, order_id) = admin.dispatch_to(unit_id, "Kalevankatu 3").await;

    let stdout = run_browser(
        "console_alerts.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
            ("CONSOLE_UNIT", "P-88"),
        ],
    )
    .await;
    assert!(stdout.contains("console alerts e2e ok"), "{stdout}");

    // The server recorded who acknowledged, and the alert is no longer open.
    let (_, alerts) = admin.get("/api/alerts").await;
    assert!(
        !alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["order_id"] == order_id),
        "{alerts}"
    );
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let acked = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "alert_acknowledged")
        .expect("an alert_acknowledged event");
    assert_eq!(acked["actor"], format!("operator:{ADMIN}"));
    app.stop().await;
}

#[tokio::test]
async fn operator_dispatches_from_the_browser_and_sees_the_acknowledgement() {
    browser_prerequisites();
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_at(
            &app.fingerprint,
            "P-77",
            &["patrol"],
            (SCENE.0 + 0.001, SCENE.1),
        )
        .await;

    // The agency's note about the address, which intake must show.
    let (status, premise) = admin
        .post(
            "/api/premises",
            serde_json::json!({ "label": "Shop", "text": "Alarm company has the keys", "severity": "caution",
                    "lat": SCENE.0, "lon": SCENE.1, "radius_m": 300 }),
        )
        .await;
    assert_eq!(status, 201, "{premise}");

    // The simulated officer: accept whatever order reaches the tablet.
    let officer = tokio::spawn(async move {
        loop {
            match device.events.recv().await {
                Some(Event::Order(o)) => {
                    device.client.accept(o.order.order_id).await.unwrap();
                    return (device, o.order.order_id);
                }
                Some(_) => {}
                None => panic!("the field client stopped before any order"),
            }
        }
    });
    let stdout = run_browser(
        "console.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
            ("CONSOLE_ADDRESS", "Aleksanterinkatu 52"),
            ("CONSOLE_UNIT", "P-77"),
        ],
    )
    .await;
    assert!(stdout.contains("console e2e ok"), "{stdout}");
    let (_device, order_id) = within("the officer's acceptance", officer).await.unwrap();

    // What the browser showed is what the server recorded.
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["call_sign"], "P-77");
    assert!(
        ["acknowledged", "accepted"].contains(&order["state"].as_str().unwrap()),
        "{order}"
    );
    let incident_id = order["incident_id"].as_i64().unwrap();
    let (_, orders) = admin
        .get(&format!("/api/incidents/{incident_id}/assignments"))
        .await;
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");
    let kinds = admin.timeline_kinds(incident_id).await;
    assert!(kinds.contains(&"incident_created".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"order_queued".to_owned()), "{kinds:?}");
    // The second call joined the first incident instead of opening another.
    let (_, entries) = admin
        .get(&format!("/api/incidents/{incident_id}/entries"))
        .await;
    let kinds: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["narrative", "caller"], "{entries}");
    assert_eq!(entries[1]["caller"], "Second caller");
    let (_, incidents) = admin.get("/api/incidents").await;
    assert_eq!(incidents.as_array().unwrap().len(), 1, "{incidents}");
    app.stop().await;
}

#[tokio::test]
async fn the_queue_puts_what_needs_someone_first_and_one_click_answers_it() {
    browser_prerequisites();
    let app = spawn_app_with(|c| {
        c.map = Some(helsinki_map());
        c.escalation.sweep_millis = 100;
        // Only priority 3 has a target short enough to pass during the test.
        c.attention.dispatch_target_secs = [600, 600, 600, 1, 600];
    })
    .await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_at(
            &app.fingerprint,
            "P-90",
            &["patrol"],
            (SCENE.0 + 0.002, SCENE.1),
        )
        .await;
    // Farther up the same street: on the map below street level the two overlap.
    let _beside = admin
        .unit_at(
            &app.fingerprint,
            "P-91",
            &["patrol"],
            (SCENE.0 + 0.003, SCENE.1),
        )
        .await;
    let incident = |priority: u8| {
        let admin = admin.clone();
        async move {
            let (status, body) = admin
                .post(
                    "/api/incidents",
                    serde_json::json!({ "kind": "theft", "priority": priority,
                        "lat": SCENE.0, "lon": SCENE.1, "address": "Aleksanterinkatu 52" }),
                )
                .await;
            assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
            body["id"].as_i64().unwrap()
        }
    };
    let urgent = incident(0).await;
    let routine = incident(2).await;
    let overdue = incident(3).await;

    let stdout = run_browser(
        "console_attention.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
            ("CONSOLE_UNIT", "P-90"),
            ("CONSOLE_OTHER_UNIT", "P-91"),
            ("CONSOLE_INCIDENT", &overdue.to_string()),
            ("CONSOLE_OTHERS", &format!("{urgent},{routine}")),
        ],
    )
    .await;
    assert!(stdout.contains("console attention e2e ok"), "{stdout}");

    // The click made one order, by the operator, for the unit the server recommended.
    let order = within("the order on the tablet", async {
        loop {
            if let Some(Event::Order(o)) = device.events.recv().await {
                return o.order;
            }
        }
    })
    .await;
    assert_eq!(order.incident.id, overdue);
    let (_, orders) = admin
        .get(&format!("/api/incidents/{overdue}/assignments"))
        .await;
    assert_eq!(orders.as_array().unwrap().len(), 1, "{orders}");
    let (_, timeline) = admin
        .get(&format!("/api/incidents/{overdue}/timeline"))
        .await;
    let queued = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "order_queued")
        .expect("an order_queued event");
    assert_eq!(queued["actor"], format!("operator:{ADMIN}"));
    app.stop().await;
}

#[tokio::test]
async fn an_officers_emergency_takes_the_console() {
    browser_prerequisites();
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_at(&app.fingerprint, "P-95", &["patrol"], (SCENE.0, SCENE.1))
        .await;
    let pressed = device.client.emergency().await.unwrap();
    device
        .wait_for("the emergency recorded", |e| match e {
            Event::ActionDone { action_id } if *action_id == pressed => Some(()),
            _ => None,
        })
        .await;
    let (_, alerts) = admin.get("/api/alerts").await;
    let incident = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "officer_emergency")
        .and_then(|a| a["incident_id"].as_i64())
        .expect("an emergency incident");

    let stdout = run_browser(
        "console_emergency.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
            ("CONSOLE_UNIT", "P-95"),
            ("CONSOLE_INCIDENT", &incident.to_string()),
        ],
    )
    .await;
    assert!(stdout.contains("console emergency e2e ok"), "{stdout}");
    let (_, alerts) = admin.get("/api/alerts").await;
    assert!(
        !alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "officer_emergency"),
        "{alerts}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_console_speaks_the_browser_s_language_with_the_fonts_it_ships() {
    browser_prerequisites();
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let stdout = run_browser(
        "console_language.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
        ],
    )
    .await;
    assert!(stdout.contains("language e2e ok"), "{stdout}");
    app.stop().await;
}

#[tokio::test]
async fn a_page_on_another_port_of_the_same_host_cannot_change_anything() {
    browser_prerequisites();
    let app = spawn_app_with(|_| {}).await;
    let admin = app.admin().await;
    let unit = admin.create_unit("P-9", &[]).await;
    let (_, before) = admin.get("/api/audit?after=0&limit=5000").await;
    let tls = app.dir.path().join("data/tls");
    let unit_id = unit.to_string();
    let stdout = run_browser(
        "console_csrf.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
            ("ATTACK_CERT", tls.join("cert.pem").to_str().unwrap()),
            ("ATTACK_KEY", tls.join("key.pem").to_str().unwrap()),
            ("ATTACK_UNIT", &unit_id),
        ],
    )
    .await;
    assert!(stdout.contains("csrf e2e ok"), "{stdout}");
    let (_, after) = admin.get("/api/audit?after=0&limit=5000").await;
    let new_kinds: Vec<&str> = after.as_array().unwrap()[before.as_array().unwrap().len()..]
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        new_kinds.iter().all(|k| *k == "login"),
        "the attack changed something: {new_kinds:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_supervisor_sets_up_the_second_factor_and_logs_in_with_its_code() {
    browser_prerequisites();
    let app = spawn_app_with(|c| {
        c.accounts.second_factor_roles = vec![dispatch_server::domain::Role::Supervisor];
    })
    .await;
    let admin = app.admin().await;
    let password = "violet engine cascade 39";
    let (status, body) = admin
        .post(
            "/api/users",
            serde_json::json!({ "username": "sup", "password": password, "role": "supervisor" }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    let stdout = run_browser(
        "console_second_factor.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", "sup"),
            ("CONSOLE_PASSWORD", password),
        ],
    )
    .await;
    assert!(stdout.contains("second factor e2e ok"), "{stdout}");
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "operator:sup")
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["login", "second_factor_enrolled", "logout", "login"],
        "{kinds:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_edits_and_disables_an_account_and_a_unit_from_the_browser() {
    browser_prerequisites();
    let app = spawn_app_with(|_| {}).await;
    let stdout = run_browser(
        "console_admin.mjs",
        &[
            ("CONSOLE_URL", &app.base),
            ("CONSOLE_USER", ADMIN),
            ("CONSOLE_PASSWORD", ADMIN_PASSWORD),
            ("ADMIN_NEW_PASSWORD", "amber kettle drifting 58"),
            ("SERVER_FINGERPRINT", &app.fingerprint),
        ],
    )
    .await;
    assert!(stdout.contains("admin e2e ok"), "{stdout}");
    // What the screen showed is what is stored, and the audit has each step once.
    let admin = app.admin().await;
    let (_, users) = admin.get("/api/users").await;
    let olli = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "olli")
        .expect("the account the browser added");
    assert_eq!(olli["role"], "supervisor");
    assert!(olli["disabled_at_ms"].as_i64().is_some(), "{olli}");
    let (_, units) = admin.get("/api/units").await;
    let unit = &units.as_array().unwrap()[0];
    assert_eq!(
        (
            &unit["call_sign"],
            &unit["home_station"],
            &unit["disabled_at_ms"]
        ),
        (
            &serde_json::json!("P-71"),
            &serde_json::json!("Pasila"),
            &serde_json::Value::Null
        )
    );
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "operator:admin")
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| *k != "login")
        .collect();
    assert_eq!(
        kinds,
        [
            "operator_created",
            "role_changed",
            "account_disabled",
            "unit_created",
            "unit_updated",
            "enrolment_code_issued",
            "unit_disabled",
            "unit_enabled"
        ],
        "{audit}"
    );
    app.stop().await;
}
