//! A service reachable at several addresses names them all (`server_urls`): each tablet gets
//! the list at enrolment and in every `welcome`, and the reference client reaches the service
//! through another address when the one it was enrolled at is down.

use dispatch_tests::{free_addr, spawn_app_with, Device};
use field_client::{Event, Trust};

#[tokio::test]
async fn a_tablet_enrolled_at_a_node_that_is_down_reaches_the_service_through_another() {
    let (addr, down) = (free_addr(), free_addr());
    let (live_url, down_url) = (format!("https://{addr}"), format!("https://{down}"));
    let app = spawn_app_with(|c| {
        c.listen = addr;
        c.server_urls = vec![down_url.clone(), live_url.clone()];
    })
    .await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit("N-1", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let trust = Trust::pin(&app.fingerprint).unwrap();
    let mut credential = field_client::enroll(&app.base, &trust, &code, None)
        .await
        .unwrap();
    assert_eq!(credential.server_url, live_url);
    assert_eq!(
        credential.other_servers,
        std::slice::from_ref(&down_url),
        "the other nodes, without the one enrolled at"
    );

    // As if enrolled at the node that is now down.
    credential.server_url = down_url.clone();
    credential.other_servers = vec![live_url.clone()];
    let dir = tempfile::tempdir().unwrap();
    credential.save(dir.path()).unwrap();
    let mut device = Device::start(dir).await;
    let welcome = device
        .wait_for("welcome through the second address", |e| match e {
            Event::Connected(w) => Some(w.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        welcome.servers,
        [down_url, live_url],
        "welcome names every address"
    );
    let (_, order) = admin.dispatch_to(unit_id, "Mannerheimintie 1").await;
    let got = device
        .wait_for("the order", |e| match e {
            Event::Order(o) => Some(o.order.order_id),
            _ => None,
        })
        .await;
    assert_eq!(got, order);
    app.stop().await;
}
