//! The device channel: who is connected, waking a device's session when its outbox grows, and
//! closing sessions (superseded, revoked, shutdown).

pub mod escalation;
pub mod fallback;
pub mod session;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

/// Why the server closes a session: a close code of `dispatch_protocol::close` and a reason.
pub type Kick = Option<(u16, String)>;

#[derive(Debug)]
struct Connected {
    connection: u64,
    outbox_grew: Arc<Notify>,
    kick: watch::Sender<Kick>,
}

/// Registry of live device sessions. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    sessions: Arc<Mutex<HashMap<i64, Connected>>>,
    next_connection: Arc<AtomicU64>,
    draining: Arc<std::sync::atomic::AtomicBool>,
}

/// What a session holds after registering.
#[derive(Debug)]
pub struct Registration {
    pub connection: u64,
    pub outbox_grew: Arc<Notify>,
    pub kick: watch::Receiver<Kick>,
}

impl Hub {
    /// Registers a session of `device_id`, closing any older one with `SUPERSEDED`.
    pub fn register(&self, device_id: i64) -> Registration {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let outbox_grew = Arc::new(Notify::new());
        let (kick_tx, kick) = watch::channel(None);
        if self.draining.load(Ordering::SeqCst) {
            let _ = kick_tx.send(Some((
                dispatch_protocol::close::GOING_AWAY,
                "server is shutting down".into(),
            )));
        }
        let old = self.lock().insert(
            device_id,
            Connected {
                connection,
                outbox_grew: outbox_grew.clone(),
                kick: kick_tx,
            },
        );
        if let Some(old) = old {
            let _ = old.kick.send(Some((
                dispatch_protocol::close::SUPERSEDED,
                "a newer connection of this device took over".into(),
            )));
        }
        Registration {
            connection,
            outbox_grew,
            kick,
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
        }
    }

    /// Wakes the device's session, if connected, to send what its outbox holds. A device that is
    /// not connected gets everything when it next says hello.
    pub fn outbox_grew(&self, device_id: i64) {
        if let Some(c) = self.lock().get(&device_id) {
            c.outbox_grew.notify_one();
        }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Connected>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
