//! HTTP routes, one `router()` per resource, merged here, with the HTTP-only pieces: the error
//! type and its mapping (`error.rs`) and the session and role extractors (`extract.rs`).
//! Everything but the public routes (health, login, device enrolment and channel) sits behind
//! the session middleware; every request passes the same-origin guard (`guard.rs`).

mod admin;
mod audit;
mod broadcasts;
mod console_assets;
mod console_live;
mod devices;
pub mod error;
mod export;
pub mod extract;
mod geocode;
mod guard;
mod health;
mod idempotency;
mod incident_entries;
mod incidents;
mod map;
mod messages;
mod orders;
mod paging;
mod premises;
mod second_factor;
mod session;
mod source;
mod stats;
mod units;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;

use crate::app::AppState;
use extract::require_session;
pub use users::validate_username;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let protected = Router::new()
        .merge(session::protected_router())
        .merge(second_factor::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(units::router())
        .merge(incidents::router())
        .merge(incident_entries::router())
        .merge(premises::router())
        .merge(orders::router())
        .merge(messages::router())
        .merge(broadcasts::router())
        .merge(geocode::router())
        .merge(map::router())
        .merge(stats::router())
        .merge(export::router())
        .merge(admin::router())
        .merge(console_live::router())
        .route_layer(from_fn_with_state(state.clone(), require_session));
    Router::new()
        .merge(health::router())
        .merge(session::public_router())
        .merge(devices::router())
        .merge(protected)
        .fallback(console_assets::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn(guard::same_origin_and_headers))
        .layer(from_fn(source::remember_source))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
