//! One publisher for all consoles, pushed by commits: when a committed batch appended timeline
//! events it is woken at once, reads the new events by id cursor together with what they
//! touched (incidents, orders, units: one query each per batch of events, not per event), turns
//! each event into a JSON delta and publishes it on a bounded broadcast channel. Units' newest
//! fixes are collected as they commit and published together about once a second. A socket that
//! falls behind is dropped.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch, Notify};

use crate::domain::{Incident, Order, TimelineEvent, Unit};
use crate::store::{EndedSession, PositionChange, Store};

/// How often moved units are published.
const POSITION_EVERY: Duration = Duration::from_secs(1);
/// Events read per query; a wake-up reads batches until none is left (up to
/// `BATCHES_PER_WAKE`, then it goes round again so positions and shutdown get their turn).
const EVENT_BATCH: u32 = 500;
/// Batches read per wake-up at most.
const BATCHES_PER_WAKE: u32 = 20;
/// Deltas a socket may be behind before it is dropped (it then resyncs with a snapshot).
const QUEUE: usize = 1024;
/// Ended sessions a socket may be behind on before it rechecks its own session.
const ENDED_QUEUE: usize = 256;
/// After a failed read, the publisher tries again this much later.
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// One delta, serialised once for every socket.
#[derive(Debug)]
pub struct Outgoing {
    /// The event it carries, if any: a socket skips events its snapshot already holds.
    pub event_id: Option<i64>,
    pub text: String,
}

/// The shared feed. Cheap to clone; start it once with [`ConsoleFeed::start`].
#[derive(Debug, Clone)]
pub struct ConsoleFeed {
    tx: broadcast::Sender<Arc<Outgoing>>,
    stop: Arc<watch::Sender<bool>>,
    /// Ids of sessions that just ended: their sockets close at once.
    ended: broadcast::Sender<i64>,
    /// Events were committed since the publisher last read.
    events: Arc<Notify>,
    /// The newest fix of each unit that moved since the last publication.
    moved: Arc<Mutex<HashMap<i64, PositionChange>>>,
}

impl Default for ConsoleFeed {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(QUEUE);
        let (stop, _) = watch::channel(false);
        let (ended, _) = broadcast::channel(ENDED_QUEUE);
        Self {
            tx,
            stop: Arc::new(stop),
            ended,
            events: Arc::default(),
            moved: Arc::default(),
        }
    }
}

impl ConsoleFeed {
    /// A receiver of every delta published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Outgoing>> {
        self.tx.subscribe()
    }

    /// Consoles subscribed to the feed now (each console socket holds one subscription).
    pub fn connected(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Ids of sessions as they end (logout, ended, expired, account changed).
    pub fn ended_sessions(&self) -> broadcast::Receiver<i64> {
        self.ended.subscribe()
    }

    /// Closes the sockets of sessions that ended.
    pub fn sessions_ended(&self, ended: &[EndedSession]) {
        for session in ended {
            let _ = self.ended.send(session.id);
        }
    }

    /// Resolves when the server is shutting down.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells the publisher and every socket to finish (server shutdown).
    pub fn close(&self) {
        self.stop.send_replace(true);
    }

    /// A batch that appended timeline events has committed: publish them now.
    pub fn events_committed(&self) {
        self.events.notify_one();
    }

    /// A unit's newest fix has committed; it goes out with the next positions delta.
    pub fn unit_moved(&self, position: PositionChange) {
        self.moved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(position.unit_id, position);
    }

    /// Spawns the publisher; it runs until [`ConsoleFeed::close`].
    pub fn start(&self, store: Store) -> tokio::task::JoinHandle<()> {
        let feed = self.clone();
        tokio::spawn(async move { feed.run(store).await })
    }

    async fn run(self, store: Store) {
        let mut stop = self.stopped();
        let mut cursor = loop {
            match store.last_event_id().await {
                Ok(id) => break id,
                Err(e) => {
                    tracing::warn!(error = %e, "console feed: cannot read the event cursor");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            }
        };
        let mut positions = tokio::time::interval(POSITION_EVERY);
        positions.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.events.notified() => {
                    match self.publish_events(&store, &mut cursor).await {
                        // More than one wake-up's worth waiting: go round again.
                        Ok(false) => self.events.notify_one(),
                        Ok(true) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "console feed: reading events failed; retrying");
                            tokio::time::sleep(RETRY_AFTER).await;
                            self.events.notify_one();
                        }
                    }
                }
                _ = positions.tick() => self.publish_positions(),
                _ = stop.changed() => return,
            }
        }
    }

    /// Publishes the events after `cursor`, batch after batch, at most [`BATCHES_PER_WAKE`]
    /// batches. Returns whether it read everything there was.
    async fn publish_events(&self, store: &Store, cursor: &mut i64) -> crate::store::Result<bool> {
        for _ in 0..BATCHES_PER_WAKE {
            let events = store.audit_log(*cursor, EVENT_BATCH).await?;
            let read = events.len();
            if let Some(last) = events.last() {
                *cursor = last.id;
            }
            if self.tx.receiver_count() > 0 && read > 0 {
                for delta in event_deltas(store, events).await? {
                    let _ = self.tx.send(Arc::new(delta));
                }
            }
            if read < EVENT_BATCH as usize {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn publish_positions(&self) {
        let moved = std::mem::take(&mut *self.moved.lock().unwrap_or_else(PoisonError::into_inner));
        if moved.is_empty() || self.tx.receiver_count() == 0 {
            return;
        }
        let mut positions: Vec<PositionChange> = moved.into_values().collect();
        positions.sort_unstable_by_key(|p| (p.received_ms, p.unit_id));
        let text = json!({ "type": "positions", "positions": positions }).to_string();
        let _ = self.tx.send(Arc::new(Outgoing {
            event_id: None,
            text,
        }));
    }
}

/// Each event with the current state of what it touched: its incident, its order, its unit.
/// Carrying whole objects makes deltas idempotent, so applying one twice is harmless; carrying
/// only the event's own order (not every order of the incident) keeps a delta small however
/// many units an incident has had.
///
/// # Errors
/// On a database error.
async fn event_deltas(
    store: &Store,
    events: Vec<TimelineEvent>,
) -> crate::store::Result<Vec<Outgoing>> {
    let ids = |of: fn(&TimelineEvent) -> Option<i64>| -> Vec<i64> {
        let set: BTreeSet<i64> = events.iter().filter_map(of).collect();
        set.into_iter().collect()
    };
    let (incident_ids, order_ids, unit_ids) = (
        ids(|e| e.incident_id),
        ids(|e| e.order_id),
        ids(|e| e.unit_id),
    );
    let incidents: HashMap<i64, Incident> = store
        .incidents_by_id(&incident_ids)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let orders: HashMap<i64, Order> = store
        .orders_by_id(&order_ids)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect();
    let units: HashMap<i64, Unit> = store
        .units_by_id(&unit_ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(events
        .into_iter()
        .map(|event| {
            let id = event.id;
            let incident = event.incident_id.and_then(|i| incidents.get(&i));
            let delta: Value = json!({
                "type": "event",
                "incident": incident,
                "orders": event.order_id.and_then(|o| orders.get(&o)).map(|o| [o]),
                "unit": event.unit_id.and_then(|u| units.get(&u)),
                "event": event,
            });
            Outgoing {
                event_id: Some(id),
                text: delta.to_string(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, NewIncident};

    /// A backlog larger than one batch is published in full, in order, each event with its
    /// incident.
    #[tokio::test]
    async fn a_backlog_of_several_batches_is_published_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_standalone(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let feed = ConsoleFeed::default();
        let mut deltas = feed.subscribe();
        let mut cursor = store.last_event_id().await.unwrap();
        let backlog = usize::try_from(EVENT_BATCH).unwrap() + 200;
        let new =
            NewIncident::parse("theft", 2, 60.17, 24.94, None, None, None, None, &[]).unwrap();
        for _ in 0..backlog {
            store
                .create_incident(&new, &Actor::System, None)
                .await
                .unwrap();
        }
        assert!(feed.publish_events(&store, &mut cursor).await.unwrap());
        let mut ids = Vec::new();
        while let Ok(delta) = deltas.try_recv() {
            let v: Value = serde_json::from_str(&delta.text).unwrap();
            assert_eq!(v["incident"]["id"], v["event"]["incident_id"]);
            ids.push(delta.event_id.unwrap());
        }
        assert_eq!(ids.len(), backlog);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cursor, *ids.last().unwrap());
    }
}
