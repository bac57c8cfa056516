//! The device channel: the registry of connected device sessions (handing a session the outbox
//! entries just committed for it, closing sessions: superseded, revoked, shutdown; which devices
//! are offline and since when) and the session itself (`session.rs`).
//!
//! In a cluster a device may reconnect to another node: each connection has a generation,
//! counted up by every hello across the cluster (`Store::announce_connection`), and a session
//! closes with `SUPERSEDED` once a newer generation of its device is known anywhere.

pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::domain::{now_ms, Millis};
use crate::store::PendingDelivery;

/// Most committed entries a session may hold in memory unsent; past this it reads its outbox.
const MAILBOX_LIMIT: usize = 64;

/// Why the server closes a session: a close code of `dispatch_protocol::close` and a reason.
pub type Kick = Option<(u16, String)>;

/// How sessions behave, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ChannelSettings {
    /// Interval of WebSocket pings; a device silent for three of them is dropped.
    pub heartbeat: Duration,
    /// Most deliveries sent and not yet acknowledged.
    pub inflight_window: u32,
    /// At most one trail point per unit per this interval.
    pub trail_sample: Duration,
}

#[derive(Debug)]
struct Connected {
    connection: u64,
    /// Its generation across the cluster; 0 until announced (and on SQLite).
    generation: i64,
    mailbox: Arc<Mailbox>,
    kick: watch::Sender<Kick>,
}

impl Connected {
    fn supersede(&self) {
        let _ = self.kick.send(Some((
            dispatch_protocol::close::SUPERSEDED,
            "a newer connection of this device took over".into(),
        )));
    }
}

/// What was committed for a session since it last looked: the entries themselves, so it can
/// send them without reading the database, or word that its outbox grew in some other way.
#[derive(Debug, Default)]
pub struct Mailbox {
    wake: Notify,
    news: Mutex<News>,
}

/// The contents of a [`Mailbox`], taken in one go.
#[derive(Debug, Default)]
pub struct News {
    /// Committed entries, in the order they were handed over (not always `seq` order), each
    /// with when its batch committed.
    pub handed: Vec<(PendingDelivery, Instant)>,
    /// The outbox may hold entries that were not handed over: read it.
    pub read_outbox: bool,
}

impl Mailbox {
    fn post(&self, change: impl FnOnce(&mut News)) {
        change(&mut self.news.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_one();
    }

    /// Resolves when something was posted since the last [`Mailbox::take`].
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Everything posted so far, leaving the mailbox empty.
    pub fn take(&self) -> News {
        std::mem::take(&mut *self.news.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Registry of live device sessions. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    sessions: Arc<Mutex<HashMap<i64, Connected>>>,
    /// Devices watched while offline, with since when (until their lost link is recorded).
    offline: Arc<Mutex<HashMap<i64, Millis>>>,
    next_connection: Arc<AtomicU64>,
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// The newest connection generation of each device that connected on another node.
    elsewhere: Arc<Mutex<HashMap<i64, i64>>>,
}

/// What a session holds after registering.
#[derive(Debug)]
pub struct Registration {
    pub connection: u64,
    pub mailbox: Arc<Mailbox>,
    pub kick: watch::Receiver<Kick>,
}

impl Hub {
    /// Registers a session of `device_id`, closing any older one with `SUPERSEDED`.
    pub fn register(&self, device_id: i64) -> Registration {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::default());
        let (kick_tx, kick) = watch::channel(None);
        if self.draining.load(Ordering::SeqCst) {
            let _ = kick_tx.send(Some((
                dispatch_protocol::close::GOING_AWAY,
                "server is shutting down".into(),
            )));
        }
        self.offline_lock().remove(&device_id);
        let old = self.lock().insert(
            device_id,
            Connected {
                connection,
                generation: 0,
                mailbox: mailbox.clone(),
                kick: kick_tx,
            },
        );
        if let Some(old) = old {
            old.supersede();
        }
        Registration {
            connection,
            mailbox,
            kick,
        }
    }

    /// Notes the cluster-wide generation of a registered session; a newer one already known
    /// from another node closes it at once.
    pub fn announced(&self, device_id: i64, connection: u64, generation: i64) {
        let newest_elsewhere = self.elsewhere_lock().get(&device_id).copied();
        let mut sessions = self.lock();
        if let Some(session) = sessions
            .get_mut(&device_id)
            .filter(|c| c.connection == connection)
        {
            session.generation = generation;
            if newest_elsewhere.is_some_and(|newest| newest > generation) {
                session.supersede();
            }
        }
    }

    /// The device connected on another node with `generation`: an older session of it here
    /// closes, and it is not offline.
    pub fn connected_elsewhere(&self, device_id: i64, generation: i64) {
        let mut elsewhere = self.elsewhere_lock();
        let newest = elsewhere.entry(device_id).or_insert(generation);
        *newest = (*newest).max(generation);
        drop(elsewhere);
        if let Some(session) = self.lock().get(&device_id) {
            if session.generation != 0 && session.generation < generation {
                session.supersede();
            }
        }
        self.forget_offline(device_id);
    }

    /// The announced sessions: device and generation.
    pub fn generations(&self) -> Vec<(i64, i64)> {
        self.lock()
            .iter()
            .filter(|(_, c)| c.generation != 0)
            .map(|(device, c)| (*device, c.generation))
            .collect()
    }

    /// Tells the device's session, if connected here, that its outbox grew elsewhere.
    pub fn outbox_grew(&self, device_id: i64) {
        if let Some(mailbox) = self.mailbox(device_id) {
            mailbox.post(|news| news.read_outbox = true);
        }
    }

    /// Tells every session to read its outbox (after notices may have been missed).
    pub fn read_every_outbox(&self) {
        for c in self.lock().values() {
            c.mailbox.post(|news| news.read_outbox = true);
        }
    }

    /// Removes the session if it is still the registered one.
    pub fn unregister(&self, device_id: i64, connection: u64) {
        let mut sessions = self.lock();
        if sessions
            .get(&device_id)
            .is_some_and(|c| c.connection == connection)
        {
            sessions.remove(&device_id);
            self.offline_lock().insert(device_id, now_ms());
        }
    }

    /// Watches `devices` that are not connected as offline since `since` (at start, for the
    /// devices that do not come back).
    pub fn watch_offline(&self, devices: &[i64], since: Millis) {
        let sessions = self.lock();
        let mut offline = self.offline_lock();
        for device in devices {
            if !sessions.contains_key(device) {
                offline.entry(*device).or_insert(since);
            }
        }
    }

    /// Devices offline since at or before `before`, with since when.
    pub fn offline_since(&self, before: Millis) -> Vec<(i64, Millis)> {
        self.offline_lock()
            .iter()
            .filter(|(_, since)| **since <= before)
            .map(|(device, since)| (*device, *since))
            .collect()
    }

    /// Stops watching an offline device (its lost link is recorded, or it needs none).
    pub fn forget_offline(&self, device_id: i64) {
        self.offline_lock().remove(&device_id);
    }

    /// Hands a committed outbox entry to the device's session, if connected, which sends it
    /// without reading the database. A device that is not connected gets it when it next says
    /// hello.
    pub fn deliver(&self, device_id: i64, delivery: PendingDelivery, committed: Instant) {
        if let Some(mailbox) = self.mailbox(device_id) {
            mailbox.post(|news| {
                if news.handed.len() < MAILBOX_LIMIT {
                    news.handed.push((delivery, committed));
                } else {
                    news.read_outbox = true;
                }
            });
        }
    }

    fn mailbox(&self, device_id: i64) -> Option<Arc<Mailbox>> {
        self.lock().get(&device_id).map(|c| c.mailbox.clone())
    }

    /// Closes the device's session with `code` and `reason`.
    pub fn kick(&self, device_id: i64, code: u16, reason: &str) {
        if let Some(c) = self.lock().get(&device_id) {
            let _ = c.kick.send(Some((code, reason.to_owned())));
        }
    }

    /// Closes every session with `GOING_AWAY` and refuses new ones.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        for c in self.lock().values() {
            let _ = c.kick.send(Some((
                dispatch_protocol::close::GOING_AWAY,
                "server is shutting down".into(),
            )));
        }
    }

    pub fn connected(&self) -> usize {
        self.lock().len()
    }

    pub fn is_connected(&self, device_id: i64) -> bool {
        self.lock().contains_key(&device_id)
    }

    fn elsewhere_lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.elsewhere
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn offline_lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Millis>> {
        self.offline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Connected>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(seq: u64) -> PendingDelivery {
        PendingDelivery {
            seq,
            message_id: format!("m-{seq}"),
            queued_at: 0,
            body: "{}".into(),
        }
    }

    /// Entries reach the registered session only; past the limit it is told to read its outbox.
    /// Taking the news empties the mailbox.
    #[test]
    fn deliveries_go_to_the_session_until_its_mailbox_is_full() {
        let hub = Hub::default();
        hub.deliver(7, delivery(1), Instant::now());
        let registration = hub.register(7);
        for seq in 1..=(MAILBOX_LIMIT as u64 + 1) {
            hub.deliver(7, delivery(seq), Instant::now());
        }
        let news = registration.mailbox.take();
        assert_eq!(news.handed.len(), MAILBOX_LIMIT);
        assert!(news.read_outbox);
        let news = registration.mailbox.take();
        assert!(news.handed.is_empty() && !news.read_outbox);
    }
}
