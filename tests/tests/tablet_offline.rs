//! Actions the officer takes while the tablet is offline are kept, and after reconnecting they
//! reach the server in the order they were taken, exactly once.

use std::time::Duration;

use dispatch_protocol::ReportedStatus;
use dispatch_tests::{free_addr, within, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD};
use field_client::backoff::Backoff;
use field_client::{Client, ClientOptions, Event, Trust};
use tokio::sync::mpsc;

async fn next_event(
    events: &mut mpsc::Receiver<Event>,
    what: &str,
    pick: impl Fn(&Event) -> bool,
) -> Event {
    within(what, async {
        loop {
            let e = events.recv().await.expect("event loop ended");
            if pick(&e) {
                return e;
            }
        }
    })
    .await
}

#[tokio::test]
async fn offline_actions_reach_the_server_in_order_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let unit_id = admin.create_unit("P-91", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let dir = tempfile::tempdir().unwrap();
    let trust = Trust::pin(&server.fingerprint()).unwrap();
    let credential = field_client::enroll(&server.base, &trust, &code, None)
        .await
        .unwrap();
    let mut options = ClientOptions::new(credential, dir.path());
    // Reconnect quickly so the test does not wait on the 30 s cap.
    options.backoff = Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(300),
    };
    let (client, event_loop) = Client::new(options).await.unwrap();
    let (tx, mut events) = mpsc::channel(64);
    tokio::spawn(event_loop.run(tx));
    next_event(&mut events, "connected", |e| {
        matches!(e, Event::Connected(_))
    })
    .await;

    let (incident_id, order_id) = admin.dispatch_to(unit_id, "Kaivokatu 1").await;
    let Event::Order(order) =
        next_event(&mut events, "the order", |e| matches!(e, Event::Order(_))).await
    else {
        unreachable!()
    };
    admin.wait_order_state(order_id, "delivered").await;

    // The link drops (the server dies); the officer keeps working.
    server.kill9().await;
    next_event(&mut events, "the disconnection", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let mut taken = Vec::new();
    taken.extend(client.acknowledge(&order.message_id).await.unwrap());
    taken.push(client.accept(order_id).await.unwrap());
    taken.push(
        client
            .status(ReportedStatus::EnRoute, Some(order_id))
            .await
            .unwrap(),
    );
    taken.push(
        client
            .text("Arriving in two minutes", Some(incident_id))
            .await
            .unwrap(),
    );
    taken.push(
        client
            .status(ReportedStatus::OnScene, Some(order_id))
            .await
            .unwrap(),
    );
    let pending: Vec<String> = client
        .pending_actions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.action_id)
        .collect();
    assert_eq!(pending, taken, "queued durably, in the order taken");
    assert_eq!(client.sent_texts().await.unwrap()[0].state, "pending");

    // Back online: every action is answered, in the order it was taken.
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let mut answered = Vec::new();
    within("every offline action to be answered", async {
        while answered.len() < taken.len() {
            match events.recv().await.expect("event loop ended") {
                Event::ActionDone { action_id } | Event::ActionRejected { action_id, .. } => {
                    answered.push(action_id);
                }
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(answered, taken);
    assert!(client.pending_actions().await.unwrap().is_empty());

    // Exactly once on the server, in order.
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    admin.wait_order_state(order_id, "accepted").await;
    let kinds: Vec<String> = admin
        .timeline_kinds(incident_id)
        .await
        .into_iter()
        .filter(|k| ["order_accepted", "unit_en_route", "unit_on_scene"].contains(&k.as_str()))
        .collect();
    assert_eq!(kinds, ["order_accepted", "unit_en_route", "unit_on_scene"]);

    // Another reconnect sends nothing again.
    server.kill9().await;
    next_event(&mut events, "the second disconnection", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    next_event(&mut events, "reconnected", |e| {
        matches!(e, Event::Connected(_))
    })
    .await;
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let again = admin.timeline_kinds(incident_id).await;
    for kind in ["order_accepted", "unit_en_route", "unit_on_scene"] {
        assert_eq!(
            again.iter().filter(|k| *k == kind).count(),
            1,
            "{kind}: {again:?}"
        );
    }
    server.kill9().await;
}
