//! Serves every HTTP request with its client's address as the source of the writes it causes
//! (`store::source`), so that the events they append record where they came from.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::store::source::with_source;

/// Middleware: the peer address the server accepted the connection from (none when the
/// router is driven without a socket, as in tests).
pub async fn remember_source(request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    with_source(peer, next.run(request)).await
}
