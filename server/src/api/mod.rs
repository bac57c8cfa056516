//! HTTP routes, one `router()` per resource, merged here, with the HTTP-only pieces: the error
//! type and its mapping (`error.rs`) and the session and role extractors (`extract.rs`).
//! Everything but the public routes (health, login, device enrolment and channel) sits behind
//! the session middleware; every request passes the same-origin guard (`guard.rs`). Each route is
//! registered with its OpenAPI description (`openapi.rs`), which is served as one document.

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
mod keep_alive;
mod map;
mod messages;
mod metrics;
mod openapi;
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
use axum::{Extension, Router};

use crate::app::AppState;
use extract::require_session;
pub use users::validate_username;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let protected = openapi::new_router()
        .merge(openapi::router())
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
    let (router, document) = openapi::new_router()
        .merge(health::router())
        .merge(metrics::router())
        .merge(session::public_router())
        .merge(devices::router())
        .merge(protected)
        .split_for_parts();
    let document = openapi::Document(
        document
            .to_json()
            .expect("the OpenAPI document is plain data")
            .into(),
    );
    router
        .layer(Extension(document))
        .fallback(console_assets::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn(guard::same_origin_and_headers))
        .layer(from_fn(keep_alive::close_if_body_unread))
        .layer(from_fn(source::remember_source))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
