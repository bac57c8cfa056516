//! The operators' live channel (`GET /api/console/live`, WebSocket, session cookie): a snapshot
//! of units, open incidents and their orders, then deltas from one shared feed. The HTTP upgrade
//! and its checks are in `api::console_live`.

mod feed;
pub mod socket;

pub use feed::{ConsoleFeed, Outgoing};

/// Path of the console's live channel.
pub const LIVE_PATH: &str = "/api/console/live";

/// Close code sent to a socket that fell too far behind the feed: reconnect for a snapshot.
pub const CLOSE_LAGGED: u16 = 4008;
/// Close code sent when the operator's session ended (logout or expiry).
pub const CLOSE_SESSION_ENDED: u16 = 4001;
