//! Certificate rotation with an overlap (`dispatchd tls rotate`, then `--activate`): a tablet
//! connected during the overlap learns the next pin over its channel, keeps it across a
//! restart and works after the switch; a tablet that only knows the old pin is refused.

use std::path::Path;

use dispatch_tests::{binary, enroll_with_binary, raw_channel, spawn_app, within, AgentProcess};
use field_client::Credential;

/// Runs `dispatchd tls rotate [--activate]` on `data_dir`; returns the fingerprint it prints.
async fn rotate(data_dir: &Path, activate: bool) -> String {
    let mut command = tokio::process::Command::new(binary("dispatchd"));
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args(["tls", "rotate"]);
    if activate {
        command.arg("--activate");
    }
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "tls rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits until the credential in `state` holds exactly `pins`.
async fn stored_pins_become(state: &Path, pins: &[&str]) {
    within("the tablet to store the announced pins", async {
        loop {
            let stored = Credential::load(state).unwrap().pins;
            if stored == pins {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_connected_tablet_follows_a_rotation_and_an_old_pin_is_refused_after_it() {
    let app = spawn_app().await;
    let data_dir = app.dir.path().join("data");
    let admin = app.admin().await;
    let old = app.fingerprint.clone();

    // Tablet A is enrolled with the pin as dispatchd logs it at start (`sha256=…`) and runs.
    let unit_a = admin.create_unit("P-71", &["patrol"]).await;
    let code = admin.enrolment_code(unit_a).await;
    let state_a = enroll_with_binary(&app.base, &format!("sha256={old}"), &code).await;
    assert_eq!(
        Credential::load(state_a.path()).unwrap().pins,
        [old.as_str()]
    );
    let mut agent = AgentProcess::spawn(state_a.path(), &[], &[]);
    let (_, order) = admin.dispatch_to(unit_a, "Aleksanterinkatu 1").await;
    agent
        .line_matching("the first order", |l| {
            l.contains(&format!("\"order_id\":{order}"))
        })
        .await
        .expect("agent exited");
    // Tablet B is enrolled too, but stays off during the whole overlap.
    let unit_b = admin.create_unit("P-72", &["patrol"]).await;
    let code = admin.enrolment_code(unit_b).await;
    let state_b = enroll_with_binary(&app.base, &old, &code).await;

    // The rotation starts: the old certificate is still served, and the connected tablet is
    // told the next pin and stores it beside the old one.
    let next = rotate(&data_dir, false).await;
    assert_eq!(next.len(), 64, "{next}");
    assert_ne!(next, old);
    let mut both = [old.as_str(), next.as_str()];
    both.sort_unstable();
    stored_pins_become(state_a.path(), &both).await;
    raw_channel(app.addr, &old)
        .await
        .expect("the old certificate is served during the overlap");

    // The switch: the running server takes the next certificate.
    assert_eq!(rotate(&data_dir, true).await, next);
    within("the server to present the next certificate", async {
        while raw_channel(app.addr, &next).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;

    // Tablet A, restarted, reads its stored pins and keeps working; the server now announces
    // only the new pin, and the tablet drops the old one.
    let _ = agent.child.kill().await;
    let mut agent = AgentProcess::spawn(state_a.path(), &[], &[]);
    let (status, text) = admin
        .post(
            &format!("/api/units/{unit_a}/messages"),
            serde_json::json!({ "text": "after the switch" }),
        )
        .await;
    assert_eq!(status, 201, "{text}");
    agent
        .line_matching("the text after the switch", |l| {
            l.contains("after the switch")
        })
        .await
        .expect("agent exited");
    stored_pins_become(state_a.path(), &[next.as_str()]).await;

    // Tablet B only knows the old pin: its handshake is refused.
    let trust_b = Credential::load(state_b.path()).unwrap().trust().unwrap();
    assert_eq!(trust_b, field_client::Trust::pin(&old).unwrap());
    let refused = raw_channel(app.addr, &old)
        .await
        .expect_err("the old pin is refused after the switch");
    // The refusal is the pin check's: it names the certificate presented.
    assert!(format!("{refused:#}").contains(&next), "{refused:#}");
    let _ = agent.child.kill().await;
    app.stop().await;
}
