//! The PostgreSQL write path against the machine's PostgreSQL (`DATABASE_URL`; each test on a
//! database of its own, dropped at the end). Without `DATABASE_URL` the tests say so and pass.

use std::sync::Arc;

use postgres::{Client, NoTls};

use super::{PostgresSettings, PostgresWriter};
use crate::store::sql::{params, Statements};
use crate::store::Error;

/// A fresh database, dropped (with its connections) when this goes out of scope.
pub(super) struct TestDatabase {
    admin: String,
    name: String,
}

impl TestDatabase {
    /// `None` when `DATABASE_URL` is unset.
    pub(super) async fn create(test: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL is unset: {test} needs PostgreSQL and did not run");
            return None;
        };
        let name = format!("dispatch_{test}_{}", std::process::id());
        let (url, db) = (admin.clone(), name.clone());
        blocking(move || {
            let mut client = Client::connect(&url, NoTls).unwrap();
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .unwrap();
            client
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .unwrap();
        })
        .await;
        Some(Self { admin, name })
    }

    /// The database's URL, with `hosts` (`h:p,h:p`) instead of the admin URL's and `query`.
    fn url_with(&self, hosts: Option<&str>, query: &str) -> String {
        let (scheme_user, rest) = self.admin.split_once('@').unwrap();
        let admin_hosts = rest.split('/').next().unwrap();
        let hosts = hosts.unwrap_or(admin_hosts);
        format!("{scheme_user}@{hosts}/{}{query}", self.name)
    }

    pub(super) fn url(&self) -> String {
        self.url_with(None, "")
    }

    pub(super) async fn writer(&self) -> PostgresWriter {
        PostgresWriter::start(PostgresSettings::parse(&self.url()).unwrap(), Arc::new(()))
            .await
            .unwrap()
    }

    /// Runs `sql` on the test database from a connection of its own.
    pub(super) async fn run(&self, sql: &str) -> Vec<postgres::Row> {
        let (url, sql) = (self.url(), sql.to_owned());
        blocking(move || {
            Client::connect(&url, NoTls)
                .unwrap()
                .query(&sql, &[])
                .unwrap()
        })
        .await
    }

    pub(super) async fn count(&self, table: &str) -> i64 {
        self.run(&format!("SELECT count(*) FROM {table}")).await[0].get(0)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // The sync client runs a runtime of its own: not on a runtime's thread.
        let _ = std::thread::spawn(move || {
            let mut client = Client::connect(&admin, NoTls)?;
            client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        })
        .join();
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

const PROBE: &str = "CREATE TABLE probe (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                         name TEXT NOT NULL UNIQUE)";

fn insert(
    writer: &PostgresWriter,
    name: String,
) -> impl std::future::Future<Output = Result<u64, Error>> {
    let writer = writer.clone();
    async move {
        writer
            .write(move |tx| tx.run("INSERT INTO probe (name) VALUES (?1)", params![&name]))
            .await
    }
}

/// Holds the writer inside a batch until the returned sender is dropped, so that the writes
/// queued meanwhile all go into the next batch.
async fn hold_writer(writer: &PostgresWriter) -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (entered, inside) = tokio::sync::oneshot::channel();
    let writer = writer.clone();
    tokio::spawn(async move {
        writer
            .write(move |_| {
                let _ = entered.send(());
                let _ = held.recv();
                Ok(())
            })
            .await
    });
    inside.await.unwrap();
    release
}

/// Waits until `n` writes are queued behind the held batch.
async fn until_queued(writer: &PostgresWriter, n: usize) {
    while writer.queued() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn every_write_answered_ok_is_stored_and_refusals_leave_their_batch_alone() {
    let Some(db) = TestDatabase::create("batch").await else {
        return;
    };
    db.run(PROBE).await;
    let writer = db.writer().await;
    let release = hold_writer(&writer).await;
    let writes: Vec<_> = (0..64)
        .map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |tx| {
                        if n % 4 == 0 {
                            return Err(Error::conflict("refused", format!("write {n} refused")));
                        }
                        tx.run(
                            "INSERT INTO probe (name) VALUES (?1)",
                            params![&format!("w{n}")],
                        )
                    })
                    .await
            })
        })
        .collect();
    until_queued(&writer, 64).await;
    drop(release);
    let mut stored = 0;
    for (n, write) in writes.into_iter().enumerate() {
        match write.await.unwrap() {
            Ok(1) => stored += 1,
            Err(Error::Conflict {
                code: "refused", ..
            }) if n % 4 == 0 => {}
            other => panic!("write {n}: {other:?}"),
        }
    }
    assert_eq!(stored, 48);
    assert_eq!(db.count("probe").await, 48);
}

#[tokio::test]
async fn a_failed_statement_or_a_late_refusal_fails_the_whole_batch_and_the_next_is_clean() {
    let Some(db) = TestDatabase::create("rollback").await else {
        return;
    };
    db.run(PROBE).await;
    let writer = db.writer().await;
    for late_refusal in [false, true] {
        let release = hold_writer(&writer).await;
        let first = tokio::spawn(insert(&writer, format!("first-{late_refusal}")));
        let failing = {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |tx| {
                        if late_refusal {
                            tx.run("INSERT INTO probe (name) VALUES ('late')", &[])?;
                            return Err::<(), _>(Error::conflict("refused", "after a change"));
                        }
                        // A statement that fails, its error put up with by the job: the
                        // transaction is aborted all the same.
                        let _ = tx.run("INSERT INTO no_such_table VALUES (1)", &[]);
                        Ok(())
                    })
                    .await
            })
        };
        let last = tokio::spawn(insert(&writer, format!("last-{late_refusal}")));
        until_queued(&writer, 3).await;
        drop(release);
        for write in [first, last] {
            let outcome = write.await.unwrap();
            assert!(
                matches!(outcome, Err(Error::StorageFailed(_))),
                "{late_refusal}: {outcome:?}"
            );
        }
        assert!(failing.await.unwrap().is_err());
        let earlier_rounds = i64::from(late_refusal);
        assert_eq!(
            db.count("probe").await,
            earlier_rounds,
            "nothing of the batch stays"
        );
        insert(&writer, format!("after-{late_refusal}"))
            .await
            .unwrap();
    }
    assert_eq!(db.count("probe").await, 2);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced() {
    let Some(db) = TestDatabase::create("reconnect").await else {
        return;
    };
    db.run(PROBE).await;
    let writer = db.writer().await;
    insert(&writer, "before".into()).await.unwrap();
    // Closed while idle: the next write reconnects before running anything, and succeeds.
    let ended = db
        .run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE application_name = 'dispatchd' AND datname = current_database()",
        )
        .await;
    assert_eq!(ended.len(), 1);
    insert(&writer, "after idle loss".into()).await.unwrap();
    // Closed in the middle of a batch: that batch fails, the next one reconnects.
    let lost = writer
        .write(|tx| {
            tx.run("INSERT INTO probe (name) VALUES ('lost')", &[])?;
            tx.select("SELECT pg_terminate_backend(pg_backend_pid())", &[])
        })
        .await;
    assert!(matches!(lost, Err(Error::StorageFailed(_))), "{lost:?}");
    insert(&writer, "after loss mid-batch".into())
        .await
        .unwrap();
    let names: Vec<String> = db
        .run("SELECT name FROM probe ORDER BY id")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["before", "after idle loss", "after loss mid-batch"]);
}

#[tokio::test]
async fn a_write_refused_by_a_read_only_server_is_a_storage_fault() {
    let Some(db) = TestDatabase::create("read_only").await else {
        return;
    };
    db.run(PROBE).await;
    let writer = db.writer().await;
    // What a primary that became a standby answers (SQLSTATE 25006).
    let refused = writer
        .write(|tx| {
            tx.run("SET TRANSACTION READ ONLY", &[])?;
            tx.run("INSERT INTO probe (name) VALUES ('x')", &[])
        })
        .await;
    assert!(
        matches!(&refused, Err(Error::StorageFailed(why)) if why.contains("25006")),
        "{refused:?}"
    );
    insert(&writer, "y".into()).await.unwrap();
}

#[tokio::test]
async fn the_host_that_accepts_writes_is_found_and_others_are_refused() {
    let Some(db) = TestDatabase::create("hosts").await else {
        return;
    };
    db.run(PROBE).await;
    let admin_hosts = db
        .admin
        .split('@')
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    // A dead host first: passed over.
    let url = db.url_with(Some(&format!("127.0.0.1:1,{admin_hosts}")), "");
    let writer = PostgresWriter::start(PostgresSettings::parse(&url).unwrap(), Arc::new(()))
        .await
        .unwrap();
    insert(&writer, "reached".into()).await.unwrap();
    let durability = writer.durability().unwrap();
    assert_eq!(durability.synchronous_standbys, 0, "{durability:?}");
    // Only servers that accept no writes, or whose commits are not durable: refused.
    for (options, says) in [
        ("default_transaction_read_only%3Don", "accepts writes"),
        ("synchronous_commit%3Doff", "synchronous_commit = off"),
    ] {
        let url = db.url_with(None, &format!("?options=-c%20{options}"));
        let refused =
            PostgresWriter::start(PostgresSettings::parse(&url).unwrap(), Arc::new(())).await;
        let message = format!("{:#}", refused.err().unwrap());
        assert!(message.contains(says), "{options}: {message}");
    }
    assert!(PostgresSettings::parse("postgres://").is_err());
}

#[tokio::test]
async fn the_schema_is_migrated_once_and_a_newer_database_is_refused() {
    let Some(db) = TestDatabase::create("migrate").await else {
        return;
    };
    // Two nodes starting at once: one migrates, the other finds it done.
    let (a, b) = tokio::join!(
        PostgresWriter::start(PostgresSettings::parse(&db.url()).unwrap(), Arc::new(())),
        PostgresWriter::start(PostgresSettings::parse(&db.url()).unwrap(), Arc::new(()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    drop((a, b));
    assert_eq!(
        db.count("schema_migrations").await,
        super::MIGRATIONS.len() as i64
    );
    assert_eq!(db.count("units").await, 0);
    db.run("INSERT INTO schema_migrations (version, name, sha256) VALUES (9999, 'future', '')")
        .await;
    let refused =
        PostgresWriter::start(PostgresSettings::parse(&db.url()).unwrap(), Arc::new(())).await;
    let message = format!("{:#}", refused.err().unwrap());
    assert!(message.contains("migration 9999"), "{message}");
}

/// An operator, an open incident at a hazard with a narrative entry, units U-1…U-4 with a
/// device each and U-5 without one.
pub(super) const DOMAIN_SEED: &str = "
    INSERT INTO operators (username, password_hash, role, created_at)
        VALUES ('ann', 'x', 'operator', 0);
    INSERT INTO incidents (kind, priority, lat, lon, created_at, updated_at)
        VALUES ('assault', 1, 60.17, 24.94, 0, 0);
    INSERT INTO incident_entries (incident_id, kind, text, author, created_at)
        VALUES (1, 'narrative', 'suspect left on foot', 'ann', 1);
    INSERT INTO premises (label, text, severity, lat, lon, radius_m, min_lat, min_lon, max_lat,
                          max_lon, created_at)
        VALUES ('Dog', 'a dog in the yard', 'caution', 60.17, 24.94, 50, 60.16, 24.93, 60.18,
                24.95, 0);
    INSERT INTO units (call_sign, kind, created_at)
        SELECT 'U-' || n, 'patrol', 0 FROM generate_series(1, 5) AS n;
    INSERT INTO devices (unit_id, token_hash, epoch, enrolled_at)
        SELECT id, 'x', 'e', 0 FROM units WHERE id <= 4;
";

fn order_for(
    writer: &PostgresWriter,
    unit: i64,
    key: Option<&str>,
    plan: Option<usize>,
) -> impl std::future::Future<Output = Result<crate::store::Inserted, Error>> {
    let (writer, key) = (writer.clone(), key.map(str::to_owned));
    async move {
        writer
            .write(move |tx| {
                let ann = crate::domain::Actor::Operator {
                    id: 1,
                    username: "ann".into(),
                };
                crate::store::insert_order(tx, 1, unit, &ann, key.as_deref(), plan)
            })
            .await
    }
}

fn conflict_code(outcome: Result<crate::store::Inserted, Error>) -> &'static str {
    match outcome {
        Err(Error::Conflict { code, .. }) => code,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// The store's order write runs on PostgreSQL as on SQLite: the order, the outbox entry with the
/// incident's hazard and narrative, the unit and incident states, the chained timeline event,
/// idempotency and every refusal.
#[tokio::test]
async fn the_order_write_runs_on_postgresql() {
    use crate::store::Inserted;

    let Some(db) = TestDatabase::create("order_write").await else {
        return;
    };
    let writer = db.writer().await;
    for statement in DOMAIN_SEED.split(';').filter(|s| !s.trim().is_empty()) {
        db.run(statement).await;
    }

    let order = match order_for(&writer, 1, Some("k1"), None).await {
        Ok(Inserted::New(order)) => order,
        other => panic!("the first order was not written: {other:?}"),
    };
    assert_eq!(
        (order.id, order.call_sign.as_str(), order.device_id),
        (1, "U-1", 1)
    );
    let delivery = &db
        .run("SELECT seq, message_id, order_id, body FROM deliveries")
        .await[0];
    let (seq, message, order_id, body): (i64, String, i64, String) = (
        delivery.get(0),
        delivery.get(1),
        delivery.get(2),
        delivery.get(3),
    );
    assert_eq!((seq, message.as_str(), order_id), (1, "order-1", 1));
    assert!(
        body.contains("a dog in the yard") && body.contains("suspect left on foot"),
        "{body}"
    );
    let states = &db
        .run("SELECT u.status, i.status FROM units u, incidents i WHERE u.id = 1")
        .await[0];
    assert_eq!(
        (states.get::<_, String>(0), states.get::<_, String>(1)),
        ("assigned".to_owned(), "dispatched".to_owned())
    );

    // A repeated key answers the first order; every refusal leaves nothing behind.
    assert!(matches!(
        order_for(&writer, 1, Some("k1"), None).await,
        Ok(Inserted::Earlier(1))
    ));
    assert_eq!(
        conflict_code(order_for(&writer, 2, Some("k1"), None).await),
        "idempotency_key_reused"
    );
    assert_eq!(
        conflict_code(order_for(&writer, 1, None, None).await),
        "unit_unavailable"
    );
    assert_eq!(
        conflict_code(order_for(&writer, 5, None, None).await),
        "no_device"
    );
    assert_eq!(
        conflict_code(order_for(&writer, 2, None, Some(1)).await),
        "plan_fulfilled"
    );
    assert!(matches!(
        order_for(&writer, 99, None, None).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(db.count("orders").await, 1);

    // Two orders in one batch chain their events to each other, after the first batch's.
    let release = hold_writer(&writer).await;
    let (two, three) = (
        order_for(&writer, 2, None, None),
        order_for(&writer, 3, None, None),
    );
    let (two, three) = (tokio::spawn(two), tokio::spawn(three));
    until_queued(&writer, 2).await;
    drop(release);
    assert!(matches!(two.await.unwrap(), Ok(Inserted::New(_))));
    assert!(matches!(three.await.unwrap(), Ok(Inserted::New(_))));

    let kinds = assert_chained(&db).await;
    assert_eq!(kinds, ["order_queued"; 3]);
}

/// Checks every event's `prev_hash` and `hash` as `dispatchd audit verify` does; returns the
/// events' kinds, oldest first.
pub(super) async fn assert_chained(db: &TestDatabase) -> Vec<String> {
    use crate::store::audit_chain::{event_hash, GENESIS, HASHED_COLUMNS};
    use crate::store::sql::Param;

    let events = db
        .run(&format!(
            "SELECT {HASHED_COLUMNS}, prev_hash, hash FROM events ORDER BY id"
        ))
        .await;
    let mut prev = GENESIS.to_owned();
    let mut kinds = Vec::new();
    for event in &events {
        let text = |i: usize| event.get::<_, Option<String>>(i);
        let int = |i: usize| event.get::<_, Option<i64>>(i);
        let (kind, actor, detail, source) = (text(2), text(3), text(7), text(9));
        let values: [Param<'_>; 10] = [
            int(0).into(),
            int(1).into(),
            kind.as_ref().into(),
            actor.as_ref().into(),
            int(4).into(),
            int(5).into(),
            int(6).into(),
            detail.as_ref().into(),
            int(8).into(),
            source.as_ref().into(),
        ];
        assert_eq!(
            text(10).as_deref(),
            Some(prev.as_str()),
            "event {:?}",
            int(0)
        );
        let hash = event_hash(&values, &prev);
        assert_eq!(
            text(11).as_deref(),
            Some(hash.as_str()),
            "event {:?}",
            int(0)
        );
        prev = hash;
        kinds.extend(kind);
    }
    kinds
}

fn act(
    writer: &PostgresWriter,
    device: i64,
    action_id: &str,
    action: dispatch_protocol::Action,
    tapped: Option<crate::domain::Millis>,
) -> impl std::future::Future<Output = crate::store::ActionOutcome> {
    let (writer, action_id) = (writer.clone(), action_id.to_owned());
    async move {
        writer
            .write(move |tx| {
                let request = crate::store::DeviceAction {
                    device_id: device,
                    unit_id: device,
                    action_id: &action_id,
                    action,
                    tapped,
                };
                crate::store::apply_device_action(tx, request, crate::domain::now_ms())
            })
            .await
            .unwrap()
    }
}

fn rejection(outcome: crate::store::ActionOutcome) -> String {
    match outcome {
        crate::store::ActionOutcome::Rejected { code, .. } => code,
        crate::store::ActionOutcome::Done => panic!("expected a rejection"),
    }
}

/// The order's life after its write runs on PostgreSQL as on SQLite: the device's receipt, the
/// officer's actions (an order read, acknowledged, accepted and cleared with its stamps and unit
/// states, a declined order freeing its unit, resent and reused action ids, texts, the emergency
/// button) and an operator's cancellation telling the device, all in one chained timeline.
#[tokio::test]
async fn an_orders_life_runs_on_postgresql() {
    use crate::store::ActionOutcome::Done;
    use dispatch_protocol::{Action, Location, ReportedStatus};

    let Some(db) = TestDatabase::create("officer_actions").await else {
        return;
    };
    let writer = db.writer().await;
    for statement in DOMAIN_SEED.split(';').filter(|s| !s.trim().is_empty()) {
        db.run(statement).await;
    }
    for unit in [1, 2] {
        assert!(matches!(
            order_for(&writer, unit, None, None).await,
            Ok(crate::store::Inserted::New(_))
        ));
    }
    let delivered = writer
        .write(|tx| crate::store::write_receipt(tx, 1, 1))
        .await
        .unwrap();
    assert_eq!(delivered.delivered_orders, [1]);
    let displayed = Action::Displayed {
        message_id: "order-1".into(),
    };
    // Tapped long before the order existed: dated no earlier than the order.
    assert_eq!(
        act(&writer, 1, "a1", displayed.clone(), Some(1)).await,
        Done
    );
    assert_eq!(
        act(&writer, 1, "a1", displayed, None).await,
        Done,
        "a resend"
    );
    let acknowledge = Action::Acknowledge {
        message_id: "order-1".into(),
    };
    assert_eq!(
        rejection(act(&writer, 1, "a1", acknowledge.clone(), None).await),
        "action_id_reused"
    );
    assert_eq!(act(&writer, 1, "a2", acknowledge, None).await, Done);
    assert_eq!(
        rejection(
            act(
                &writer,
                1,
                "a3",
                Action::Displayed {
                    message_id: "order-9".into()
                },
                None
            )
            .await
        ),
        "unknown_message"
    );
    assert_eq!(
        rejection(act(&writer, 1, "a4", Action::Accept { order_id: 2 }, None).await),
        "not_your_order"
    );
    assert_eq!(
        act(&writer, 1, "a5", Action::Accept { order_id: 1 }, None).await,
        Done
    );
    assert_eq!(
        rejection(act(&writer, 1, "a6", Action::Accept { order_id: 1 }, None).await),
        "already_decided"
    );
    for (id, status) in [
        ("a7", ReportedStatus::EnRoute),
        ("a8", ReportedStatus::Cleared),
    ] {
        let status = Action::Status {
            status,
            order_id: None,
        };
        assert_eq!(act(&writer, 1, id, status, None).await, Done);
    }
    let decline = Action::Decline {
        order_id: 2,
        reason: "other".into(),
        detail: Some("flat tyre".into()),
    };
    assert_eq!(act(&writer, 2, "b1", decline, None).await, Done);
    let text = |incident_id| Action::Text {
        text: "on my way".into(),
        incident_id: Some(incident_id),
    };
    assert_eq!(
        rejection(act(&writer, 2, "b2", text(7), None).await),
        "unknown_incident"
    );
    assert_eq!(act(&writer, 2, "b3", text(1), None).await, Done);
    let location = Location {
        lat: 60.2,
        lon: 24.9,
        accuracy_m: Some(5.0),
        heading_deg: None,
        speed_mps: None,
        fix_time_ms: 0,
    };
    let emergency = Action::Emergency {
        location: Some(location),
    };
    assert_eq!(act(&writer, 3, "c1", emergency, None).await, Done);
    assert!(matches!(
        order_for(&writer, 4, None, None).await,
        Ok(crate::store::Inserted::New(_))
    ));
    writer
        .write(|tx| {
            let ann = crate::domain::Actor::Operator {
                id: 1,
                username: "ann".into(),
            };
            let cancel = crate::store::Withdrawal::Cancel;
            crate::store::write_withdrawal(tx, 3, cancel, "wrong unit", &ann, 0)
        })
        .await
        .unwrap();
    let cancelled = &db
        .run("SELECT o.state, u.status FROM orders o JOIN units u ON u.id = o.unit_id WHERE o.id = 3")
        .await[0];
    assert_eq!(
        (cancelled.get::<_, String>(0), cancelled.get::<_, String>(1)),
        ("cancelled".to_owned(), "available".to_owned())
    );
    let cancel = &db
        .run("SELECT device_id, seq, body FROM deliveries WHERE message_id = 'cancel-3'")
        .await[0];
    assert_eq!((cancel.get::<_, i64>(0), cancel.get::<_, i64>(1)), (4, 2));
    assert!(cancel.get::<_, String>(2).contains("wrong unit"));

    let orders = db
        .run(
            "SELECT state, created_at <= displayed_at, acknowledged_at IS NOT NULL,
                    completed_at IS NOT NULL, decline_reason, decline_detail
             FROM orders ORDER BY id",
        )
        .await;
    let first = &orders[0];
    assert_eq!(first.get::<_, String>(0), "completed");
    assert!(first.get::<_, bool>(1) && first.get::<_, bool>(2) && first.get::<_, bool>(3));
    let second = &orders[1];
    assert_eq!(second.get::<_, String>(0), "declined");
    assert_eq!(
        (
            second.get::<_, Option<String>>(4),
            second.get::<_, Option<String>>(5)
        ),
        (Some("other".into()), Some("flat tyre".into()))
    );
    let statuses: Vec<String> = db
        .run("SELECT status FROM units WHERE id <= 2 ORDER BY id")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(statuses, ["available", "available"]);
    let emergency = &db
        .run("SELECT priority, emergency_unit_id FROM incidents WHERE kind = 'officer_emergency'")
        .await[0];
    assert_eq!(
        (
            emergency.get::<_, i64>(0),
            emergency.get::<_, Option<i64>>(1)
        ),
        (0, Some(3))
    );
    assert_eq!(db.count("texts").await, 1);
    assert_eq!(
        db.count("device_actions").await,
        8,
        "refused actions are not recorded"
    );
    let kinds = assert_chained(&db).await;
    assert_eq!(
        kinds,
        [
            "order_queued",
            "order_queued",
            "order_delivered",
            "order_displayed",
            "order_acknowledged",
            "order_accepted",
            "unit_en_route",
            "unit_cleared",
            "order_completed",
            "order_declined",
            "unit_message",
            "incident_created",
            "officer_emergency",
            "order_queued",
            "order_cancelled",
        ]
    );
}
