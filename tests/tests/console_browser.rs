//! The dispatcher console in a real browser (playwright-core driving Debian's chromium
//! headless): log in, create an incident by address, dispatch the recommended unit, see a
//! simulated field client acknowledge it, open the timeline. The script fails on any request
//! that is not to our own server. Needs the built console (`make ui`) and `tests/e2e`'s
//! `npm ci`; both are done by `make test`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use dispatch_protocol::Location;
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

#[tokio::test]
async fn operator_dispatches_from_the_browser_and_sees_the_acknowledgement() {
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

    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let admin = app.admin().await;
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-77", &["patrol"])
        .await;
    device
        .client
        .location(Location {
            lat: SCENE.0 + 0.001,
            lon: SCENE.1,
            accuracy_m: Some(5.0),
            heading_deg: None,
            speed_mps: None,
            fix_time_ms: field_client::unix_ms(),
        })
        .await
        .unwrap();
    within("the unit's first fix", async {
        loop {
            let (_, unit) = admin.get(&format!("/api/units/{}", device.unit_id)).await;
            if !unit["position"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let browser = Command::new("node")
        .arg(repo().join("tests/e2e/console.mjs"))
        .env("CONSOLE_URL", &app.base)
        .env("CONSOLE_USER", ADMIN)
        .env("CONSOLE_PASSWORD", ADMIN_PASSWORD)
        .env("CONSOLE_ADDRESS", "Aleksanterinkatu 52")
        .env("CONSOLE_UNIT", "P-77")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed");

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
    let out = tokio::time::timeout(BROWSER_PATIENCE, browser.wait_with_output())
        .await
        .expect("the browser run did not finish in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("console e2e ok"), "{stdout}\n{stderr}");
    let (_device, order_id) = within("the officer's acceptance", officer).await.unwrap();

    // What the browser showed is what the server recorded.
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["call_sign"], "P-77");
    assert!(
        ["acknowledged", "accepted"].contains(&order["state"].as_str().unwrap()),
        "{order}"
    );
    let kinds = admin
        .timeline_kinds(order["incident_id"].as_i64().unwrap())
        .await;
    assert!(kinds.contains(&"incident_created".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"order_queued".to_owned()), "{kinds:?}");
    app.stop().await;
}
