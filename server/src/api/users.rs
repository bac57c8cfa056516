//! Operator accounts, managed by admins: create, list, disable and enable, unlock, reset the
//! password (a one-time password to hand over, changed at the next login), change the role, and
//! see an account's sessions. Disabling, a reset and a role change end the account's sessions
//! and close their console sockets at once.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiPath;
use super::error::{ApiError, ApiJson};
use super::extract::{Admin, Authorized};
use super::idempotency::IdempotencyKey;
use super::openapi::{
    self, Busy, Conflict, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use crate::app::AppState;
use crate::auth::new_temporary_password;
use crate::domain::Role;
use crate::store::{AccountChange, OperatorAccount};

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(list_users, create_user))
        .routes(routes!(disable))
        .routes(routes!(enable))
        .routes(routes!(unlock))
        .routes(routes!(reset_password))
        .routes(routes!(set_role))
        .routes(routes!(reset_second_factor))
        .routes(routes!(super::session::sessions_of_user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[schema(value_type = Role)]
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

#[utoipa::path(
    post, path = "/api/users", tag = "users",
    params(IdempotencyKey),
    request_body = NewUser,
    responses(
        (status = 201, body = AccountCreated),
        InputErrors,
        WriteErrors,
        Conflict,
        Busy,
        SessionErrors,
    )
)]
async fn create_user(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<AccountCreated>), ApiError> {
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
        Json(AccountCreated {
            id,
            username: body.username,
            role,
        }),
    ))
}

/// Every operator account (no password hashes), for the admin screen.
#[utoipa::path(
    get, path = "/api/users", tag = "users",
    responses((status = 200, body = Vec<OperatorAccount>), SessionErrors)
)]
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

#[utoipa::path(
    post, path = "/api/users/{id}/disable", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    responses(
        (
            status = 200,
            body = Disabled,
            description = "The account is disabled and its sessions ended.",
        ),
        Malformed,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn disable(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Disabled>, ApiError> {
    let ended = change(&auth, &state, id, AccountChange::Disable).await?;
    Ok(Json(Disabled {
        id,
        disabled: true,
        sessions_ended: ended,
    }))
}

#[utoipa::path(
    post, path = "/api/users/{id}/enable", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    responses(
        (status = 200, body = Enabled, description = "The account may log in again."),
        Malformed,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn enable(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Enabled>, ApiError> {
    change(&auth, &state, id, AccountChange::Enable).await?;
    Ok(Json(Enabled {
        id,
        disabled: false,
    }))
}

#[utoipa::path(
    post, path = "/api/users/{id}/unlock", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    responses(
        (
            status = 200,
            body = Unlocked,
            description = "The lockout after wrong passwords is lifted.",
        ),
        Malformed,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn unlock(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Unlocked>, ApiError> {
    change(&auth, &state, id, AccountChange::Unlock).await?;
    Ok(Json(Unlocked { id, locked: false }))
}

/// Sets a one-time password, shown once in the answer; the account must change it at its next
/// login, and its sessions end.
#[utoipa::path(
    post, path = "/api/users/{id}/reset-password", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    responses(
        (
            status = 200,
            body = PasswordReset,
            description = "A temporary password; the account must change it at its next login, and \
                its sessions ended.",
        ),
        Malformed,
        WriteErrors,
        NotFound,
        Conflict,
        Busy,
        SessionErrors,
    )
)]
async fn reset_password(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<PasswordReset>, ApiError> {
    let temporary = new_temporary_password();
    let password_hash = state.logins.workers.hash(temporary.clone()).await?;
    let ended = change(
        &auth,
        &state,
        id,
        AccountChange::ResetPassword { password_hash },
    )
    .await?;
    Ok(Json(PasswordReset {
        id,
        temporary_password: temporary,
        must_change_password: true,
        sessions_ended: ended,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRole {
    #[schema(value_type = Role)]
    role: String,
}

#[utoipa::path(
    post, path = "/api/users/{id}/role", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    request_body = NewRole,
    responses(
        (
            status = 200,
            body = RoleSet,
            description = "The role changed; the account's sessions ended.",
        ),
        InputErrors,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn set_role(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<NewRole>,
) -> Result<Json<RoleSet>, ApiError> {
    let role = Role::parse(&body.role)?;
    let ended = change(&auth, &state, id, AccountChange::SetRole(role)).await?;
    Ok(Json(RoleSet {
        id,
        role,
        sessions_ended: ended,
    }))
}

/// Removes the account's second factor (a lost device) and ends its sessions; it sets up a new
/// one at its next login when its role needs one.
#[utoipa::path(
    post, path = "/api/users/{id}/second-factor/reset", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    responses(
        (
            status = 200,
            body = SecondFactorReset,
            description = "The second factor is removed; the account sets up a new one at its next \
                login.",
        ),
        Malformed,
        WriteErrors,
        NotFound,
        Conflict,
        SessionErrors,
    )
)]
async fn reset_second_factor(
    auth: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SecondFactorReset>, ApiError> {
    let ended = change(&auth, &state, id, AccountChange::ResetSecondFactor).await?;
    Ok(Json(SecondFactorReset {
        id,
        second_factor: false,
        sessions_ended: ended,
    }))
}

/// A new account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct AccountCreated {
    id: i64,
    username: String,
    role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Disabled {
    id: i64,
    disabled: bool,
    sessions_ended: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Enabled {
    id: i64,
    disabled: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Unlocked {
    id: i64,
    locked: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PasswordReset {
    id: i64,
    /// To hand over to the account's owner; shown once.
    temporary_password: String,
    must_change_password: bool,
    sessions_ended: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct RoleSet {
    id: i64,
    role: Role,
    sessions_ended: usize,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SecondFactorReset {
    id: i64,
    second_factor: bool,
    sessions_ended: usize,
}
