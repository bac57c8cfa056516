//! One poller for all consoles: reads new events from the append-only `events` table by id
//! cursor (every 300 ms) and moved units (about once a second), turns each into a JSON delta
//! and publishes it on a bounded broadcast channel. A socket that falls behind is dropped.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use crate::domain::{now_ms, TimelineEvent};
use crate::store::Store;

/// How often the events table is read.
const EVENT_POLL: Duration = Duration::from_millis(300);
/// Every this many event polls, positions are read too (≈ 0.9 s).
const POSITION_EVERY: u32 = 3;
/// Events read per query; a poll reads batches until none is left (up to `BATCHES_PER_POLL`).
const EVENT_BATCH: u32 = 500;
/// Batches read per poll at most: 10,000 events every 300 ms.
const BATCHES_PER_POLL: u32 = 20;
/// Deltas a socket may be behind before it is dropped (it then resyncs with a snapshot).
const QUEUE: usize = 1024;

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
}

impl Default for ConsoleFeed {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(QUEUE);
        let (stop, _) = watch::channel(false);
        Self {
            tx,
            stop: Arc::new(stop),
        }
    }
}

impl ConsoleFeed {
    /// A receiver of every delta published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Outgoing>> {
        self.tx.subscribe()
    }

    /// Resolves when the server is shutting down.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Tells the poller and every socket to finish (server shutdown).
    pub fn close(&self) {
        self.stop.send_replace(true);
    }

    /// Spawns the poller; it runs until [`ConsoleFeed::close`].
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
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut position_cursor = now_ms();
        let mut tick = tokio::time::interval(EVENT_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut until_positions = POSITION_EVERY;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.poll_events(&store, &mut cursor).await {
                tracing::warn!(error = %e, "console feed: reading events failed");
            }
            until_positions -= 1;
            if until_positions == 0 {
                until_positions = POSITION_EVERY;
                if let Err(e) = self.poll_positions(&store, &mut position_cursor).await {
                    tracing::warn!(error = %e, "console feed: reading positions failed");
                }
            }
        }
    }

    /// Publishes the events after `cursor`, batch after batch until none is left (at a busy
    /// hour the events of one poll can outnumber a batch, and the feed must not fall behind),
    /// but at most [`BATCHES_PER_POLL`] batches, so that positions and shutdown still get
    /// their turn.
    async fn poll_events(&self, store: &Store, cursor: &mut i64) -> crate::store::Result<()> {
        for _ in 0..BATCHES_PER_POLL {
            let events = store.audit_log(*cursor, EVENT_BATCH).await?;
            let read = events.len();
            for event in events {
                *cursor = event.id;
                if self.tx.receiver_count() == 0 {
                    continue;
                }
                let id = event.id;
                let delta = event_delta(store, event).await?;
                let _ = self.tx.send(Arc::new(Outgoing {
                    event_id: Some(id),
                    text: delta.to_string(),
                }));
            }
            if read < EVENT_BATCH as usize {
                break;
            }
        }
        Ok(())
    }

    async fn poll_positions(&self, store: &Store, cursor: &mut i64) -> crate::store::Result<()> {
        let moved = store.positions_after(*cursor).await?;
        let Some(last) = moved.last() else {
            return Ok(());
        };
        *cursor = last.received_ms;
        if self.tx.receiver_count() > 0 {
            let text = json!({ "type": "positions", "positions": moved }).to_string();
            let _ = self.tx.send(Arc::new(Outgoing {
                event_id: None,
                text,
            }));
        }
        Ok(())
    }
}

/// An event with the current state of what it touched: the incident and its orders, the unit.
/// Carrying whole objects makes deltas idempotent, so applying one twice is harmless.
///
/// # Errors
/// On a database error.
pub async fn event_delta(store: &Store, event: TimelineEvent) -> crate::store::Result<Value> {
    let (incident, orders) = match event.incident_id {
        Some(id) => (
            Some(store.incident(id).await?),
            Some(store.incident_orders(id).await?),
        ),
        None => (None, None),
    };
    let unit = match event.unit_id {
        Some(id) => Some(store.unit(id).await?),
        None => None,
    };
    Ok(json!({
        "type": "event",
        "event": event,
        "incident": incident,
        "orders": orders,
        "unit": unit,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, NewIncident};

    /// A backlog larger than one batch is published in full by a single poll, in order.
    #[tokio::test]
    async fn one_poll_publishes_a_backlog_of_several_batches() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
        let feed = ConsoleFeed::default();
        let mut deltas = feed.subscribe();
        let mut cursor = store.last_event_id().await.unwrap();
        let backlog = usize::try_from(EVENT_BATCH).unwrap() + 200;
        let new = NewIncident::parse("theft", 2, 60.17, 24.94, None, None, None, &[]).unwrap();
        for _ in 0..backlog {
            store.create_incident(&new, &Actor::System).await.unwrap();
        }
        feed.poll_events(&store, &mut cursor).await.unwrap();
        let mut ids = Vec::new();
        while let Ok(delta) = deltas.try_recv() {
            ids.push(delta.event_id.unwrap());
        }
        assert_eq!(ids.len(), backlog);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(cursor, *ids.last().unwrap());
    }
}
