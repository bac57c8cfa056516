//! Losing the PostgreSQL primary (issue 13, item 4): a primary whose commits wait for a
//! synchronous standby is killed with SIGKILL while writers keep writing; the standby is promoted
//! (what Patroni does). Every write answered as stored before the loss is on the promoted
//! standby, nothing is answered as stored while no server accepts writes, and the writer finds
//! the new primary by itself, without a restart. Two `dispatchd` nodes on that pair go on
//! through the same loss: refusals meanwhile, then orders again, each delivered once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dispatch_server::store::postgres::{PostgresSettings, PostgresWriter};
use dispatch_server::store::sql::{Param, Statements};
use dispatch_server::store::{Error, Store};
use dispatch_tests::dispatching::{until, TwoNodes};
use dispatch_tests::pg_cluster::PgCluster;
use reqwest::StatusCode;

/// Writes confirmed (name, when), and writes refused.
#[derive(Default)]
struct Outcomes {
    confirmed: Mutex<Vec<(String, Instant)>>,
    refused: std::sync::atomic::AtomicUsize,
}

impl Outcomes {
    fn confirmed(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }
}

/// Inserts `task-n` for n = 1, 2, … until `stop`; a refused write is tried again after a pause,
/// as a console would, under a new name.
async fn keep_writing(
    writer: PostgresWriter,
    task: usize,
    outcomes: Arc<Outcomes>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("{task}-{n}");
        let row = name.clone();
        let written = writer
            .write(move |tx| tx.run("INSERT INTO probe (name) VALUES (?1)", &[Param::Text(&row)]))
            .await;
        match written {
            Ok(1) => outcomes
                .confirmed
                .lock()
                .unwrap()
                .push((name, Instant::now())),
            Err(Error::StorageFailed(_)) => {
                outcomes.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("write {name}: {other:?}"),
        }
    }
}

/// A primary with its synchronous standby and a database `dispatch`; `None` (saying why) when
/// the tests do not run on PostgreSQL or its server binaries are missing.
async fn cluster_with_database() -> Option<PgCluster> {
    if std::env::var("DATABASE_URL").is_err() {
        eprintln!("DATABASE_URL is unset: the PostgreSQL failover test did not run");
        return None;
    }
    let Some(cluster) = PgCluster::start().await.unwrap() else {
        eprintln!("no PostgreSQL server binaries: the failover test did not run");
        return None;
    };
    cluster
        .psql(cluster.primary_port, "postgres", "CREATE DATABASE dispatch")
        .await
        .unwrap();
    Some(cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_confirmed_before_the_primary_is_lost_are_on_the_promoted_standby() {
    let Some(cluster) = cluster_with_database().await else {
        return;
    };
    let primary = cluster.primary_port;
    cluster
        .psql(
            primary,
            "dispatch",
            "CREATE TABLE probe (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                 name TEXT NOT NULL UNIQUE)",
        )
        .await
        .unwrap();
    let settings = PostgresSettings::parse(&cluster.url("dispatch")).unwrap();
    let writer = PostgresWriter::start(settings.clone(), Arc::new(()))
        .await
        .unwrap();
    assert_eq!(writer.durability().unwrap().synchronous_standbys, 1);
    // What /readyz reports, read live on the primary.
    let store = Store::open_postgres(settings, Arc::new(())).await.unwrap();
    assert_eq!(store.synchronous_standbys().await.unwrap(), Some(1));

    let outcomes = Arc::new(Outcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            tokio::spawn(keep_writing(
                writer.clone(),
                task,
                outcomes.clone(),
                stop.clone(),
            ))
        })
        .collect();
    until("writes before the loss", || outcomes.confirmed() >= 200).await;

    cluster.kill_primary().await.unwrap();
    let lost_at = Instant::now();
    let confirmed_before = outcomes.confirmed();
    // Until the standby is promoted, no server accepts writes: let the writers find that out.
    until("refusals while no server accepts writes", || {
        outcomes.refused.load(Ordering::Relaxed) >= 4
    })
    .await;
    let confirmed_without_primary = outcomes.confirmed() - confirmed_before;
    cluster.promote_standby().await.unwrap();
    until("writes on the promoted standby", || {
        outcomes.confirmed() >= confirmed_before + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let stored: std::collections::HashSet<String> = cluster
        .psql(cluster.standby_port, "dispatch", "SELECT name FROM probe")
        .await
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let confirmed = outcomes.confirmed.lock().unwrap().clone();
    let missing: Vec<&String> = confirmed
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !stored.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "confirmed but not on the new primary: {missing:?}"
    );
    assert!(
        confirmed_without_primary <= 4,
        "at most the writes in flight at the kill can be confirmed after it: {confirmed_without_primary}"
    );
    assert_eq!(
        writer.durability().unwrap().synchronous_standbys,
        0,
        "the writer is on the promoted standby, which has no standby of its own"
    );
    let first_after = confirmed
        .iter()
        .map(|(_, at)| *at)
        .filter(|at| *at > lost_at)
        .min()
        .unwrap();
    eprintln!(
        "primary killed: {} writes confirmed before, {} after; {} refused meanwhile; first \
         confirmed write {:?} after the kill (includes the test's own wait before promoting)",
        confirmed_before,
        confirmed.len() - confirmed_before,
        outcomes.refused.load(Ordering::Relaxed),
        first_after - lost_at
    );
}

/// Two `dispatchd` nodes on the primary and its synchronous standby; tablets on node B, a
/// dispatcher on node A. The primary is killed and the standby promoted: both nodes carry on
/// without a restart (A's writes, B's listener and reads find the new primary), every request
/// meanwhile is refused with 503 and `Retry-After`, never a false 201, and every order answered
/// 201 reaches its tablet exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_carry_on_through_the_loss_of_the_primary() {
    let Some(cluster) = cluster_with_database().await else {
        return;
    };
    let mut nodes = TwoNodes::start(&cluster.url("dispatch")).await;
    let ledger = nodes.ledger.clone();
    let confirmed = || ledger.confirmed_count();
    until("orders before the loss", || confirmed() >= 20).await;

    let lost_at = Instant::now();
    cluster.kill_primary().await.unwrap();
    until("refusals while no server accepts writes", || {
        ledger.refusals() >= 2
    })
    .await;
    let before = confirmed();
    cluster.promote_standby().await.unwrap();
    until("orders through the promoted standby", || {
        confirmed() >= before + 20
    })
    .await;
    let confirmed = nodes.stop_dispatching().await;
    // The orders made on A after the promotion reached B's tablets: B's listener found the new
    // primary. B reports itself ready on it.
    let (status, body) = nodes.on_b.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!(
        "two nodes, primary killed: {} orders answered 201, 0 lost, 0 duplicated; {} requests \
         refused with 503 meanwhile; first 201 {:?} after the kill (includes the test's own \
         wait before promoting)",
        confirmed.len(),
        ledger.refusals(),
        ledger.first_confirmed_after(lost_at)
    );
    nodes.stop().await;
}
