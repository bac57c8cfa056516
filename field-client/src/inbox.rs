//! The device's durable store: received deliveries, the channel position, pending actions.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a receipt or "queued" is reported only after commit.

use std::path::Path;
use std::time::Duration;

use dispatch_protocol::{
    ClientFrame, Delivery, InvalidFrame, Message, OrderMessage, ReportedStatus,
};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteLockingMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

/// Name of the database file inside a state directory.
pub const INBOX_FILE: &str = "inbox.sqlite";

/// How long to wait for another process to let go of the store (for example a previous run
/// that is still shutting down) before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(5);

const SCHEMA: &str = r"
-- One row: where this device stands on the channel and how it names its actions.
CREATE TABLE IF NOT EXISTS meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    device_id   INTEGER NOT NULL,
    epoch       TEXT,
    ack_floor   INTEGER NOT NULL DEFAULT 0 CHECK (ack_floor >= 0),
    -- Random per database, so action ids stay unique even if the database is recreated.
    instance    TEXT NOT NULL,
    next_action INTEGER NOT NULL DEFAULT 1
);
-- Every delivery ever persisted; message_id dedupes across an epoch change.
CREATE TABLE IF NOT EXISTS inbox (
    id             INTEGER PRIMARY KEY,
    seq            INTEGER NOT NULL,
    epoch          TEXT,
    message_id     TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    order_id       INTEGER,
    body           TEXT NOT NULL,
    queued_at_ms   INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    decision       TEXT CHECK (decision IN ('accepted', 'declined')),
    -- Whether the application has been handed this order (exactly once).
    surfaced       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS inbox_order_id ON inbox (order_id);
-- Actions waiting for the server's done or rejected, sent in seq order.
CREATE TABLE IF NOT EXISTS actions (
    action_id     TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    order_id      INTEGER,
    frame         TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
";

/// Why the local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store: {0}")]
    Db(#[from] sqlx::Error),
    /// The action would be refused by the protocol (for example an empty decline reason).
    #[error("invalid action: {0}")]
    InvalidAction(#[from] InvalidFrame),
    /// Another process holds the store (two clients on one state directory).
    #[error("{0} is in use by another field-client process")]
    InUse(String),
    /// A stored row no longer parses; the file was edited or damaged.
    #[error("corrupt local store: {0}")]
    Corrupt(String),
}

/// Where the device stands on the channel; goes into `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    pub epoch: Option<String>,
    pub ack_floor: u64,
}

/// A delivery as it came off the wire, with its body kept as JSON so that kinds this client
/// does not know can still be persisted and acknowledged.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RawDelivery {
    pub seq: u64,
    pub message_id: String,
    #[serde(default)]
    pub queued_at_ms: i64,
    pub body: serde_json::Value,
}

impl From<&Delivery> for RawDelivery {
    fn from(d: &Delivery) -> Self {
        Self {
            seq: d.seq,
            message_id: d.message_id.clone(),
            queued_at_ms: d.queued_at_ms,
            body: serde_json::to_value(&d.body).unwrap_or_default(),
        }
    }
}

/// The officer's decision on an order, once the server confirmed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Declined,
}

/// An order held in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxOrder {
    pub seq: u64,
    pub message_id: String,
    pub queued_at_ms: i64,
    pub received_at_ms: i64,
    #[serde(flatten)]
    pub order: OrderMessage,
    pub decision: Option<Decision>,
}

/// Outcome of persisting a delivery. Either way it is on disk and may be acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Persisted now for the first time; carries the order when the body is one.
    New(Option<InboxOrder>),
    /// Already held: its `seq` is at or below the floor, or its `message_id` is known.
    Duplicate,
}

/// Something the officer does that the server must confirm.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Accept {
        order_id: i64,
    },
    Decline {
        order_id: i64,
        reason: String,
    },
    Status {
        status: ReportedStatus,
        order_id: Option<i64>,
    },
}

impl Action {
    fn kind(&self) -> &'static str {
        match self {
            Self::Accept { .. } => "accept",
            Self::Decline { .. } => "decline",
            Self::Status { .. } => "status",
        }
    }

    fn order_id(&self) -> Option<i64> {
        match self {
            Self::Accept { order_id } | Self::Decline { order_id, .. } => Some(*order_id),
            Self::Status { order_id, .. } => *order_id,
        }
    }

    fn into_frame(self, action_id: String) -> ClientFrame {
        match self {
            Self::Accept { order_id } => ClientFrame::Accept {
                action_id,
                order_id,
            },
            Self::Decline { order_id, reason } => ClientFrame::Decline {
                action_id,
                order_id,
                reason,
            },
            Self::Status { status, order_id } => ClientFrame::Status {
                action_id,
                status,
                order_id,
            },
        }
    }
}

/// An action still waiting for `done` or `rejected`.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAction {
    pub action_id: String,
    /// The exact text frame to send (and resend).
    pub frame: String,
}

/// Handle to the store. Clones share one connection, which serialises all writes.
#[derive(Debug, Clone)]
pub struct Inbox {
    pool: SqlitePool,
    device_id: i64,
}

impl Inbox {
    /// Opens or creates the store at `path` for `device_id`.
    ///
    /// A store that belonged to another device (the state directory was re-enrolled) keeps its
    /// history but forgets its channel position and drops that device's pending actions.
    ///
    /// # Errors
    /// When the file cannot be opened or the schema cannot be created.
    pub async fn open(path: &Path, device_id: i64) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // Held for the life of the connection: a second process on the same state
            // directory would fight over the device's single connection and its outbox.
            .locking_mode(SqliteLockingMode::Exclusive)
            .busy_timeout(LOCK_WAIT)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let in_use = |e: sqlx::Error| match &e {
            sqlx::Error::Database(db) if db.message().contains("locked") => {
                StoreError::InUse(path.display().to_string())
            }
            _ => StoreError::Db(e),
        };
        // One connection: the volume is tiny and it rules out SQLITE_BUSY between our own tasks.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(in_use)?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await.map_err(in_use)?;
        let instance = format!("{:08x}", rand::random::<u32>());
        // A write, so the exclusive lock is taken now rather than at the first delivery.
        sqlx::query("INSERT OR IGNORE INTO meta (id, device_id, instance) VALUES (1, ?, ?)")
            .bind(device_id)
            .bind(instance)
            .execute(&pool)
            .await
            .map_err(in_use)?;
        let stored: i64 = sqlx::query_scalar("SELECT device_id FROM meta WHERE id = 1")
            .fetch_one(&pool)
            .await?;
        if stored != device_id {
            tracing::warn!(
                old_device = stored,
                new_device = device_id,
                "state directory was re-enrolled; resetting channel position and dropping the old device's pending actions"
            );
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE meta SET device_id = ?, epoch = NULL, ack_floor = 0 WHERE id = 1")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM actions").execute(&mut *tx).await?;
            tx.commit().await?;
        }
        Ok(Self { pool, device_id })
    }

    /// The epoch and ack floor to announce in `hello`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn channel_state(&self) -> Result<ChannelState, StoreError> {
        let row = sqlx::query("SELECT epoch, ack_floor FROM meta WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(ChannelState {
            epoch: row.get("epoch"),
            ack_floor: to_u64(row.get("ack_floor")),
        })
    }

    /// Records the epoch from `welcome`. On a resync (or any change of a known epoch) the ack
    /// floor restarts at 0 while the inbox is kept, so replayed messages dedupe by id.
    ///
    /// Returns whether the floor was reset.
    ///
    /// # Errors
    /// On a database error.
    pub async fn begin_epoch(&self, epoch: &str, resync: bool) -> Result<bool, StoreError> {
        let current = self.channel_state().await?;
        let reset = resync || current.epoch.as_deref().is_some_and(|e| e != epoch);
        sqlx::query(
            "UPDATE meta SET epoch = ?, ack_floor = CASE WHEN ? THEN 0 ELSE ack_floor END
             WHERE id = 1",
        )
        .bind(epoch)
        .bind(reset)
        .execute(&self.pool)
        .await?;
        Ok(reset)
    }

    /// Persists a delivery and raises the ack floor to its `seq`, in one transaction.
    ///
    /// # Errors
    /// On a database error; then nothing is stored and the delivery must not be acknowledged.
    pub async fn store_delivery(&self, delivery: &RawDelivery) -> Result<Stored, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT epoch, ack_floor FROM meta WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let epoch: Option<String> = row.get("epoch");
        let floor = to_u64(row.get("ack_floor"));
        if delivery.seq <= floor {
            return Ok(Stored::Duplicate);
        }
        if delivery.seq > floor + 1 {
            tracing::warn!(
                seq = delivery.seq,
                ack_floor = floor,
                "delivery skips sequence numbers"
            );
        }
        sqlx::query("UPDATE meta SET ack_floor = ? WHERE id = 1")
            .bind(to_i64(delivery.seq))
            .execute(&mut *tx)
            .await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT id FROM inbox WHERE message_id = ?")
            .bind(&delivery.message_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_some() {
            tx.commit().await?;
            return Ok(Stored::Duplicate);
        }
        let kind = delivery.body["kind"].as_str().unwrap_or("").to_owned();
        let order = match serde_json::from_value::<Message>(delivery.body.clone()) {
            Ok(Message::Order(order)) => Some(order),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(message_id = %delivery.message_id, kind = %kind, error = %e,
                    "keeping a delivery this client does not understand");
                None
            }
        };
        let received_at_ms = crate::unix_ms();
        sqlx::query(
            "INSERT INTO inbox (seq, epoch, message_id, kind, order_id, body, queued_at_ms,
                                received_at_ms, surfaced)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(to_i64(delivery.seq))
        .bind(epoch)
        .bind(&delivery.message_id)
        .bind(&kind)
        .bind(order.as_ref().map(|o| o.order_id))
        .bind(delivery.body.to_string())
        .bind(delivery.queued_at_ms)
        .bind(received_at_ms)
        // Nothing to hand to the application for a body it cannot read.
        .bind(order.is_none())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Stored::New(order.map(|order| InboxOrder {
            seq: delivery.seq,
            message_id: delivery.message_id.clone(),
            queued_at_ms: delivery.queued_at_ms,
            received_at_ms,
            order,
            decision: None,
        })))
    }

    /// Notes that the application has been handed this message, so it is never handed again.
    ///
    /// # Errors
    /// On a database error.
    pub async fn mark_surfaced(&self, message_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE inbox SET surfaced = 1 WHERE message_id = ?")
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Orders persisted but not yet handed to the application (the process stopped in between).
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn unsurfaced_orders(&self) -> Result<Vec<InboxOrder>, StoreError> {
        self.select_orders("WHERE surfaced = 0 AND order_id IS NOT NULL")
            .await
    }

    /// Every order in the inbox, oldest first.
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn orders(&self) -> Result<Vec<InboxOrder>, StoreError> {
        self.select_orders("WHERE order_id IS NOT NULL").await
    }

    async fn select_orders(&self, filter: &str) -> Result<Vec<InboxOrder>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT seq, message_id, body, queued_at_ms, received_at_ms, decision
             FROM inbox {filter} ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let body: String = row.get("body");
                let message_id: String = row.get("message_id");
                let corrupt = |what: &str| StoreError::Corrupt(format!("{message_id}: {what}"));
                let Message::Order(order) =
                    serde_json::from_str(&body).map_err(|e| corrupt(&e.to_string()))?
                else {
                    return Err(corrupt("not an order"));
                };
                let decision = match row.get::<Option<String>, _>("decision").as_deref() {
                    None => None,
                    Some("accepted") => Some(Decision::Accepted),
                    Some("declined") => Some(Decision::Declined),
                    Some(other) => return Err(corrupt(&format!("decision {other:?}"))),
                };
                Ok(InboxOrder {
                    seq: to_u64(row.get("seq")),
                    message_id,
                    queued_at_ms: row.get("queued_at_ms"),
                    received_at_ms: row.get("received_at_ms"),
                    order,
                    decision,
                })
            })
            .collect()
    }

    /// Stores an action under a fresh id and returns the id. Once this returns the action
    /// will be sent, and resent after reconnects, until the server answers it.
    ///
    /// # Errors
    /// [`StoreError::InvalidAction`] when the protocol would refuse it (nothing is stored), or a
    /// database error.
    pub async fn queue_action(&self, action: Action) -> Result<String, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT instance, next_action FROM meta WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let instance: String = row.get("instance");
        let seq: i64 = row.get("next_action");
        let action_id = format!("{}-{instance}-{seq}", self.device_id);
        let (kind, order_id) = (action.kind(), action.order_id());
        let frame = serde_json::to_string(&action.into_frame(action_id.clone()))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The protocol crate's own validation, so the server is never sent what it would refuse.
        ClientFrame::parse(&frame)?;
        sqlx::query("UPDATE meta SET next_action = next_action + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO actions (action_id, seq, kind, order_id, frame, created_at_ms)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&action_id)
        .bind(seq)
        .bind(kind)
        .bind(order_id)
        .bind(&frame)
        .bind(crate::unix_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(action_id)
    }

    /// Actions not yet answered, in the order they were made.
    ///
    /// # Errors
    /// On a database error.
    pub async fn pending_actions(&self) -> Result<Vec<PendingAction>, StoreError> {
        let rows = sqlx::query("SELECT action_id, frame FROM actions ORDER BY seq")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| PendingAction {
                action_id: row.get("action_id"),
                frame: row.get("frame"),
            })
            .collect())
    }

    /// Forgets an answered action; on `done` for an accept or decline, records the decision on
    /// the order. Returns false when the action was not pending (a repeated answer).
    ///
    /// # Errors
    /// On a database error.
    pub async fn finish_action(&self, action_id: &str, done: bool) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("DELETE FROM actions WHERE action_id = ? RETURNING kind, order_id")
            .bind(action_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let kind: String = row.get("kind");
        let order_id: Option<i64> = row.get("order_id");
        let decision = match kind.as_str() {
            "accept" => Some("accepted"),
            "decline" => Some("declined"),
            _ => None,
        };
        if let (true, Some(decision), Some(order_id)) = (done, decision, order_id) {
            sqlx::query("UPDATE inbox SET decision = ? WHERE order_id = ?")
                .bind(decision)
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Closes the database cleanly (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Sequence numbers are `u64` on the wire and `INTEGER` (i64) in SQLite; real values are far
/// below either limit, so saturate rather than fail.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delivery(seq: u64, order_id: i64) -> RawDelivery {
        RawDelivery {
            seq,
            message_id: format!("order-{order_id}"),
            queued_at_ms: 1,
            body: json!({"kind": "order", "order_id": order_id, "unit_id": 12,
                "incident": {"id": 9, "kind": "burglary", "priority": 1,
                             "lat": 60.1684, "lon": 24.9416}}),
        }
    }

    async fn open(dir: &Path) -> Inbox {
        Inbox::open(&dir.join(INBOX_FILE), 3).await.unwrap()
    }

    fn is_new(stored: &Stored, seq: u64) -> bool {
        matches!(stored, Stored::New(Some(o)) if o.seq == seq)
    }

    #[tokio::test]
    async fn persists_dedupes_and_reports_floor_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        assert_eq!(
            inbox.channel_state().await.unwrap(),
            ChannelState {
                epoch: None,
                ack_floor: 0
            }
        );
        assert!(!inbox.begin_epoch("e1", false).await.unwrap());
        assert!(is_new(
            &inbox.store_delivery(&delivery(1, 17)).await.unwrap(),
            1
        ));
        assert!(is_new(
            &inbox.store_delivery(&delivery(2, 18)).await.unwrap(),
            2
        ));
        // Same seq again: a redelivery.
        assert_eq!(
            inbox.store_delivery(&delivery(2, 18)).await.unwrap(),
            Stored::Duplicate
        );
        // New seq but a message already held (the server re-queued it).
        assert_eq!(
            inbox.store_delivery(&delivery(3, 17)).await.unwrap(),
            Stored::Duplicate
        );
        inbox.close().await;

        let inbox = open(dir.path()).await;
        assert_eq!(
            inbox.channel_state().await.unwrap(),
            ChannelState {
                epoch: Some("e1".into()),
                ack_floor: 3
            }
        );
        let orders = inbox.orders().await.unwrap();
        let ids: Vec<i64> = orders.iter().map(|o| o.order.order_id).collect();
        assert_eq!(ids, [17, 18]);
        assert_eq!(orders[0].order.incident.kind, "burglary");
        // Neither has been handed to the application yet.
        assert_eq!(inbox.unsurfaced_orders().await.unwrap().len(), 2);
        inbox.mark_surfaced("order-17").await.unwrap();
        let left = inbox.unsurfaced_orders().await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].message_id, "order-18");
    }

    #[tokio::test]
    async fn resync_resets_floor_and_keeps_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        inbox.begin_epoch("e1", false).await.unwrap();
        inbox.store_delivery(&delivery(1, 17)).await.unwrap();
        inbox.store_delivery(&delivery(2, 18)).await.unwrap();

        assert!(inbox.begin_epoch("e2", true).await.unwrap());
        let state = inbox.channel_state().await.unwrap();
        assert_eq!((state.epoch.as_deref(), state.ack_floor), (Some("e2"), 0));
        // The server replays from seq 1 with new numbering: known ids are not new.
        assert_eq!(
            inbox.store_delivery(&delivery(1, 18)).await.unwrap(),
            Stored::Duplicate
        );
        assert!(is_new(
            &inbox.store_delivery(&delivery(2, 19)).await.unwrap(),
            2
        ));
        assert_eq!(inbox.channel_state().await.unwrap().ack_floor, 2);
        assert_eq!(inbox.orders().await.unwrap().len(), 3);
        // A changed epoch without the resync flag is treated the same way.
        assert!(inbox.begin_epoch("e3", false).await.unwrap());
        assert_eq!(inbox.channel_state().await.unwrap().ack_floor, 0);
    }

    #[tokio::test]
    async fn unknown_kinds_are_kept_but_not_surfaced() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        let odd = RawDelivery {
            seq: 1,
            message_id: "note-1".into(),
            queued_at_ms: 0,
            body: json!({"kind": "broadcast", "text": "hello"}),
        };
        assert_eq!(inbox.store_delivery(&odd).await.unwrap(), Stored::New(None));
        assert_eq!(inbox.channel_state().await.unwrap().ack_floor, 1);
        assert!(inbox.unsurfaced_orders().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn actions_survive_reopen_in_order_until_answered() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        inbox.store_delivery(&delivery(1, 17)).await.unwrap();
        let a = inbox
            .queue_action(Action::Accept { order_id: 17 })
            .await
            .unwrap();
        let b = inbox
            .queue_action(Action::Status {
                status: ReportedStatus::EnRoute,
                order_id: Some(17),
            })
            .await
            .unwrap();
        let c = inbox
            .queue_action(Action::Decline {
                order_id: 18,
                reason: "flat tyre".into(),
            })
            .await
            .unwrap();
        assert!(a.starts_with("3-"), "{a}");
        assert_ne!(a, b);
        // Invalid actions change nothing.
        let err = inbox
            .queue_action(Action::Decline {
                order_id: 18,
                reason: "  ".into(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidAction(_)), "{err}");
        inbox.close().await;

        let inbox = open(dir.path()).await;
        let pending = inbox.pending_actions().await.unwrap();
        let ids: Vec<&str> = pending.iter().map(|p| p.action_id.as_str()).collect();
        assert_eq!(ids, [a.as_str(), b.as_str(), c.as_str()]);
        let frame = ClientFrame::parse(&pending[0].frame).unwrap();
        assert_eq!(
            frame,
            ClientFrame::Accept {
                action_id: a.clone(),
                order_id: 17
            }
        );

        assert!(inbox.finish_action(&a, true).await.unwrap());
        assert!(!inbox.finish_action(&a, true).await.unwrap());
        assert!(inbox.finish_action(&c, false).await.unwrap());
        let ids: Vec<String> = inbox
            .pending_actions()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.action_id)
            .collect();
        assert_eq!(ids, [b.as_str()]);
        assert_eq!(
            inbox.orders().await.unwrap()[0].decision,
            Some(Decision::Accepted)
        );
        // Ids keep counting after reopen instead of reusing answered ones.
        let d = inbox
            .queue_action(Action::Accept { order_id: 19 })
            .await
            .unwrap();
        assert!(![&a, &b, &c].contains(&&d));
    }

    #[tokio::test]
    async fn a_second_process_cannot_share_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path()).await;
        let err = Inbox::open(&dir.path().join(INBOX_FILE), 3)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InUse(_)), "{err}");
        first.close().await;
        open(dir.path()).await;
    }

    #[tokio::test]
    async fn another_device_starts_from_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        inbox.begin_epoch("e1", false).await.unwrap();
        inbox.store_delivery(&delivery(1, 17)).await.unwrap();
        inbox
            .queue_action(Action::Accept { order_id: 17 })
            .await
            .unwrap();
        inbox.close().await;
        let inbox = Inbox::open(&dir.path().join(INBOX_FILE), 4).await.unwrap();
        let state = inbox.channel_state().await.unwrap();
        assert_eq!((state.epoch, state.ack_floor), (None, 0));
        assert!(inbox.pending_actions().await.unwrap().is_empty());
    }
}
