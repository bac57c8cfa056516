//! The operators' live channel (`GET /api/console/live`, WebSocket, session cookie): a snapshot
//! of units, open incidents and their orders, then deltas from one shared feed.

mod feed;
mod socket;

pub use feed::{ConsoleFeed, Outgoing};

use axum::routing::get;
use axum::Router;

use crate::app::AppState;

/// Path of the console's live channel.
pub const LIVE_PATH: &str = "/api/console/live";

/// Close code sent to a socket that fell too far behind the feed: reconnect for a snapshot.
pub const CLOSE_LAGGED: u16 = 4008;
/// Close code sent when the operator's session ended (logout or expiry).
pub const CLOSE_SESSION_ENDED: u16 = 4001;

pub fn router() -> Router<AppState> {
    Router::new().route(LIVE_PATH, get(socket::upgrade))
}
