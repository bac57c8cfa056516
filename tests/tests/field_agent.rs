//! The real `field-client` binary as an officer's headless agent: enrolled by code, it prints
//! the order it persisted, takes the officer's decision on stdin, and reports it done.

use std::process::Stdio;

use dispatch_tests::{binary, spawn_app, within};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};

async fn next_line_matching(
    lines: &mut Lines<BufReader<ChildStdout>>,
    what: &str,
    pick: impl Fn(&str) -> bool,
) -> String {
    within(what, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("agent exited waiting for {what}"));
            if pick(&line) {
                return line;
            }
        }
    })
    .await
}

#[tokio::test]
async fn field_client_process_receives_accepts_and_reports() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-51", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = tempfile::tempdir().unwrap();

    let enrolled = Command::new(binary("field-client"))
        .args([
            "enroll",
            "--server",
            &app.base,
            "--pin",
            &app.fingerprint,
            "--code",
            &code,
            "--state-dir",
        ])
        .arg(state.path())
        .output()
        .await
        .unwrap();
    assert!(
        enrolled.status.success(),
        "enroll failed: {}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    let mode = std::fs::metadata(state.path().join("credential.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    let mut agent = Command::new(binary("field-client"))
        .args(["run", "--state-dir"])
        .arg(state.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = agent.stdin.take().unwrap();
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    stdin
        .write_all(b"location 60.1699 24.9384\n")
        .await
        .unwrap();

    let (_, order_id) = admin.dispatch_to(unit_id, "Kaivokatu 1").await;

    let printed = next_line_matching(&mut lines, "the order", |l| l.starts_with('{')).await;
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed["order_id"], order_id, "{printed}");
    assert_eq!(printed["incident"]["address"], "Kaivokatu 1", "{printed}");

    stdin.write_all(b"accept nonsense\n").await.unwrap();
    stdin
        .write_all(format!("accept {order_id}\n").as_bytes())
        .await
        .unwrap();
    next_line_matching(&mut lines, "accept done", |l| l.starts_with("done ")).await;
    stdin
        .write_all(format!("status en_route {order_id}\n").as_bytes())
        .await
        .unwrap();
    next_line_matching(&mut lines, "status done", |l| l.starts_with("done ")).await;

    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["state"], "accepted", "{order}");
    let (_, unit) = admin.get(&format!("/api/units/{unit_id}")).await;
    assert_eq!(unit["status"], "en_route", "{unit}");
    assert!(
        !unit["position"].is_null(),
        "the agent's location arrived: {unit}"
    );
    drop(stdin);
    agent.kill().await.unwrap();
    app.stop().await;
}

/// SIGTERM ends `field-client run` promptly even though its standard input stays open (the
/// agent used to log "shutting down" and then wait for stdin to close).
#[tokio::test]
async fn the_agent_exits_on_sigterm_with_stdin_open() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-52", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = dispatch_tests::enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    let mut agent = dispatch_tests::AgentProcess::spawn(
        state.path(),
        &["--ui", "127.0.0.1:0"],
        &[("RUST_LOG", "info")],
    );
    agent
        .line_matching("the agent's UI address", |l| l.starts_with("ui http://"))
        .await
        .expect("the agent printed its UI address");
    let pid = agent.child.id().expect("the agent runs").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    // Standard input stays open: `agent.stdin` is held until the end of the test.
    let (_, status) = agent.finish().await;
    assert!(status.success(), "the agent exited with {status}");
}
