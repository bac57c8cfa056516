//! The device's durable store: received deliveries, the channel position, pending actions.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a receipt or "queued" is reported only after commit.
//! Every message kind is kept (orders, cancels, texts, broadcasts, and kinds this client does not
//! know yet), with when the officer saw and confirmed it; texts the officer sent are kept too.

use std::path::Path;
use std::time::Duration;

use dispatch_protocol::{ClientFrame, Delivery, InvalidFrame, Message, OrderMessage};
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
    -- Whether the application has been handed this message (exactly once).
    surfaced       INTEGER NOT NULL DEFAULT 0
);
-- Texts the officer wrote, with the server's answer once known.
CREATE TABLE IF NOT EXISTS texts_out (
    action_id     TEXT PRIMARY KEY,
    text          TEXT NOT NULL,
    incident_id   INTEGER,
    created_at_ms INTEGER NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'rejected'))
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

/// Columns added after the first release, created on open when an older store lacks them.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("displayed_at_ms", "INTEGER"),
    ("acknowledged_at_ms", "INTEGER"),
    // For an order: why it no longer stands (`cancelled`, `expired`), from a cancel message.
    ("withdrawn", "TEXT"),
    // For an order: the last status the officer reported about it (`en_route`, …).
    ("last_status", "TEXT"),
];

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

impl Decision {
    /// The stored form (the `decision` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Declined => "declined",
        }
    }
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
    /// `cancelled` or `expired` once a cancel message withdrew the order.
    pub withdrawn: Option<String>,
    /// The last status the officer reported about this order (queued or confirmed).
    pub last_status: Option<String>,
    /// When the alert was first on screen, and when the officer confirmed reading it (device
    /// clock, milliseconds since the Unix epoch).
    pub displayed_at_ms: Option<i64>,
    pub acknowledged_at_ms: Option<i64>,
}

/// Any message held in the inbox, of a kind this client understands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxMessage {
    pub seq: u64,
    pub message_id: String,
    pub queued_at_ms: i64,
    pub received_at_ms: i64,
    pub body: Message,
    /// For an order: the decision the server confirmed.
    pub decision: Option<Decision>,
    /// For an order: why it was withdrawn.
    pub withdrawn: Option<String>,
    /// For an order: the last status the officer reported about it.
    pub last_status: Option<String>,
    pub displayed_at_ms: Option<i64>,
    pub acknowledged_at_ms: Option<i64>,
}

impl InboxMessage {
    /// The order view of this message, when it is one.
    pub fn as_order(&self) -> Option<InboxOrder> {
        match &self.body {
            Message::Order(order) => Some(InboxOrder {
                seq: self.seq,
                message_id: self.message_id.clone(),
                queued_at_ms: self.queued_at_ms,
                received_at_ms: self.received_at_ms,
                order: order.clone(),
                decision: self.decision,
                withdrawn: self.withdrawn.clone(),
                last_status: self.last_status.clone(),
                displayed_at_ms: self.displayed_at_ms,
                acknowledged_at_ms: self.acknowledged_at_ms,
            }),
            _ => None,
        }
    }
}

/// A text the officer sent to the control room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentText {
    pub action_id: String,
    pub text: String,
    pub incident_id: Option<i64>,
    pub created_at_ms: i64,
    /// `pending` (queued, maybe offline), `sent` (the server recorded it) or `rejected`.
    pub state: String,
}

/// Outcome of persisting a delivery. Either way it is on disk and may be acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Persisted now for the first time; carries the message when this client can read it.
    New(Option<Box<InboxMessage>>),
    /// Already held: its `seq` is at or below the floor, or its `message_id` is known.
    Duplicate,
}

/// Something the officer does that the server must confirm (the protocol's one definition).
pub use dispatch_protocol::Action;

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
        add_missing_columns(&pool).await?;
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
        let body = match serde_json::from_value::<Message>(delivery.body.clone()) {
            Ok(body) => Some(body),
            Err(e) => {
                tracing::warn!(message_id = %delivery.message_id, kind = %kind, error = %e,
                    "keeping a delivery this client does not understand");
                None
            }
        };
        let order_id = match &body {
            Some(Message::Order(order)) => Some(order.order_id),
            _ => None,
        };
        // An order the officer accepted on the unit's previous tablet arrives decided.
        let decision = match &body {
            Some(Message::Order(order)) if order.accepted => Some(Decision::Accepted),
            _ => None,
        };
        if let Some(Message::Cancel(cancel)) = &body {
            sqlx::query("UPDATE inbox SET withdrawn = ? WHERE order_id = ? AND kind = 'order'")
                .bind(&cancel.reason)
                .bind(cancel.order_id)
                .execute(&mut *tx)
                .await?;
        }
        let received_at_ms = crate::unix_ms();
        sqlx::query(
            "INSERT INTO inbox (seq, epoch, message_id, kind, order_id, body, queued_at_ms,
                                received_at_ms, surfaced, decision)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(to_i64(delivery.seq))
        .bind(epoch)
        .bind(&delivery.message_id)
        .bind(&kind)
        .bind(order_id)
        .bind(delivery.body.to_string())
        .bind(delivery.queued_at_ms)
        .bind(received_at_ms)
        // Nothing to hand to the application for a body it cannot read.
        .bind(body.is_none())
        .bind(decision.map(Decision::as_str))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Stored::New(body.map(|body| {
            Box::new(InboxMessage {
                seq: delivery.seq,
                message_id: delivery.message_id.clone(),
                queued_at_ms: delivery.queued_at_ms,
                received_at_ms,
                body,
                decision,
                withdrawn: None,
                last_status: None,
                displayed_at_ms: None,
                acknowledged_at_ms: None,
            })
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

    /// Messages persisted but not yet handed to the application (the process stopped in
    /// between), oldest first.
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn unsurfaced(&self) -> Result<Vec<InboxMessage>, StoreError> {
        self.select("WHERE surfaced = 0").await
    }

    /// Orders persisted but not yet handed to the application.
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn unsurfaced_orders(&self) -> Result<Vec<InboxOrder>, StoreError> {
        let messages = self.select("WHERE surfaced = 0 AND kind = 'order'").await?;
        Ok(messages.iter().filter_map(InboxMessage::as_order).collect())
    }

    /// Every order in the inbox, oldest first.
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn orders(&self) -> Result<Vec<InboxOrder>, StoreError> {
        let messages = self.select("WHERE kind = 'order'").await?;
        Ok(messages.iter().filter_map(InboxMessage::as_order).collect())
    }

    /// Every message this client can read, oldest first.
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn messages(&self) -> Result<Vec<InboxMessage>, StoreError> {
        let kinds = Message::KINDS.map(|k| format!("'{k}'")).join(", ");
        self.select(&format!("WHERE kind IN ({kinds})")).await
    }

    /// One message by id, if held and readable.
    ///
    /// # Errors
    /// On a database error or an unreadable row.
    pub async fn message(&self, message_id: &str) -> Result<Option<InboxMessage>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_MESSAGES} WHERE message_id = ?"))
            .bind(message_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).next().transpose()
    }

    async fn select(&self, filter: &str) -> Result<Vec<InboxMessage>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_MESSAGES} {filter} ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// Texts the officer sent, oldest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn sent_texts(&self) -> Result<Vec<SentText>, StoreError> {
        let rows = sqlx::query(
            "SELECT action_id, text, incident_id, created_at_ms, state FROM texts_out
             ORDER BY created_at_ms, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| SentText {
                action_id: row.get("action_id"),
                text: row.get("text"),
                incident_id: row.get("incident_id"),
                created_at_ms: row.get("created_at_ms"),
                state: row.get("state"),
            })
            .collect())
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
        let now = crate::unix_ms();
        let frame = serde_json::to_string(&action.clone().into_frame(action_id.clone(), Some(now)))
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
        .bind(now)
        .execute(&mut *tx)
        .await?;
        match &action {
            Action::Displayed { message_id } => {
                sqlx::query(
                    "UPDATE inbox SET displayed_at_ms = ? WHERE message_id = ? AND displayed_at_ms IS NULL",
                )
                .bind(now)
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
            }
            Action::Acknowledge { message_id } => {
                sqlx::query(
                    "UPDATE inbox SET acknowledged_at_ms = ?, displayed_at_ms = COALESCE(displayed_at_ms, ?)
                     WHERE message_id = ? AND acknowledged_at_ms IS NULL",
                )
                .bind(now)
                .bind(now)
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
            }
            Action::Text { text, incident_id } => {
                sqlx::query(
                    "INSERT INTO texts_out (action_id, text, incident_id, created_at_ms) VALUES (?, ?, ?, ?)",
                )
                .bind(&action_id)
                .bind(text)
                .bind(incident_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Action::Status {
                status,
                order_id: Some(order_id),
            } => {
                sqlx::query(
                    "UPDATE inbox SET last_status = ? WHERE order_id = ? AND kind = 'order'",
                )
                .bind(status.as_str())
                .bind(order_id)
                .execute(&mut *tx)
                .await?;
            }
            Action::Accept { .. }
            | Action::Decline { .. }
            | Action::Status { .. }
            | Action::Emergency { .. } => {}
        }
        tx.commit().await?;
        Ok(action_id)
    }

    /// Queues `displayed` (or `acknowledge`) for a message unless that was done before; returns
    /// the new action id, or `None` when there was nothing to do.
    ///
    /// # Errors
    /// When the message is unknown, or on a database error.
    pub async fn mark_seen(
        &self,
        message_id: &str,
        acknowledge: bool,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT displayed_at_ms, acknowledged_at_ms FROM inbox WHERE message_id = ?",
        )
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            StoreError::InvalidAction(InvalidFrame(format!(
                "no message {message_id:?} in the inbox"
            )))
        })?;
        let column = if acknowledge {
            "acknowledged_at_ms"
        } else {
            "displayed_at_ms"
        };
        if row.get::<Option<i64>, _>(column).is_some() {
            return Ok(None);
        }
        let message_id = message_id.to_owned();
        let action = if acknowledge {
            Action::Acknowledge { message_id }
        } else {
            Action::Displayed { message_id }
        };
        self.queue_action(action).await.map(Some)
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
        if kind == "text" {
            sqlx::query("UPDATE texts_out SET state = ? WHERE action_id = ?")
                .bind(if done { "sent" } else { "rejected" })
                .bind(action_id)
                .execute(&mut *tx)
                .await?;
        }
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

const SELECT_MESSAGES: &str = "SELECT seq, message_id, body, queued_at_ms, received_at_ms,
    decision, withdrawn, last_status, displayed_at_ms, acknowledged_at_ms FROM inbox";

fn message_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<InboxMessage, StoreError> {
    let body: String = row.get("body");
    let message_id: String = row.get("message_id");
    let corrupt = |what: &str| StoreError::Corrupt(format!("{message_id}: {what}"));
    let body: Message = serde_json::from_str(&body).map_err(|e| corrupt(&e.to_string()))?;
    let decision = match row.get::<Option<String>, _>("decision").as_deref() {
        None => None,
        Some("accepted") => Some(Decision::Accepted),
        Some("declined") => Some(Decision::Declined),
        Some(other) => return Err(corrupt(&format!("decision {other:?}"))),
    };
    Ok(InboxMessage {
        seq: to_u64(row.get("seq")),
        message_id,
        queued_at_ms: row.get("queued_at_ms"),
        received_at_ms: row.get("received_at_ms"),
        body,
        decision,
        withdrawn: row.get("withdrawn"),
        last_status: row.get("last_status"),
        displayed_at_ms: row.get("displayed_at_ms"),
        acknowledged_at_ms: row.get("acknowledged_at_ms"),
    })
}

/// Adds the columns of [`ADDED_COLUMNS`] that an older store lacks.
async fn add_missing_columns(pool: &SqlitePool) -> Result<(), StoreError> {
    let present: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('inbox')")
        .fetch_all(pool)
        .await?;
    for (name, sql_type) in ADDED_COLUMNS {
        if !present.iter().any(|p| p == name) {
            sqlx::query(&format!("ALTER TABLE inbox ADD COLUMN {name} {sql_type}"))
                .execute(pool)
                .await?;
        }
    }
    Ok(())
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
    use dispatch_protocol::ReportedStatus;
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
        matches!(stored, Stored::New(Some(o)) if o.seq == seq && o.as_order().is_some())
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
            body: json!({"kind": "postcard", "text": "hello"}),
        };
        assert_eq!(inbox.store_delivery(&odd).await.unwrap(), Stored::New(None));
        assert_eq!(inbox.channel_state().await.unwrap().ack_floor, 1);
        assert!(inbox.unsurfaced().await.unwrap().is_empty());
        assert!(inbox.messages().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn every_known_kind_is_kept_and_a_cancel_withdraws_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        inbox.store_delivery(&delivery(1, 17)).await.unwrap();
        let text = RawDelivery {
            seq: 2,
            message_id: "text-4".into(),
            queued_at_ms: 2,
            body: json!({"kind": "text", "text_id": 4, "from": "Virtanen", "text": "Call in"}),
        };
        let Stored::New(Some(stored)) = inbox.store_delivery(&text).await.unwrap() else {
            panic!("a text is new")
        };
        assert!(matches!(&stored.body, Message::Text(t) if t.from == "Virtanen"));
        let broadcast = RawDelivery {
            seq: 3,
            message_id: "broadcast-2".into(),
            queued_at_ms: 3,
            body: json!({"kind": "broadcast", "broadcast_id": 2, "sender": "Virtanen",
                "sent_ms": 3, "urgency": "Immediate", "severity": "Severe",
                "certainty": "Observed", "headline": "Stolen van ABC-123"}),
        };
        assert!(matches!(
            inbox.store_delivery(&broadcast).await.unwrap(),
            Stored::New(Some(_))
        ));
        let cancel = RawDelivery {
            seq: 4,
            message_id: "cancel-17".into(),
            queued_at_ms: 4,
            body: json!({"kind": "cancel", "order_id": 17, "reason": "cancelled"}),
        };
        inbox.store_delivery(&cancel).await.unwrap();
        let kinds: Vec<&str> = vec!["order", "text", "broadcast", "cancel"];
        let messages = inbox.messages().await.unwrap();
        let stored_kinds: Vec<String> = messages
            .iter()
            .map(|m| {
                serde_json::to_value(&m.body).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(stored_kinds, kinds);
        assert_eq!(inbox.unsurfaced().await.unwrap().len(), 4);
        assert_eq!(
            inbox.orders().await.unwrap()[0].withdrawn.as_deref(),
            Some("cancelled")
        );
    }

    #[tokio::test]
    async fn seen_and_acknowledged_are_queued_once_and_texts_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = open(dir.path()).await;
        inbox.store_delivery(&delivery(1, 17)).await.unwrap();
        let shown = inbox.mark_seen("order-17", false).await.unwrap();
        assert!(shown.is_some());
        assert_eq!(inbox.mark_seen("order-17", false).await.unwrap(), None);
        let ack = inbox.mark_seen("order-17", true).await.unwrap().unwrap();
        assert_eq!(inbox.mark_seen("order-17", true).await.unwrap(), None);
        assert!(inbox.mark_seen("order-99", true).await.is_err());
        let order = &inbox.orders().await.unwrap()[0];
        assert!(order.displayed_at_ms.is_some() && order.acknowledged_at_ms.is_some());
        let frame = ClientFrame::parse(&inbox.pending_actions().await.unwrap()[1].frame).unwrap();
        assert!(matches!(
            frame,
            ClientFrame::Acknowledge { action_id, message_id, at_ms: Some(_) }
                if action_id == ack && message_id == "order-17"
        ));
        let text = inbox
            .queue_action(Action::Text {
                text: "Need backup".into(),
                incident_id: Some(9),
            })
            .await
            .unwrap();
        assert_eq!(inbox.sent_texts().await.unwrap()[0].state, "pending");
        inbox.finish_action(&text, true).await.unwrap();
        let sent = inbox.sent_texts().await.unwrap();
        assert_eq!(
            (sent[0].text.as_str(), sent[0].state.as_str()),
            ("Need backup", "sent")
        );
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
                reason: "other".into(),
                detail: Some("flat tyre".into()),
            })
            .await
            .unwrap();
        assert!(a.starts_with("3-"), "{a}");
        assert_ne!(a, b);
        // Invalid actions change nothing.
        let err = inbox
            .queue_action(Action::Decline {
                order_id: 18,
                reason: "flat tyre".into(),
                detail: None,
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
        assert!(matches!(
            frame,
            ClientFrame::Accept { ref action_id, order_id: 17, at_ms: Some(_) } if *action_id == a
        ));

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
