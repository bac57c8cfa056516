//! A dispatcher's console on the live channel (`/api/console/live`, a real TLS WebSocket with a
//! session cookie) while orders are placed: when the `order_queued` delta of each order arrives,
//! to time commit → console frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::fleet::Endpoint;

/// What the console saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Order id → when its `order_queued` delta arrived.
    pub queued: HashMap<i64, Instant>,
    /// Frames received after the snapshot.
    pub frames: u64,
    /// Why the socket ended early, if it did (a close code and reason, or an error).
    pub ended: Option<String>,
}

/// The console's reader, running until dropped.
#[derive(Debug)]
pub struct ConsoleWatch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleWatch {
    /// Connects with `cookie`, waits for the snapshot, then records deltas in the background.
    ///
    /// # Errors
    /// When the connection, the handshake or the snapshot fails.
    pub async fn start(endpoint: &Endpoint, cookie: &str) -> anyhow::Result<Self> {
        let tcp = tokio::net::TcpStream::connect(endpoint.addr).await?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
        let tls = endpoint.tls.connect(name, tcp).await?;
        let mut request =
            format!("wss://{}/api/console/live", endpoint.addr).into_client_request()?;
        request.headers_mut().insert("cookie", cookie.parse()?);
        let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
            .await
            .context("console handshake")?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"snapshot""#) => break,
                Some(Ok(_)) => {}
                other => anyhow::bail!("the console got no snapshot: {other:?}"),
            }
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(message) = ws.next().await {
                let now = Instant::now();
                let mut seen = record.lock().unwrap_or_else(PoisonError::into_inner);
                match message {
                    Ok(Message::Text(text)) => {
                        seen.frames += 1;
                        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                            continue;
                        };
                        if v["type"] == "event" && v["event"]["kind"] == "order_queued" {
                            if let Some(order) = v["event"]["order_id"].as_i64() {
                                seen.queued.insert(order, now);
                            }
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        seen.ended = Some(format!("closed: {frame:?}"));
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        seen.ended = Some(format!("error: {e}"));
                        return;
                    }
                }
            }
        });
        Ok(Self { seen, task })
    }

    /// When the `order_queued` delta of `order_id` arrived.
    pub fn queued_at(&self, order_id: i64) -> Option<Instant> {
        self.lock().queued.get(&order_id).copied()
    }

    /// Stops reading and returns what was seen.
    pub fn stop(self) -> Seen {
        self.task.abort();
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
