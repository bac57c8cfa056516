//! Request authentication: the session cookie middleware that guards every non-public route
//! (deny by default) and the `Authorized<Role>` extractor each handler states its role with.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::{Actor, Role};
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

/// Middleware: rejects the request with 401 unless it carries a valid session, and makes the
/// session's operator available to the handler.
///
/// # Errors
/// 401 without a valid session.
pub async fn require_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = session_token(req.headers()).ok_or(ApiError::Unauthenticated)?;
    let operator = state
        .dispatch
        .store
        .session_operator(&crate::auth::sha256_hex(&token))
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    req.extensions_mut().insert(operator);
    Ok(next.run(req).await)
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
        Actor::Operator {
            id: self.operator.id,
            username: self.operator.username.clone(),
        }
    }
}

impl<R: RequiredRole> FromRequestParts<AppState> for Authorized<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let operator = parts
            .extensions
            .get::<SessionOperator>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)?;
        if !operator.role.allows(R::ROLE) {
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
