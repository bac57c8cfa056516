//! The PostgreSQL write path against the machine's PostgreSQL (`DATABASE_URL`; each test on a
//! database of its own, dropped at the end). Without `DATABASE_URL` the tests say so and pass.

use std::sync::Arc;

use postgres::{Client, NoTls};

use super::{PostgresSettings, PostgresWriter};
use crate::store::Error;

/// A fresh database, dropped (with its connections) when this goes out of scope.
struct TestDatabase {
    admin: String,
    name: String,
}

impl TestDatabase {
    /// `None` when `DATABASE_URL` is unset.
    async fn create(test: &str) -> Option<Self> {
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

    fn url(&self) -> String {
        self.url_with(None, "")
    }

    async fn writer(&self) -> PostgresWriter {
        PostgresWriter::start(PostgresSettings::parse(&self.url()).unwrap(), Arc::new(()))
            .await
            .unwrap()
    }

    /// Runs `sql` on the test database from a connection of its own.
    async fn run(&self, sql: &str) -> Vec<postgres::Row> {
        let (url, sql) = (self.url(), sql.to_owned());
        blocking(move || {
            Client::connect(&url, NoTls)
                .unwrap()
                .query(&sql, &[])
                .unwrap()
        })
        .await
    }

    async fn count(&self, table: &str) -> i64 {
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
            .write(move |tx| tx.execute("INSERT INTO probe (name) VALUES (?1)", &[&name]))
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
                        tx.execute("INSERT INTO probe (name) VALUES (?1)", &[&format!("w{n}")])
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
                            tx.execute("INSERT INTO probe (name) VALUES ('late')", &[])?;
                            return Err::<(), _>(Error::conflict("refused", "after a change"));
                        }
                        // A statement that fails, its error put up with by the job: the
                        // transaction is aborted all the same.
                        let _ = tx.execute("INSERT INTO no_such_table VALUES (1)", &[]);
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
            tx.execute("INSERT INTO probe (name) VALUES ('lost')", &[])?;
            tx.query("SELECT pg_terminate_backend(pg_backend_pid())", &[])
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
            tx.execute("SET TRANSACTION READ ONLY", &[])?;
            tx.execute("INSERT INTO probe (name) VALUES ('x')", &[])
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
