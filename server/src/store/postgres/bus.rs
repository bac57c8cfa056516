//! Committed changes told to every node of a cluster on one PostgreSQL database. Each batch's
//! transaction ends with `pg_notify` on [`CHANNEL`], so the notice is delivered when, and only
//! if, the batch commits, in commit order. A notice names what changed, not its contents: the
//! device whose outbox grew, the unit to read again; the database stays the truth, the notice is
//! the wake-up. Each node listens on its own connection to the primary ([`listen`]) and, after
//! every (re)connection, is told to resync ([`Heard::Resync`]): whatever it may have missed is
//! read again from the database.
//!
//! The listening connection also holds the cluster's sender lock (a session advisory lock): the
//! node holding it is the one that hands fallback messages to the SMS gateway. The lock goes
//! with the connection, so a node that dies or loses the database gives it up.

use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::connect::{connect_primary, PostgresSettings};
use crate::store::{Change, PositionChange};

/// The channel every node listens on.
pub const CHANNEL: &str = "dispatch_changes";

/// Longest payload of one notice: PostgreSQL refuses 8,000 bytes or more; a batch with more
/// to tell sends several.
const PAYLOAD_LIMIT: usize = 7_000;

/// The advisory lock whose holder sends the SMS fallback ("fallback" in ASCII).
const SENDER_LOCK: i64 = 0x6661_6c6c_6261_636b;

/// How long the listener waits for a notice before checking its connection.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// How long after a lost connection the listener connects again.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// One notification: the changes of (part of) a committed batch on node `node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub node: String,
    pub changes: Vec<Told>,
    /// The batch appended to the timeline.
    #[serde(default)]
    pub events: bool,
}

/// A change as other nodes are told of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Told {
    /// The device's outbox grew: its session reads it.
    Delivery { device: i64 },
    /// The unit changed: read it again.
    Unit { unit: i64 },
    /// The unit's newest fix.
    Moved { fix: PositionChange },
    /// Close the device's session.
    DeviceClosed {
        device: i64,
        code: u16,
        reason: String,
    },
    /// A message was queued for the SMS gateway.
    FallbackQueued,
    /// The device connected with this generation: an older connection elsewhere closes.
    Connected { device: i64, generation: i64 },
}

impl Told {
    fn from_change(change: &Change) -> Option<Self> {
        Some(match change {
            Change::Delivery { device_id, .. } => Self::Delivery { device: *device_id },
            Change::Unit(unit) => Self::Unit { unit: unit.id },
            Change::Moved(unit) => Self::Moved {
                fix: PositionChange::of(unit)?,
            },
            Change::DeviceClosed {
                device_id,
                code,
                reason,
            } => Self::DeviceClosed {
                device: *device_id,
                code: *code,
                reason: (*reason).to_owned(),
            },
            Change::FallbackQueued => Self::FallbackQueued,
            Change::Connected {
                device_id,
                generation,
            } => Self::Connected {
                device: *device_id,
                generation: *generation,
            },
        })
    }
}

/// The payloads that tell the other nodes of `batch`, each under [`PAYLOAD_LIMIT`]; none when
/// it changed nothing they must learn of.
pub fn payloads(node: &str, changes: &[Change], events: bool) -> Vec<String> {
    let told: Vec<Told> = changes.iter().filter_map(Told::from_change).collect();
    if told.is_empty() && !events {
        return Vec::new();
    }
    let encode = |changes: &[Told], events: bool| {
        serde_json::to_string(&Notice {
            node: node.to_owned(),
            changes: changes.to_vec(),
            events,
        })
        .unwrap_or_else(|e| unreachable!("a notice always serialises: {e}"))
    };
    let mut out = Vec::new();
    let mut start = 0;
    while start < told.len() || out.is_empty() {
        // The longest run from `start` that fits; one change always fits (a reason is short).
        let mut end = told.len();
        let mut payload = encode(&told[start..end], events);
        while payload.len() > PAYLOAD_LIMIT && end > start + 1 {
            end = start + (end - start) / 2;
            payload = encode(&told[start..end], events);
        }
        out.push(payload);
        start = end;
    }
    out
}

/// What the listener hears.
#[derive(Debug)]
pub enum Heard {
    /// Connected (again): notices may have been missed; read the state again.
    Resync,
    /// A notice from another node.
    Notice(Notice),
}

/// The listener's outputs.
#[derive(Debug)]
pub struct Listening {
    pub heard: mpsc::UnboundedReceiver<Heard>,
    /// Whether this node holds the sender lock now.
    pub sender: watch::Receiver<bool>,
}

/// Starts the listening thread of the node of `settings`, which stops once `heard` is
/// dropped. Its connection carries the node's name as `application_name`, by which the others
/// tell that the node is alive.
///
/// # Errors
/// When the thread cannot start.
pub fn listen(settings: &PostgresSettings) -> anyhow::Result<Listening> {
    let (tell, heard) = mpsc::unbounded_channel();
    let (sender_tx, sender) = watch::channel(false);
    let node = settings.node().to_owned();
    let settings = settings.named(&node);
    std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || {
            while !tell.is_closed() {
                match connect_primary(&settings) {
                    Ok((client, _)) => {
                        if let Err(e) = serve(client, &node, &tell, &sender_tx) {
                            tracing::warn!(error = %e, "the cluster listener lost its connection");
                        }
                    }
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "the cluster listener cannot connect"),
                }
                sender_tx.send_replace(false);
                std::thread::sleep(RECONNECT_AFTER);
            }
        })?;
    Ok(Listening { heard, sender })
}

/// Listens on one connection until it fails or nobody hears any more.
fn serve(
    mut client: Client,
    node: &str,
    tell: &mpsc::UnboundedSender<Heard>,
    sender: &watch::Sender<bool>,
) -> Result<(), postgres::Error> {
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    if tell.send(Heard::Resync).is_err() {
        return Ok(());
    }
    loop {
        if !*sender.borrow() {
            let held: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&SENDER_LOCK])?
                .get(0);
            if held {
                tracing::info!("this node now sends the SMS fallback");
                sender.send_replace(true);
            }
        }
        // Bounded, so that a steady stream of notices does not starve the checks below.
        let until = std::time::Instant::now() + CHECK_EVERY;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            let mut notifications = client.notifications();
            let Some(notification) = notifications.timeout_iter(left).next()? else {
                break;
            };
            match serde_json::from_str::<Notice>(notification.payload()) {
                Ok(notice) if notice.node == node => {}
                Ok(notice) => {
                    if tell.send(Heard::Notice(notice)).is_err() {
                        return Ok(());
                    }
                }
                Err(e) => tracing::error!(error = %e, "an unreadable cluster notice was ignored"),
            }
        }
        if tell.is_closed() {
            return Ok(());
        }
        // A closed connection ends the wait quietly: find out before waiting again.
        client.batch_execute("SELECT 1")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch too large for one notification is told in several, each under the limit, with
    /// every change once and in order.
    #[test]
    fn a_large_batch_is_split_into_notices_under_the_limit() {
        let changes: Vec<Change> = (0..500)
            .map(|device_id| Change::DeviceClosed {
                device_id,
                code: 4003,
                reason: "this device was revoked; enrol it again",
            })
            .collect();
        let payloads = payloads("node-a", &changes, true);
        assert!(payloads.len() > 1);
        let mut devices = Vec::new();
        for payload in &payloads {
            assert!(payload.len() <= PAYLOAD_LIMIT);
            let notice: Notice = serde_json::from_str(payload).unwrap();
            assert_eq!(notice.node, "node-a");
            assert!(notice.events);
            for told in notice.changes {
                let Told::DeviceClosed { device, .. } = told else {
                    panic!("unexpected {told:?}")
                };
                devices.push(device);
            }
        }
        assert_eq!(devices, (0..500).collect::<Vec<_>>());
    }

    /// A batch that changed nothing the other nodes hold sends nothing; one that only
    /// appended events still wakes their console feeds.
    #[test]
    fn only_what_other_nodes_hold_is_told() {
        assert!(payloads("n", &[], false).is_empty());
        let only_events = payloads("n", &[], true);
        assert_eq!(only_events.len(), 1);
        let notice: Notice = serde_json::from_str(&only_events[0]).unwrap();
        assert!(notice.changes.is_empty() && notice.events);
    }
}
