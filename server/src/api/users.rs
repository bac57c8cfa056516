//! Operator accounts, managed by admins.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use super::extract::{Admin, Authorized};
use super::idempotency::IdempotencyKey;
use crate::app::AppState;
use crate::auth::{hash_password, validate_new_password};
use crate::domain::Role;
use crate::store::OperatorAccount;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/users", get(list_users).post(create_user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    role: String,
}

/// Checks a login name: 1–64 characters of letters, digits, `.`, `_` and `-`.
///
/// # Errors
/// When the name does not fit.
pub fn validate_username(name: &str) -> Result<(), crate::domain::Invalid> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(crate::domain::Invalid::field(
            "username",
            "must be 1-64 letters, digits, '.', '_' or '-'",
        ))
    }
}

#[tracing::instrument(skip_all, fields(username = %body.username), err(level = "warn"))]
async fn create_user(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    validate_username(&body.username)?;
    let role = Role::parse(&body.role)?;
    validate_new_password(&body.password)?;
    let hash = hash_password(&body.password)?;
    let id = state
        .dispatch
        .store
        .create_operator(&body.username, &hash, role, &auth.actor(), key.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": id, "username": body.username, "role": role })),
    ))
}

/// Every operator account (no password hashes), for the admin screen.
async fn list_users(
    _: Authorized<Admin>,
    State(state): State<AppState>,
) -> Result<Json<Vec<OperatorAccount>>, ApiError> {
    Ok(Json(state.dispatch.store.operator_accounts().await?))
}
