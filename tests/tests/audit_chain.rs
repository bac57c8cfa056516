//! The tamper-evident audit log from outside: a `dispatchd` process records traffic, and
//! `dispatchd audit verify` on the stopped server's database passes, then names the event that
//! was edited or deleted by hand; events record the address they came from; and a username
//! full of control characters cannot forge a line of dispatchd's log.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use dispatch_tests::{binary, free_addr, within, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, SqliteConnection};

/// Runs `dispatchd --data-dir <data> audit <args>`.
async fn audit(data: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(binary("dispatchd"))
        .arg("--data-dir")
        .arg(data)
        .arg("audit")
        .args(args)
        .output()
        .await
        .unwrap()
}

/// The output of a run that must have succeeded.
fn passed(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error of a run that must have failed.
fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Changes the stored events with `sql` the only way anyone can: by dropping the append-only
/// triggers first (and putting them back).
async fn tamper(db: &Path, sql: &str) {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(&format!(
        "DROP TRIGGER events_append_only_update;
         DROP TRIGGER events_append_only_delete;
         {sql};
         CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
         BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
         CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
         BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn verify_passes_then_names_the_edited_and_the_deleted_event() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), free_addr())
        .await
        .unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let device = admin
        .unit_with_device(&server.fingerprint(), "P-7", &["patrol"])
        .await;
    let (incident_id, order_id) = admin.dispatch_to(device.unit_id, "Mannerheimintie 1").await;
    admin.wait_order_state(order_id, "delivered").await;
    device.client.accept(order_id).await.unwrap();
    admin.wait_order_state(order_id, "accepted").await;
    let (status, head) = admin.get("/api/audit/head").await;
    assert_eq!(status, StatusCode::OK, "{head}");
    let (_, log) = admin.get("/api/audit?limit=5000").await;
    let log = log.as_array().unwrap().clone();
    assert_eq!(head["id"], log.last().unwrap()["id"]);

    // Every event an HTTP request or the device's connection caused records the address it
    // came from; the server's own do not.
    let accepted = log
        .iter()
        .find(|e| e["kind"] == "order_accepted")
        .expect("the device's acceptance is in the log");
    assert_eq!(
        accepted["actor"],
        format!("device:{}", device.device_id),
        "{accepted}"
    );
    assert_eq!(accepted["source"], "127.0.0.1", "{accepted}");
    let created = log
        .iter()
        .find(|e| e["kind"] == "incident_created" && e["incident_id"] == incident_id)
        .expect("the incident's creation is in the log");
    assert_eq!(created["actor"], "operator:admin", "{created}");
    assert_eq!(created["source"], "127.0.0.1", "{created}");
    for event in log.iter().filter(|e| e["actor"] == "system") {
        assert!(event.get("source").is_none(), "{event}");
    }
    let (status, _) = admin
        .post(
            "/api/users",
            json!({ "username": "op1", "password": "operator-password-1", "role": "operator" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let operator = Operator::login(&server.base, "op1", "operator-password-1")
        .await
        .unwrap();
    assert_eq!(
        operator.get("/api/audit/head").await.0,
        StatusCode::FORBIDDEN,
        "the head is for supervisors and admins"
    );
    drop(device);
    server.kill9().await;

    // The head the server showed earlier is a witness the whole chain must still contain.
    let db = data.path().join("dispatch.sqlite");
    let witness = format!("{}:{}", head["id"], head["hash"].as_str().unwrap());
    let head = passed(&audit(data.path(), &["head"]).await)
        .trim()
        .to_owned();
    let ok = passed(&audit(data.path(), &["verify", "--witness", &witness]).await);
    assert!(ok.starts_with("OK: "), "{ok}");
    assert!(ok.trim_end().ends_with(&format!("head {head}")), "{ok}");

    // An edited detail is named at its event.
    let edited = created["id"].as_i64().unwrap();
    tamper(
        &db,
        &format!("UPDATE events SET detail = '{{}}' WHERE id = {edited}"),
    )
    .await;
    let broken = failed(&audit(data.path(), &["verify"]).await);
    assert!(
        broken.contains(&format!("event {edited}: hash mismatch")),
        "{broken}"
    );
    let original = serde_json::to_string(&created["detail"]).unwrap();
    tamper(
        &db,
        &format!(
            "UPDATE events SET detail = '{}' WHERE id = {edited}",
            original.replace('\'', "''")
        ),
    )
    .await;
    passed(&audit(data.path(), &["verify"]).await);

    // A deleted event leaves a gap, named at the event after it.
    tamper(&db, &format!("DELETE FROM events WHERE id = {edited}")).await;
    let broken = failed(&audit(data.path(), &["verify"]).await);
    assert!(
        broken.contains(&format!("event {}: gap", edited + 1)),
        "{broken}"
    );
    assert_eq!(
        passed(&audit(data.path(), &["head"]).await).trim(),
        head,
        "the head itself is unchanged"
    );

    // Events cut off the end leave an intact, shorter chain: only a witness's head shows it.
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), free_addr())
        .await
        .unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    admin.create_unit("P-8", &[]).await;
    let (_, head) = admin.get("/api/audit/head").await;
    server.kill9().await;
    let head_id = head["id"].as_i64().unwrap();
    let witness = format!("{head_id}:{}", head["hash"].as_str().unwrap());
    tamper(
        &data.path().join("dispatch.sqlite"),
        &format!("DELETE FROM events WHERE id >= {head_id}"),
    )
    .await;
    passed(&audit(data.path(), &["verify"]).await);
    let cut = failed(&audit(data.path(), &["verify", "--witness", &witness]).await);
    assert!(
        cut.contains(&format!("event {head_id} is missing")),
        "{cut}"
    );
}

/// Starts `dispatchd` on a fresh data directory with its standard error captured, sends a
/// login whose username tries to start a log line of its own, and returns what it logged.
async fn log_of_forged_login(format: &str, username: &str) -> String {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = tokio::process::Command::new(binary("dispatchd"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--log-format", format])
        // The login span (and its username) is at info.
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = Operator::anonymous(&format!("https://{addr}"));
    within("dispatchd to start", async {
        let healthz = format!("{}/healthz", client.base);
        while !client
            .http
            .get(&healthz)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (status, _) = client
        .post(
            "/api/login",
            json!({ "username": username, "password": "wrong password" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    child.start_kill().unwrap();
    let out = within("dispatchd to stop", child.wait_with_output())
        .await
        .unwrap();
    String::from_utf8(out.stderr).unwrap()
}

const FORGED: &str = "x\r\n2026-01-01T00:00:00.000000Z  INFO FORGED: admin logged in\x1b[31m";

#[tokio::test]
async fn a_username_cannot_forge_a_text_log_line() {
    let log = log_of_forged_login("text", FORGED).await;
    assert!(
        log.contains(
            r"username=x\r\n2026-01-01T00:00:00.000000Z  INFO FORGED: admin logged in\u{1b}[31m"
        ),
        "the login's username is logged, escaped: {log}"
    );
    for line in log.lines() {
        assert!(!line.starts_with("2026-01-01"), "forged line: {line:?}");
        assert!(
            !line.chars().any(|c| c.is_control()),
            "control character in {line:?}"
        );
    }
}

#[tokio::test]
async fn a_username_cannot_forge_a_json_log_line() {
    let username = format!("{FORGED}\u{9b}31m\u{2028}");
    let log = log_of_forged_login("json", &username).await;
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            assert!(
                !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{line:?}"
            );
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
        })
        .collect();
    let logged = lines
        .iter()
        .filter(|line| line.to_string().contains("FORGED"))
        .collect::<Vec<_>>();
    assert_eq!(logged.len(), 1, "{log}");
    assert_eq!(
        logged[0]["fields"]["username"], username,
        "the username is logged as it was sent: {log}"
    );
}
