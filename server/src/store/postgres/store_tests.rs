//! The whole store on PostgreSQL (`Store::open_postgres`), through its public methods: what the
//! API and the device channel do with it, reads included, on the machine's PostgreSQL
//! (`DATABASE_URL`; a database of its own, dropped at the end).

use std::sync::Arc;

use dispatch_protocol::{Action, ReportedStatus};

use super::tests::TestDatabase;
use super::PostgresSettings;
use crate::config;
use crate::domain::{Actor, IncidentStatus, NewIncident, NewUnit, OrderState, Role};
use crate::store::{ActionOutcome, Error, Store, Withdrawal};

async fn open(db: &TestDatabase) -> Store {
    Store::open_postgres(PostgresSettings::parse(&db.url()).unwrap(), Arc::new(()))
        .await
        .unwrap()
}

/// Dispatch from the first incident to its closing: operators, units and their tablets, orders
/// through their states, every read the console and the channel make, the timeline and its
/// chain, alerts and the supervisor's figures.
#[tokio::test]
async fn a_dispatch_runs_on_postgresql_from_incident_to_close() {
    let Some(db) = TestDatabase::create("store_dispatch").await else {
        return;
    };
    let store = open(&db).await;
    assert!(store.ping().await);
    assert_eq!(
        store.synchronous_standbys().await.unwrap(),
        Some(0),
        "the test server has no standby"
    );
    let admin_id = store
        .create_operator("admin", "hash", Role::Admin, &Actor::System, None)
        .await
        .unwrap();
    let admin = Actor::Operator {
        id: admin_id,
        username: "admin".into(),
    };
    let mut units = Vec::new();
    let mut devices = Vec::new();
    for call_sign in ["P-1", "P-2"] {
        let new = NewUnit::parse(call_sign, "car", &[], None, &["car".into()]).unwrap();
        let unit = store
            .create_unit(&new, &admin, Some(call_sign))
            .await
            .unwrap();
        let again = store
            .create_unit(&new, &admin, Some(call_sign))
            .await
            .unwrap();
        assert_eq!(again.id, unit.id, "a repeated key answers the first unit");
        let code = format!("code-{call_sign}");
        store
            .create_enrolment_code(unit.id, &code, i64::MAX, &admin, None)
            .await
            .unwrap();
        let device = store
            .enroll_device(&code, "token", "e", None)
            .await
            .unwrap();
        devices.push(device.device_id);
        units.push(unit);
    }
    let new = NewIncident::parse("theft", 1, 60.17, 24.94, None, None, None, None, &[]).unwrap();
    let incident = store
        .create_incident(&new, &admin, Some("call-1"))
        .await
        .unwrap();
    let again = store
        .create_incident(&new, &admin, Some("call-1"))
        .await
        .unwrap();
    assert_eq!(again.id, incident.id);

    let first = store
        .create_order(incident.id, units[0].id, &admin, None)
        .await
        .unwrap();
    let second = store
        .create_plan_order(incident.id, units[1].id, &admin, None, 2)
        .await
        .unwrap();
    let refused = store
        .create_order(incident.id, units[0].id, &admin, None)
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        Error::Conflict {
            code: "unit_unavailable",
            ..
        }
    ));

    // The channel: what a tablet is owed, its receipt, the officer's actions.
    let auth = store.device_auth(devices[0]).await.unwrap().unwrap();
    assert_eq!((auth.unit_id, auth.last_seq), (units[0].id, 1));
    let pending = store.pending_deliveries(devices[0], 0, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message_id, format!("order-{}", first.id));
    assert_eq!(
        store.record_receipt(devices[0], 1).await.unwrap(),
        [first.id]
    );
    let accept = Action::Accept { order_id: first.id };
    let outcome = store
        .apply_device_action(devices[0], units[0].id, "a1", accept, None)
        .await
        .unwrap();
    assert_eq!(outcome, ActionOutcome::Done);
    for (id, status) in [
        ("a2", ReportedStatus::EnRoute),
        ("a3", ReportedStatus::OnScene),
    ] {
        let status = Action::Status {
            status,
            order_id: Some(first.id),
        };
        let outcome = store
            .apply_device_action(devices[0], units[0].id, id, status, Some(1))
            .await
            .unwrap();
        assert_eq!(outcome, ActionOutcome::Done);
    }
    let cancelled = store
        .withdraw_order(second.id, Withdrawal::Cancel, "not needed", &admin)
        .await
        .unwrap();
    assert_eq!(cancelled.state, OrderState::Cancelled);

    // What the console reads.
    let orders = store.incident_orders(incident.id).await.unwrap();
    assert_eq!(
        orders.iter().map(|o| o.state).collect::<Vec<_>>(),
        [OrderState::Accepted, OrderState::Cancelled]
    );
    let by_id = store
        .orders_by_id(&[second.id, first.id, 999])
        .await
        .unwrap();
    assert_eq!(by_id.len(), 2);
    let listed = store.units_by_id(&[units[1].id]).await.unwrap();
    assert_eq!(listed[0].call_sign, "P-2");
    assert_eq!(store.units().await.unwrap().len(), 2);
    assert_eq!(
        store.incidents_by_id(&[incident.id]).await.unwrap().len(),
        1
    );
    let open = store
        .incidents(Some(IncidentStatus::Dispatched), 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(store.incidents(None, 10).await.unwrap().len(), 1);
    assert!(store.open_alerts(10).await.unwrap().is_empty());
    // The incident's last order was cancelled and none came after it: that needs an operator.
    let review = store
        .review_attention(&config::Attention::default())
        .await
        .unwrap();
    assert_eq!((review.raised, review.resolved), (1, 0));
    let alerts = store.open_alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    store
        .acknowledge_alert(alerts[0].event_id, &admin)
        .await
        .unwrap();
    assert!(store.open_alerts(10).await.unwrap().is_empty());

    // Cleared, then closed; the timeline and its chain.
    let clear = Action::Status {
        status: ReportedStatus::Cleared,
        order_id: Some(first.id),
    };
    store
        .apply_device_action(devices[0], units[0].id, "a4", clear, None)
        .await
        .unwrap();
    let closed = store
        .close_incident(incident.id, Some("arrest"), &admin)
        .await
        .unwrap();
    assert_eq!(closed.status, IncidentStatus::Closed);
    let timeline = store.incident_timeline(incident.id).await.unwrap();
    let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"incident_created"));
    assert_eq!(kinds.last(), Some(&"incident_closed"));
    let chained = super::tests::assert_chained(&db).await;
    let log = store.audit_log(0, 1000).await.unwrap();
    assert_eq!(log.len(), chained.len());
    let head = store.audit_head().await.unwrap();
    assert_eq!(head.id, i64::try_from(log.len()).unwrap());
    let milestones = store.response_milestones(0, i64::MAX, 10).await.unwrap();
    assert_eq!(milestones[0].units, ["P-1", "P-2"]);
}
