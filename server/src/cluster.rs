//! A node following the others of its cluster (several `dispatchd` on one PostgreSQL
//! database). What another node commits reaches this one as a notice (`store::postgres::bus`)
//! and is applied here as the service layer applies its own commits: a device session connected
//! here reads the outbox entries committed elsewhere, the live index reads the units changed
//! elsewhere and takes their fixes, the console feed reads the new events, an older connection
//! of a device that reconnected elsewhere closes with `SUPERSEDED`. After every (re)connection
//! of the listener the node resyncs from the database, so a notice missed meanwhile is made
//! good: the outbox and the database are the truth, the notice only the wake-up.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::service::Dispatch;
use crate::store::postgres::bus::{Heard, Notice, Told};

/// How long after a failed resync it is tried again.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// Applies what the listener hears until it stops or `stop` turns true.
pub async fn follow(
    dispatch: Dispatch,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            next = heard.recv() => next,
            _ = stop.changed() => return,
        };
        match next {
            None => return,
            Some(Heard::Notice(notice)) => apply(&dispatch, notice).await,
            Some(Heard::Resync) => {
                dispatch.metrics.cluster_resynced();
                while let Err(e) = resync(&dispatch).await {
                    tracing::error!(error = %e, "cannot resync with the cluster; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RESYNC_RETRY) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }
}

/// One notice of another node.
async fn apply(dispatch: &Dispatch, notice: Notice) {
    let mut units = BTreeSet::new();
    for told in notice.changes {
        match told {
            Told::Delivery { device } => dispatch.devices.outbox_grew(device),
            Told::Unit { unit } => {
                units.insert(unit);
            }
            Told::Moved { fix } => {
                if !dispatch.live.moved(&fix) {
                    // Its first fix: not in this node's index yet.
                    units.insert(fix.unit_id);
                }
                dispatch.feed.unit_moved(fix);
            }
            Told::DeviceClosed {
                device,
                code,
                reason,
            } => dispatch.devices.kick(device, code, &reason),
            Told::FallbackQueued => dispatch.fallback_wake.notify_one(),
            Told::Connected { device, generation } => {
                dispatch.devices.connected_elsewhere(device, generation);
            }
        }
    }
    if !units.is_empty() {
        let ids: Vec<i64> = units.into_iter().collect();
        match dispatch.store.units_by_id(&ids).await {
            Ok(units) => {
                for unit in units {
                    dispatch.live.load(&unit);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the units another node changed");
            }
        }
    }
    if notice.events {
        dispatch.feed.events_committed();
    }
}

/// Reads again everything a missed notice could have changed.
async fn resync(dispatch: &Dispatch) -> Result<(), crate::store::Error> {
    let store = &dispatch.store;
    for unit in store.units().await? {
        dispatch.live.load(&unit);
    }
    let local = dispatch.devices.generations();
    let devices: Vec<i64> = local.iter().map(|(device, _)| *device).collect();
    for (device, newest) in store.connection_generations(&devices).await? {
        if local.contains(&(device, newest)) {
            continue;
        }
        dispatch.devices.connected_elsewhere(device, newest);
    }
    // The tablets of lost nodes, and those watched here but connected elsewhere, are the
    // escalation sweep's (`escalation::review_links`), which looks at every pass.
    dispatch.devices.read_every_outbox();
    dispatch.feed.events_committed();
    dispatch.fallback_wake.notify_one();
    Ok(())
}
