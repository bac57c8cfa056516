//! Operator accounts, managed by admins: create, list, disable and enable, unlock, reset the
//! password (a one-time password to hand over, changed at the next login), change the role, and
//! see an account's sessions. Disabling, a reset and a role change end the account's sessions
//! and close their console sockets at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiPath;
use super::error::{ApiError, ApiJson};
use super::extract::{Admin, Authorized};
use super::idempotency::IdempotencyKey;
use crate::app::AppState;
use crate::auth::new_temporary_password;
use crate::domain::Role;
use crate::store::{AccountChange, OperatorAccount};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{id}/disable", post(disable))
        .route("/api/users/{id}/enable", post(enable))
        .route("/api/users/{id}/unlock", post(unlock))
        .route("/api/users/{id}/reset-password", post(reset_password))
        .route("/api/users/{id}/role", post(set_role))
        .route(
            "/api/users/{id}/second-factor/reset",
            post(reset_second_factor),
        )
        .route(
            "/api/users/{id}/sessions",
            get(super::session::sessions_of_user),
        )
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

async fn create_user(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    validate_username(&body.username)?;
    let role = Role::parse(&body.role)?;
    let hash = super::session::new_password_hash(&state, &body.username, body.password).await?;
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

/// Applies `change` to account `id` and closes the console sockets of the sessions it ended.
async fn change(
    auth: &Authorized<Admin>,
    state: &AppState,
    id: i64,
    change: AccountChange,
) -> Result<usize, ApiError> {
    let ended = state
        .dispatch
        .store
        .change_account(id, change, &auth.actor())
        .await?;
    state.dispatch.feed.sessions_ended(&ended);
    Ok(ended.len())
}

async fn disable(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ended = change(&auth, &state, id, AccountChange::Disable).await?;
    Ok(Json(
        serde_json::json!({ "id": id, "disabled": true, "sessions_ended": ended }),
    ))
}

async fn enable(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change(&auth, &state, id, AccountChange::Enable).await?;
    Ok(Json(serde_json::json!({ "id": id, "disabled": false })))
}

async fn unlock(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    change(&auth, &state, id, AccountChange::Unlock).await?;
    Ok(Json(serde_json::json!({ "id": id, "locked": false })))
}

/// Sets a one-time password, shown once in the answer; the account must change it at its next
/// login, and its sessions end.
async fn reset_password(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let temporary = new_temporary_password();
    let password_hash = state
        .logins
        .workers
        .hash(temporary.clone())
        .await
        .map_err(ApiError::Internal)?;
    let ended = change(
        &auth,
        &state,
        id,
        AccountChange::ResetPassword { password_hash },
    )
    .await?;
    Ok(Json(serde_json::json!({
        "id": id,
        "temporary_password": temporary,
        "must_change_password": true,
        "sessions_ended": ended,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    role: String,
}

async fn set_role(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewRole>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let role = Role::parse(&body.role)?;
    let ended = change(&auth, &state, id, AccountChange::SetRole(role)).await?;
    Ok(Json(
        serde_json::json!({ "id": id, "role": role, "sessions_ended": ended }),
    ))
}

/// Removes the account's second factor (a lost device) and ends its sessions; it sets up a new
/// one at its next login when its role needs one.
async fn reset_second_factor(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ended = change(&auth, &state, id, AccountChange::ResetSecondFactor).await?;
    Ok(Json(
        serde_json::json!({ "id": id, "second_factor": false, "sessions_ended": ended }),
    ))
}
