//! Request authentication: the session cookie middleware that guards every non-public route
//! (deny by default; idle sessions end; a reset password must be changed first), the
//! `Authorized<Role>` extractor each handler states its role with (a denial is audited), and the
//! request's source address.

use std::marker::PhantomData;
use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::{now_ms, Actor, Millis, Role};
use crate::store::SessionOperator;

/// Name of the operator session cookie.
pub const SESSION_COOKIE: &str = "dispatch_session";

/// The session cookie's value, if the request carries one.
pub fn session_token(parts: &axum::http::HeaderMap) -> Option<String> {
    parts
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Paths a session whose password was reset may still use.
const WHILE_PASSWORD_RESET: [&str; 3] = ["/api/me", "/api/password", "/api/logout"];
/// Paths a session whose role needs a second factor it lacks may still use.
const WHILE_NO_SECOND_FACTOR: [&str; 5] = [
    "/api/me",
    "/api/password",
    "/api/logout",
    "/api/me/second-factor",
    "/api/me/second-factor/confirm",
];

/// Activity is written at most this often per session (idleness is measured to this
/// precision, or a quarter of the role's idle limit when that is shorter).
const TOUCH_EVERY_MS: Millis = 60_000;

/// Middleware: rejects the request with 401 unless it carries a valid session that is not idle,
/// records the session's activity, and makes the session's operator available to the handler.
///
/// # Errors
/// 401 without a valid session; 403 `password_change_required` for anything but changing the
/// password after an admin reset it.
pub async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = session_token(req.headers()).ok_or(ApiError::Unauthenticated)?;
    let token_hash = crate::auth::sha256_hex(&token);
    let store = &state.dispatch.store;
    let operator = store
        .session_operator(&token_hash)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let now = now_ms();
    let idle = &state.config.accounts.idle_timeout_secs;
    if operator.idle_at(now, idle) {
        return Err(ApiError::Unauthenticated);
    }
    let touch_every = TOUCH_EVERY_MS.min(i64::try_from(idle.of(operator.role) * 250).unwrap_or(0));
    if now - operator.last_seen_at >= touch_every {
        if let Err(e) = store.touch_session(&token_hash, now).await {
            tracing::warn!(error = %e, "could not record session activity");
        }
    }
    let path = req.uri().path();
    if operator.must_change_password && !WHILE_PASSWORD_RESET.contains(&path) {
        return Err(ApiError::PasswordChangeRequired);
    }
    if needs_second_factor(&state, &operator) && !WHILE_NO_SECOND_FACTOR.contains(&path) {
        return Err(ApiError::SecondFactorEnrolmentRequired);
    }
    req.extensions_mut().insert(operator);
    Ok(next.run(req).await)
}

/// Whether the operator's role needs a second factor the account has not set up.
pub fn needs_second_factor(state: &AppState, operator: &SessionOperator) -> bool {
    lacks_second_factor(state, operator.role, operator.second_factor)
}

/// Whether `role` needs a second factor and the account (`has_one` or not) lacks it.
pub fn lacks_second_factor(state: &AppState, role: Role, has_one: bool) -> bool {
    !has_one && state.config.accounts.second_factor_roles.contains(&role)
}

/// The address a request came from, as `api::source` recorded it for the request (absent when
/// the server is driven without a socket, as in unit tests).
#[derive(Debug, Clone, Copy)]
pub struct Source(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(crate::store::source::current_source()))
    }
}

/// A role a handler requires, as a type.
pub trait RequiredRole: Send + Sync + 'static {
    const ROLE: Role;
}

/// Operator rights (any logged-in console user).
#[derive(Debug)]
pub struct OperatorRole;
/// Supervisor rights.
#[derive(Debug)]
pub struct Supervisor;
/// Admin rights.
#[derive(Debug)]
pub struct Admin;

impl RequiredRole for OperatorRole {
    const ROLE: Role = Role::Operator;
}
impl RequiredRole for Supervisor {
    const ROLE: Role = Role::Supervisor;
}
impl RequiredRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// The logged-in operator, guaranteed to hold at least role `R`.
#[derive(Debug)]
pub struct Authorized<R> {
    pub operator: SessionOperator,
    _role: PhantomData<R>,
}

impl<R> Authorized<R> {
    /// The operator as the author of timeline events.
    pub fn actor(&self) -> Actor {
        self.operator.actor()
    }
}

impl<R: RequiredRole> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let operator = parts
            .extensions
            .get::<SessionOperator>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)?;
        if !operator.role.allows(R::ROLE) {
            let attempted = format!("{} {}", parts.method, parts.uri.path());
            if let Err(e) = state
                .dispatch
                .store
                .record_access_denied(&operator.actor(), &attempted, R::ROLE)
                .await
            {
                tracing::warn!(error = %e, "could not record an access denial");
            }
            return Err(ApiError::Forbidden(format!(
                "this needs the {} role; you are {}",
                R::ROLE.as_str(),
                operator.role.as_str()
            )));
        }
        Ok(Self {
            operator,
            _role: PhantomData,
        })
    }
}
