//! The field client is exactly-once across its own crashes: the real binary, armed with the
//! test-only fault point `FIELD_CLIENT_CRASH_AT`, aborts between receiving an order and
//! persisting it, or between persisting it and acknowledging it. After a restart the order
//! reaches the application layer (the agent's stdout) exactly once, and the inbox holds it once.
//! Losing the link just as the receipt is sent (no crash) reports the order once too, at once.

use dispatch_tests::{enroll_with_binary, spawn_app, AgentProcess, Operator};
use field_client::inbox::{Inbox, INBOX_FILE};
use field_client::{Credential, CRASH_AT_VAR};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

fn is_order(line: &str, order_id: i64) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["order_id"] == order_id)
}

/// The orders in the device's inbox (the process holding it must be gone).
async fn inbox_orders(dir: &std::path::Path) -> (usize, usize) {
    let credential = Credential::load(dir).unwrap();
    let inbox = Inbox::open(&dir.join(INBOX_FILE), credential.device_id)
        .await
        .unwrap();
    let held = inbox.orders().await.unwrap().len();
    let unsurfaced = inbox.unsurfaced_orders().await.unwrap().len();
    inbox.close().await;
    (held, unsurfaced)
}

/// Sends a first location and waits until it reached the server, so that the next delivery
/// happens on this connection.
async fn come_online(admin: &Operator, agent: &mut AgentProcess, unit_id: i64) {
    agent
        .stdin
        .write_all(b"location 60.1699 24.9384\n")
        .await
        .unwrap();
    dispatch_tests::within("the device to come online", async {
        loop {
            let (_, unit) = admin.get(&format!("/api/units/{unit_id}")).await;
            if !unit["position"].is_null() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Waits for the agent to report the order and for the server to hold its receipt, then
/// accepts it (a round trip through the server after any redelivery: anything duplicated would
/// have been printed before its answer), stops the agent and checks the order was reported
/// exactly once and is held once in the inbox, surfaced.
async fn reported_once(
    admin: &Operator,
    mut agent: AgentProcess,
    state: &std::path::Path,
    order_id: i64,
) {
    let first = agent
        .line_matching("the order", |l| is_order(l, order_id))
        .await
        .expect("agent exited");
    admin.wait_order_state(order_id, "delivered").await;
    agent
        .stdin
        .write_all(format!("accept {order_id}\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    agent
        .line_matching("the accept to be done", |l| {
            rest.push(l.to_owned());
            l.starts_with("done ")
        })
        .await
        .expect("agent exited");
    admin.wait_order_state(order_id, "accepted").await;
    agent.child.start_kill().unwrap();
    let (tail, _) = agent.finish().await;
    rest.extend(tail);
    let again = rest.iter().filter(|l| is_order(l, order_id)).count();
    assert_eq!(again, 0, "the order was reported again: {first} / {rest:?}");
    assert_eq!(inbox_orders(state).await, (1, 0));
}

async fn crash_then_recover(point: &str, persisted_before_crash: bool) {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-71", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;

    let mut armed = AgentProcess::spawn(state.path(), &[], &[(CRASH_AT_VAR, point)]);
    // Wait until the device is online (its first location reaches the server) so the
    // delivery happens on this connection.
    come_online(&admin, &mut armed, unit_id).await;
    let (_, order_id) = admin.dispatch_to(unit_id, "Aleksanterinkatu 1").await;
    let (lines, status) = armed.finish().await;
    assert!(!status.success(), "the fault point must abort the process");
    assert!(
        !lines.iter().any(|l| is_order(l, order_id)),
        "nothing reaches the application before the crash: {lines:?}"
    );
    // No receipt reached the server: the order is still waiting for delivery.
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["state"], "queued", "{order}");
    let expected = usize::from(persisted_before_crash);
    assert_eq!(inbox_orders(state.path()).await, (expected, expected));

    // Restart without the fault point: the order is reported once, whether it comes from the
    // inbox (persisted, never surfaced) or from the server's redelivery (which then dedupes).
    let agent = AgentProcess::spawn(state.path(), &[], &[]);
    reported_once(&admin, agent, state.path(), order_id).await;
}

#[tokio::test]
async fn crash_between_receive_and_persist_reports_the_order_once() {
    crash_then_recover("after_receive", false).await;
}

#[tokio::test]
async fn crash_between_persist_and_receipt_reports_the_order_once() {
    crash_then_recover("after_persist", true).await;
}

/// The link drops just as the receipt of a persisted order is sent (the server died then, say):
/// the order reaches the application at once, without waiting for a restart, and the server's
/// redelivery on the next connection is acknowledged without reporting it again.
#[tokio::test]
async fn a_receipt_lost_with_the_link_still_reports_the_order_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("P-72", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    let mut agent = AgentProcess::spawn(state.path(), &[], &[(CRASH_AT_VAR, "ack_lost")]);
    come_online(&admin, &mut agent, unit_id).await;
    let (_, order_id) = admin.dispatch_to(unit_id, "Aleksanterinkatu 1").await;
    // The receipt arrives only on the next connection, after the redelivery.
    reported_once(&admin, agent, state.path(), order_id).await;
}
