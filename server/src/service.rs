//! The service layer: "commit, then side effects" in one place. Every write goes through the
//! store's one writer; after each commit the writer hands the batch's changes to [`Effects`],
//! which passes them on in commit order before any caller is answered: device sessions get
//! their new outbox entries (or are closed), the live index gets units as they now are and
//! their newest fixes, the console feed learns of new events and moves, the fallback sender of
//! queued messages. Handlers, device sessions and the escalation sweep only call the store.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Notify;

use crate::channel::Hub;
use crate::console::ConsoleFeed;
use crate::geo::LiveUnits;
use crate::metrics::Metrics;
use crate::store::postgres::PostgresSettings;
use crate::store::{Change, CommitListener, Committed, PositionChange, Store};

/// The store and the live state its commits keep current. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub store: Store,
    /// Connected device sessions.
    pub devices: Hub,
    /// Live positions and availability of the units.
    pub live: LiveUnits,
    /// The operators' live feed.
    pub feed: ConsoleFeed,
    /// Wakes the fallback sender when an escalation queued a message.
    pub fallback_wake: Arc<Notify>,
    /// This node's metrics.
    pub metrics: Metrics,
}

impl Dispatch {
    /// Opens the store at `path` with [`Effects`] listening, and loads every unit into the live
    /// index.
    ///
    /// # Errors
    /// When the store cannot be opened or read.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        Self::with("sqlite", |listener| Store::open(path, listener)).await
    }

    /// [`Dispatch::open`] on PostgreSQL.
    ///
    /// # Errors
    /// When the store cannot be opened or read.
    pub async fn open_postgres(settings: PostgresSettings) -> anyhow::Result<Self> {
        Self::with("postgres", |listener| {
            Store::open_postgres(settings, listener)
        })
        .await
    }

    async fn with<F, Opened>(backend: &'static str, open: F) -> anyhow::Result<Self>
    where
        F: FnOnce(Arc<dyn CommitListener>) -> Opened,
        Opened: std::future::Future<Output = anyhow::Result<Store>>,
    {
        let effects = Effects {
            devices: Hub::default(),
            live: LiveUnits::default(),
            feed: ConsoleFeed::default(),
            fallback_wake: Arc::default(),
            metrics: Metrics::new(backend),
        };
        let store = open(Arc::new(effects.clone())).await?;
        for unit in store.units().await? {
            effects.live.load(&unit);
        }
        Ok(Self {
            store,
            devices: effects.devices,
            live: effects.live,
            feed: effects.feed,
            fallback_wake: effects.fallback_wake,
            metrics: effects.metrics,
        })
    }
}

/// Passes committed changes on; see the module header.
#[derive(Debug, Clone)]
struct Effects {
    devices: Hub,
    live: LiveUnits,
    feed: ConsoleFeed,
    fallback_wake: Arc<Notify>,
    metrics: Metrics,
}

impl CommitListener for Effects {
    fn committed(&self, batch: Committed) {
        self.metrics.committed(batch.writes, batch.took);
        let at = Instant::now();
        for change in batch.changes {
            match change {
                Change::Delivery {
                    device_id,
                    delivery,
                } => self.devices.deliver(device_id, delivery, at),
                Change::Unit(unit) => self.live.load(&unit),
                Change::Moved(unit) => {
                    let Some(fix) = PositionChange::of(&unit) else {
                        continue;
                    };
                    if !self.live.moved(&fix) {
                        // Its first fix: not in the index yet.
                        self.live.load(&unit);
                    }
                    self.feed.unit_moved(fix);
                }
                Change::DeviceClosed {
                    device_id,
                    code,
                    reason,
                } => self.devices.kick(device_id, code, reason),
                Change::FallbackQueued => self.fallback_wake.notify_one(),
                // This node's own sessions were superseded when the new one registered; the
                // change is for the other nodes of a cluster.
                Change::Connected { .. } => {}
            }
        }
        if batch.events_appended {
            self.feed.events_committed();
        }
    }

    fn failed(&self) {
        self.metrics.commit_failed();
    }
}

/// What tests of the layers above the store start from.
#[cfg(test)]
pub(crate) mod testing {
    use super::Dispatch;
    use crate::domain::{Actor, NewIncident, NewUnit, Order, Role, Unit};
    use crate::store::{Enrolled, Store};

    /// A store on a new database in a temporary directory, which lives as long as the guard.
    pub(crate) async fn temporary_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_standalone(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        (dir, store)
    }

    /// A new store in `dir` with an admin, and unit `P-1` with a device enrolled with the token
    /// whose hash is `token_hash`.
    pub(crate) async fn enrolled_unit(
        dir: &std::path::Path,
        token_hash: &str,
    ) -> (Dispatch, Unit, Enrolled) {
        let dispatch = Dispatch::open(&dir.join("db.sqlite")).await.unwrap();
        let store = &dispatch.store;
        let admin = store
            .create_operator("admin", "hash", Role::Admin, &Actor::System, None)
            .await
            .unwrap();
        let admin = Actor::Operator {
            id: admin,
            username: "admin".into(),
        };
        let unit = NewUnit::parse("P-1", "car", &[], None, &["car".into()]).unwrap();
        let unit = store.create_unit(&unit, &admin, None).await.unwrap();
        store
            .create_enrolment_code(unit.id, "code", i64::MAX, &admin, None)
            .await
            .unwrap();
        let device = store
            .enroll_device("code", token_hash, "e", None)
            .await
            .unwrap();
        (dispatch, unit, device)
    }

    /// A new incident and an order of it for `unit_id`.
    pub(crate) async fn order_for(store: &Store, unit_id: i64) -> Order {
        let new =
            NewIncident::parse("theft", 2, 60.17, 24.94, None, None, None, None, &[]).unwrap();
        let incident = store
            .create_incident(&new, &Actor::System, None)
            .await
            .unwrap();
        store
            .create_order(incident.id, unit_id, &Actor::System, None)
            .await
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UnitStatus;

    /// An order committed through the store reaches the device's mailbox and the live index
    /// without the caller doing anything after the write.
    #[tokio::test]
    async fn a_committed_order_reaches_the_session_and_the_live_index() {
        let dir = tempfile::tempdir().unwrap();
        let (dispatch, unit, device) = testing::enrolled_unit(dir.path(), "t").await;
        let store = &dispatch.store;
        let location = dispatch_protocol::Location {
            lat: 60.17,
            lon: 24.94,
            accuracy_m: None,
            heading_deg: None,
            speed_mps: None,
            fix_time_ms: 1,
        };
        assert!(store
            .record_position(unit.id, &location, 1, false)
            .await
            .unwrap());
        assert!(
            dispatch
                .live
                .nearest(60.17, 24.94, 1, &[], 0)
                .unwrap()
                .len()
                == 1
        );
        let session = dispatch.devices.register(device.device_id);
        let order = testing::order_for(store, unit.id).await;
        let news = session.mailbox.take();
        assert_eq!(news.handed.len(), 1);
        assert_eq!(news.handed[0].0.message_id, format!("order-{}", order.id));
        assert!(
            dispatch
                .live
                .nearest(60.17, 24.94, 1, &[], 0)
                .unwrap()
                .is_empty(),
            "the assigned unit is no longer available in the live index"
        );
        assert_eq!(
            store.unit(unit.id).await.unwrap().status,
            UnitStatus::Assigned
        );
    }
}
