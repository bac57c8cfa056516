//! The application's handle on the device channel, with the options and events it shares with
//! the [`EventLoop`]. Every action is durable before a method returns; the loop sends it.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dispatch_protocol::{InvalidFrame, Location, ReportedStatus, Welcome};
use tokio::sync::{watch, Notify};

use crate::backoff::Backoff;
use crate::credential::{Credential, CredentialError};
use crate::event_loop::EventLoop;
use crate::inbox::{
    Action, Inbox, InboxMessage, InboxOrder, PendingAction, SentText, StoreError, INBOX_FILE,
};

/// How to run a device: its credential, where its state lives, and reconnect tuning.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub credential: Credential,
    /// Holds `inbox.sqlite` (and, by convention, `credential.json`). Created if missing.
    pub state_dir: PathBuf,
    pub backoff: Backoff,
    /// Limit on TCP connect, TLS and WebSocket handshakes together.
    pub connect_timeout: Duration,
}

impl ClientOptions {
    /// Options with the protocol's reference backoff and a 10 s connect timeout.
    pub fn new(credential: Credential, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            credential,
            state_dir: state_dir.into(),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Options for a state directory that already holds `credential.json`.
    ///
    /// # Errors
    /// When the credential cannot be read.
    pub fn load(state_dir: impl Into<PathBuf>) -> Result<Self, CredentialError> {
        let state_dir = state_dir.into();
        Ok(Self::new(Credential::load(&state_dir)?, state_dir))
    }
}

/// What the event loop reports to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The server accepted `hello`; pending actions are being resent.
    Connected(Welcome),
    /// A new order, already persisted and acknowledged. Each order is reported exactly once,
    /// across redeliveries, reconnects and restarts of the process.
    Order(InboxOrder),
    /// A new message of another kind (cancel, text, broadcast), persisted and acknowledged;
    /// reported exactly once like orders.
    Message(InboxMessage),
    /// The server recorded the action.
    ActionDone { action_id: String },
    /// The server refused the action; it changed nothing and will not be resent.
    ActionRejected {
        action_id: String,
        code: String,
        message: String,
    },
    /// A live connection ended; the loop reconnects after a backoff delay.
    Disconnected { code: Option<u16>, reason: String },
    /// The server closed with a code that forbids retrying (bad credential, revoked, version);
    /// the loop stops.
    Fatal { code: u16, reason: String },
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Store(StoreError),
    /// The request would break the protocol; nothing was stored or sent.
    #[error("invalid request: {0}")]
    Invalid(InvalidFrame),
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server closed with a non-retryable code; re-enrol or upgrade the device.
    #[error("server closed the channel for good with {code}: {reason}")]
    Fatal { code: u16, reason: String },
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidAction(invalid) => Self::Invalid(invalid),
            other => Self::Store(other),
        }
    }
}

/// Cheap, clonable handle for the application. Actions go to the durable outbox first, so they
/// survive a lost connection or a crash and are sent (again) until the server answers.
#[derive(Debug, Clone)]
pub struct Client {
    inbox: Inbox,
    wake: Arc<Notify>,
    location: Arc<watch::Sender<Option<Location>>>,
}

/// What the event loop needs from the clients: the same store, a nudge when an action is
/// queued, and the newest location.
pub(crate) struct Shared {
    pub inbox: Inbox,
    pub wake: Arc<Notify>,
    pub location: watch::Receiver<Option<Location>>,
}

impl Client {
    /// Opens the device's store and prepares a loop that will connect when run.
    ///
    /// # Errors
    /// When the credential is unusable (URL, trust) or the store cannot be opened.
    pub async fn new(options: ClientOptions) -> Result<(Client, EventLoop), ClientError> {
        // Orders are police data: keep the directory private like the credential.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&options.state_dir)
            .map_err(|source| ClientError::StateDir {
                path: options.state_dir.clone(),
                source,
            })?;
        let inbox = Inbox::open(
            &options.state_dir.join(INBOX_FILE),
            options.credential.device_id,
        )
        .await?;
        let wake = Arc::new(Notify::new());
        let (location_tx, location_rx) = watch::channel(None);
        let shared = Shared {
            inbox: inbox.clone(),
            wake: wake.clone(),
            location: location_rx,
        };
        let event_loop = EventLoop::new(options, shared)?;
        let client = Client {
            inbox,
            wake,
            location: Arc::new(location_tx),
        };
        Ok((client, event_loop))
    }

    /// Accepts an order. Returns the action id that a later `ActionDone`/`ActionRejected` names.
    ///
    /// # Errors
    /// When the action cannot be stored.
    pub async fn accept(&self, order_id: i64) -> Result<String, ClientError> {
        self.act(Action::Accept { order_id }).await
    }

    /// Declines an order with a reason code (one of [`dispatch_protocol::DECLINE_REASONS`])
    /// and, for `other`, what it is (up to 500 characters).
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an unknown code, `other` without a detail or a too long
    /// detail, or when it cannot be stored.
    pub async fn decline(
        &self,
        order_id: i64,
        reason: &str,
        detail: Option<&str>,
    ) -> Result<String, ClientError> {
        self.act(Action::Decline {
            order_id,
            reason: reason.to_owned(),
            detail: detail.map(str::to_owned),
        })
        .await
    }

    /// Reports the unit's status, optionally about one order.
    ///
    /// # Errors
    /// When the action cannot be stored.
    pub async fn status(
        &self,
        status: ReportedStatus,
        order_id: Option<i64>,
    ) -> Result<String, ClientError> {
        self.act(Action::Status { status, order_id }).await
    }

    /// Reports a position. Not durable: only the newest fix matters, and it is sent as soon
    /// as the channel is up.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] when a coordinate or optional field is out of range.
    pub async fn location(&self, location: Location) -> Result<(), ClientError> {
        location.validate().map_err(ClientError::Invalid)?;
        self.location.send_replace(Some(location));
        Ok(())
    }

    /// Tells the server the message is on screen; does nothing if that was said before.
    /// Returns the new action id, if any.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a message not in the inbox, or when it cannot be stored.
    pub async fn displayed(&self, message_id: &str) -> Result<Option<String>, ClientError> {
        let action_id = self.inbox.mark_seen(message_id, false).await?;
        self.wake.notify_one();
        Ok(action_id)
    }

    /// Tells the server the officer confirmed reading the message (for an order, before the
    /// decision); does nothing if that was said before. Returns the new action id, if any.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for a message not in the inbox, or when it cannot be stored.
    pub async fn acknowledge(&self, message_id: &str) -> Result<Option<String>, ClientError> {
        let action_id = self.inbox.mark_seen(message_id, true).await?;
        self.wake.notify_one();
        Ok(action_id)
    }

    /// Sends a text to the control room, optionally about an incident.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an empty or too long text, or when it cannot be stored.
    pub async fn text(
        &self,
        text: impl Into<String>,
        incident_id: Option<i64>,
    ) -> Result<String, ClientError> {
        self.act(Action::Text {
            text: text.into(),
            incident_id,
        })
        .await
    }

    /// Raises the officer's emergency with the newest location. Stored before it returns and
    /// resent until the server records it, across reconnects and restarts like every action.
    ///
    /// # Errors
    /// When it cannot be stored.
    pub async fn emergency(&self) -> Result<String, ClientError> {
        let location = *self.location.borrow();
        self.act(Action::Emergency { location }).await
    }

    /// Every message received that this client can read (all kinds), oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn messages(&self) -> Result<Vec<InboxMessage>, ClientError> {
        Ok(self.inbox.messages().await?)
    }

    /// Texts the officer sent, oldest first, with whether the server has them.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn sent_texts(&self) -> Result<Vec<SentText>, ClientError> {
        Ok(self.inbox.sent_texts().await?)
    }

    /// Closes the store (checkpointing it); every clone of this client stops working.
    pub async fn close(&self) {
        self.inbox.close().await;
    }

    /// Every order received, oldest first, with the decision the server confirmed.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn orders(&self) -> Result<Vec<InboxOrder>, ClientError> {
        Ok(self.inbox.orders().await?)
    }

    /// Actions still waiting for the server's answer, in the order they were made.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn pending_actions(&self) -> Result<Vec<PendingAction>, ClientError> {
        Ok(self.inbox.pending_actions().await?)
    }

    /// Stores an officer's action in the durable outbox and wakes the loop to send it. Returns
    /// the action id that a later `ActionDone`/`ActionRejected` names.
    ///
    /// # Errors
    /// [`ClientError::Invalid`] for an action the protocol refuses, or when it cannot be stored.
    pub async fn act(&self, action: Action) -> Result<String, ClientError> {
        let action_id = self.inbox.queue_action(action).await?;
        self.wake.notify_one();
        Ok(action_id)
    }
}
