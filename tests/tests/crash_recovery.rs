//! Durability under kill -9: an order the server confirmed as queued survives a crash before the
//! device ever connected, and reaches the device's app layer exactly once across server and
//! device crashes.

use dispatch_tests::{free_addr, within, Device, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD};
use field_client::{Event, Trust};

/// Collects events until the action's `done`, returning how many new orders arrived meanwhile.
async fn orders_seen_until_done(device: &mut Device, action_id: &str) -> usize {
    within("action done", async {
        let mut orders = 0;
        loop {
            match device.events.recv().await.expect("event loop ended") {
                Event::Order(_) => orders += 1,
                Event::ActionDone { action_id: done } if done == action_id => return orders,
                Event::ActionRejected { code, .. } => panic!("action rejected: {code}"),
                _ => {}
            }
        }
    })
    .await
}

#[tokio::test]
async fn queued_order_survives_kill_9_and_is_delivered_exactly_once() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let fingerprint = server.fingerprint();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let unit_id = admin.create_unit("P-31", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let device_dir = tempfile::tempdir().unwrap();
    let credential = field_client::enroll(
        &server.base,
        &Trust::pin(&fingerprint).unwrap(),
        &code,
        None,
    )
    .await
    .unwrap();
    credential.save(device_dir.path()).unwrap();

    let (incident_id, order_id) = admin.dispatch_to(unit_id, "Mannerheimintie 1").await;

    // Crash right after the confirmation; the device has never connected.
    server.kill9().await;
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    assert_eq!(
        server.fingerprint(),
        fingerprint,
        "the certificate survives restarts"
    );
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["state"], "queued", "{order}");

    let mut device = Device::start(device_dir).await;
    let received = device
        .wait_for("the order", |e| match e {
            Event::Order(o) => Some(o.order.order_id),
            _ => None,
        })
        .await;
    assert_eq!(received, order_id);
    admin.wait_order_state(order_id, "delivered").await;

    // The device crashes and comes back: no second order reaches the app.
    let device_dir = device.crash().await;
    let mut device = Device::start(device_dir).await;
    let action = device.client.accept(order_id).await.unwrap();
    assert_eq!(
        orders_seen_until_done(&mut device, &action).await,
        0,
        "order surfaced twice"
    );

    // The server crashes again after the acceptance: it is still there, and still once.
    server.kill9().await;
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["state"], "accepted", "{order}");
    device
        .wait_for("reconnect", |e| {
            matches!(e, Event::Connected(_)).then_some(())
        })
        .await;
    let action = device
        .client
        .status(dispatch_protocol::ReportedStatus::EnRoute, Some(order_id))
        .await
        .unwrap();
    assert_eq!(
        orders_seen_until_done(&mut device, &action).await,
        0,
        "order surfaced twice"
    );
    assert_eq!(device.client.orders().await.unwrap().len(), 1);

    assert_eq!(
        admin.timeline_kinds(incident_id).await,
        [
            "incident_created",
            "order_queued",
            "order_delivered",
            "order_accepted",
            "unit_en_route"
        ]
    );
    server.kill9().await;
}
