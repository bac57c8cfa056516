//! Losing the Patroni leader: two `dispatchd` nodes on two PostgreSQL servers run by Patroni
//! in synchronous mode (with etcd, all on loopback), a dispatcher creating orders on one node
//! and tablets on the other. The leader's machine is lost (Patroni and PostgreSQL killed with
//! SIGKILL); Patroni, not the test, promotes the synchronous standby once the leader's lock
//! expires. Both nodes carry on without a restart, and every order answered 201 reaches its
//! tablet exactly once: what `postgres_failover` checks with the test promoting the standby
//! itself, here with the failover a deployment gets.

use std::collections::HashSet;
use std::time::Instant;

use dispatch_tests::dispatching::{until, TwoNodes};
use dispatch_tests::patroni::{PatroniCluster, LOOP_WAIT_SECS, TTL_SECS};
use reqwest::StatusCode;

/// Two `dispatchd` nodes on a Patroni cluster; tablets on node B, a dispatcher on node A. The
/// leader is killed: every request is refused with 503 and `Retry-After` until Patroni promotes
/// the synchronous standby, then orders are answered 201 again through it, on both nodes as
/// they are; every order answered 201 is on the new leader and reaches its tablet exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_carry_on_when_patroni_replaces_the_lost_leader() {
    if std::env::var("DATABASE_URL").is_err() {
        eprintln!("DATABASE_URL is unset: the Patroni failover test did not run");
        return;
    }
    let Some(mut cluster) = PatroniCluster::start().await.unwrap() else {
        eprintln!(
            "patroni, etcd or the PostgreSQL server binaries are not installed (`make test-deps`): \
             the Patroni failover test did not run"
        );
        return;
    };
    let leader = cluster.leader_port().await.unwrap().unwrap();
    cluster
        .psql(leader, "postgres", "CREATE DATABASE dispatch")
        .await
        .unwrap();
    let mut nodes = TwoNodes::start(&cluster.url("dispatch")).await;
    let ledger = nodes.ledger.clone();
    until("orders before the loss", || ledger.confirmed_count() >= 20).await;

    let lost_at = Instant::now();
    let lost_leader = cluster.kill_leader().await.unwrap();
    let confirmed_at_loss = ledger.confirmed_count();
    let new_leader = cluster.wait_new_leader().await.unwrap();
    let new_leader_after = lost_at.elapsed();
    assert_ne!(new_leader, lost_leader);
    until("orders through the new leader", || {
        ledger.confirmed_count() >= confirmed_at_loss + 20
    })
    .await;
    let confirmed = nodes.stop_dispatching().await;
    // Every order answered 201, before the loss too, is stored on the new leader.
    let stored: HashSet<(i64, i64)> = cluster
        .psql(new_leader, "dispatch", "SELECT unit_id, id FROM orders")
        .await
        .unwrap()
        .lines()
        .map(|row| {
            let (unit, order) = row.split_once('|').unwrap();
            (unit.parse().unwrap(), order.parse().unwrap())
        })
        .collect();
    let lost: Vec<_> = confirmed
        .iter()
        .filter(|(unit, order, _)| !stored.contains(&(*unit, *order)))
        .collect();
    assert!(
        lost.is_empty(),
        "answered 201, not on the new leader: {lost:?}"
    );
    // The orders made on A after the promotion reached B's tablets: B's listener found the new
    // leader. B reports itself ready on it.
    let (status, body) = nodes.on_b.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eprintln!(
        "Patroni leader killed: {} orders answered 201, 0 lost, 0 duplicated; {} requests \
         refused with 503 meanwhile; new leader seen {:?} after the kill; first 201 {:?} after \
         the kill. That time is bounded by Patroni's ttl ({TTL_SECS} s, the least Patroni \
         accepts): the lost leader's lock in etcd must expire before the standby is promoted, \
         ttl after its last renewal, which came at most loop_wait ({LOOP_WAIT_SECS} s) before \
         the kill",
        confirmed.len(),
        ledger.refusals(),
        new_leader_after,
        ledger.first_confirmed_after(lost_at)
    );
    nodes.stop().await;
}
