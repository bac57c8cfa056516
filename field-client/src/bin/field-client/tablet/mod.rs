//! Tablet mode: the touch UI served on loopback for the car's kiosk web view, and the live
//! state it shows (connection, revocation, the inbox through the library `Client`).
//!
//! The page long-polls `GET /api/state?after=VERSION`; every change bumps the version. The API
//! answers only requests that carry the key printed in the UI's address.

mod api;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use dispatch_protocol::{close, Location};
use field_client::{Client, Event};
use serde::Serialize;
use tokio::sync::watch;

/// Rejections kept to show the officer.
const NOTICES_KEPT: usize = 5;

/// What the page needs beyond the inbox.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Live {
    /// The channel to the server is up.
    pub online: bool,
    /// When the channel last went up or down (device clock, ms).
    pub since_ms: i64,
    /// Set once the server refused this device for good; the page shows only that.
    pub revoked: Option<String>,
    /// The last status reported without an order (`out_of_service`, `available`).
    pub unit_status: Option<String>,
    /// Recent refusals by the server, newest last.
    pub notices: VecDeque<Notice>,
    pub fix: Option<Location>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub at_ms: i64,
    pub code: String,
    pub message: String,
}

/// Shared by the UI handlers and the agent's event loop.
pub struct Tablet {
    pub client: Client,
    pub call_sign: String,
    live: Mutex<Live>,
    version: watch::Sender<u64>,
}

impl Tablet {
    pub fn new(client: Client, call_sign: String) -> Arc<Self> {
        Arc::new(Self {
            client,
            call_sign,
            live: Mutex::new(Live {
                since_ms: field_client::unix_ms(),
                ..Live::default()
            }),
            version: watch::channel(0).0,
        })
    }

    /// Something the page shows changed: wake its long poll.
    pub fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub fn live(&self) -> Live {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn update(&self, change: impl FnOnce(&mut Live)) {
        if let Ok(mut live) = self.live.lock() {
            change(&mut live);
        }
        self.bump();
    }

    /// Follows the event loop's reports.
    pub fn on_event(&self, event: &Event) {
        match event {
            Event::Connected(_) => self.update(|l| {
                l.online = true;
                l.since_ms = field_client::unix_ms();
            }),
            Event::Disconnected { .. } => self.update(|l| {
                l.online = false;
                l.since_ms = field_client::unix_ms();
            }),
            Event::Fatal { code, reason } => {
                let text = format!("{code}: {reason}");
                self.update(|l| {
                    l.online = false;
                    l.revoked = Some(text);
                });
            }
            Event::ActionRejected { code, message, .. } => {
                let notice = Notice {
                    at_ms: field_client::unix_ms(),
                    code: code.clone(),
                    message: message.clone(),
                };
                self.update(|l| {
                    l.notices.push_back(notice);
                    while l.notices.len() > NOTICES_KEPT {
                        l.notices.pop_front();
                    }
                });
            }
            Event::Order(_) | Event::Message(_) | Event::ActionDone { .. } => self.bump(),
        }
    }

    pub fn on_fix(&self, fix: Location) {
        self.update(|l| l.fix = Some(fix));
    }

    pub fn set_unit_status(&self, status: &str) {
        self.update(|l| l.unit_status = Some(status.to_owned()));
    }

    pub fn is_revoked(&self) -> bool {
        self.live.lock().is_ok_and(|l| l.revoked.is_some())
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

/// Whether a fatal close means the device was revoked, so its data must go.
pub fn is_revocation(code: u16) -> bool {
    code == close::REVOKED
}

/// Binds `addr` (loopback only) and serves the UI until the process ends. Returns the address
/// to open, with the key made for this start in its fragment: `http://ADDR/#k=KEY`.
///
/// # Errors
/// When `addr` is not a loopback address or cannot be bound.
pub async fn serve(addr: SocketAddr, tablet: Arc<Tablet>) -> anyhow::Result<String> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--ui {addr}: the tablet UI may only listen on a loopback address (127.0.0.1)"
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the tablet UI to {addr}"))?;
    let bound = listener.local_addr()?;
    let key = api::UiKey::random();
    let url = format!("http://{bound}/#k={}", key.as_str());
    let app = api::router(tablet, key);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("tablet UI server stopped: {e}");
        }
    });
    Ok(url)
}
