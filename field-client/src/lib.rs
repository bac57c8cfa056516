//! Field tablet client of the dispatch system: enrolment, a durable inbox and action outbox,
//! and a reconnecting device-channel client (`Client` handle + `EventLoop`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use field_client::{Client, ClientOptions, Event};
//! let options = ClientOptions::load("/var/lib/field-client")?;
//! let (client, event_loop) = Client::new(options).await?;
//! let (events_tx, mut events) = tokio::sync::mpsc::channel(64);
//! tokio::spawn(event_loop.run(events_tx));
//! while let Some(event) = events.recv().await {
//!     if let Event::Order(order) = event {
//!         client.accept(order.order.order_id).await?;
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod backoff;
mod client;
pub mod credential;
pub mod enroll;
pub mod enroll_link;
mod event_loop;
pub mod gps;
pub mod http;
pub mod inbox;
pub mod tls;

pub use client::{Client, ClientError, ClientOptions, Event};
pub use credential::Credential;
pub use enroll::enroll;
pub use event_loop::{CrashAt, EventLoop, CRASH_AT_VAR};
pub use tls::Trust;

/// Wall-clock time in milliseconds since the Unix epoch, the protocol's timestamp unit.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
