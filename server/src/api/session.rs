//! Operator login and logout with an HttpOnly, Secure, SameSite=Strict session cookie; the
//! operator's own password change; and the list of sessions, each of which its owner (or an
//! admin, any) can end.
//!
//! A login is refused with the same answer (401 `bad_login`) and the same work (one password
//! check on the bounded workers, one audit write) whether the user is unknown, the password
//! wrong, or the account locked or disabled; the audit log says which.

use axum::extract::State;
use axum::http::header::{SET_COOKIE, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use super::extract::{
    lacks_second_factor, needs_second_factor, Admin, Authorized, OperatorRole, Source,
    SESSION_COOKIE,
};
use super::openapi::{
    self, Busy, ErrorBody, InputErrors, Malformed, NotFound, SessionErrors, WriteErrors,
};
use crate::app::AppState;
use crate::auth::second_factor::{is_recovery_code, matching_step, recovery_code_hash};
use crate::auth::{dummy_hash, random_hex, sha256_hex, validate_new_password, Attempt};
use crate::domain::{now_ms, Role};
use crate::store::{LockoutPolicy, LoginOrigin, LoginRefusal, Operator, SessionRecord};

pub fn public_router() -> OpenApiRouter<AppState> {
    openapi::new_router().routes(routes!(login))
}

pub fn protected_router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(end_session))
}

/// Longest user agent kept with a session.
const MAX_USER_AGENT: usize = 200;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
    /// The second factor's current code, or one of its recovery codes.
    #[serde(default)]
    code: Option<String>,
}

#[utoipa::path(
    post, path = "/api/login", tag = "session", security(()),
    request_body = LoginRequest,
    responses(
        (
            status = 200,
            body = LoggedIn,
            description = "Logged in.",
            headers(
                ("Set-Cookie" = String, description = "The session cookie `dispatch_session`."),
            ),
        ),
        (
            status = 400,
            body = ErrorBody,
            description = "`invalid_request`: the body is not a login.",
        ),
        (
            status = 401,
            body = ErrorBody,
            description = "`bad_login`: unknown user, wrong password, locked or disabled account \
                (one answer for all); `second_factor_required`: the password was right, send the \
                code in `code`.",
        ),
        (
            status = 403,
            body = ErrorBody,
            description = "`cross_origin`: a login from another origin.",
        ),
        Busy,
        (
            status = 503,
            body = ErrorBody,
            description = "`storage_unavailable`: the storage failed; retry later.",
        ),
        WriteErrors,
    )
)]
async fn login(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let store = &state.dispatch.store;
    let now = now_ms();
    if let Some(ip) = source {
        if let Attempt::Refused {
            retry_after_secs,
            first,
        } = state.logins.throttle.attempt(ip, now)
        {
            if first {
                tracing::warn!(source = %ip, "login attempts throttled");
                store.record_login_throttled(retry_after_secs).await?;
            }
            return Err(ApiError::TooManyAttempts(retry_after_secs));
        }
    }
    let operator = store.operator_by_username(&body.username).await?;
    let hash = operator
        .as_ref()
        .map_or(dummy_hash(), |o| o.password_hash.as_str())
        .to_owned();
    let password_ok = state.logins.workers.verify(body.password, hash).await?;
    let outcome = match operator {
        None => Err((LoginRefusal::UnknownUser, None)),
        Some(o) if o.disabled => Err((LoginRefusal::Disabled, Some(o))),
        Some(o) if o.locked_at(now) => Err((LoginRefusal::Locked, Some(o))),
        Some(o) if !password_ok => Err((LoginRefusal::WrongPassword, Some(o))),
        Some(o) => Ok(o),
    };
    let operator = match outcome {
        Ok(operator) => second_factor(&state, operator, body.code.as_deref(), now).await?,
        Err(refusal) => Err(refusal),
    };
    let operator = match operator {
        Ok(operator) => operator,
        Err((LoginRefusal::WrongCode, None)) => return Err(ApiError::SecondFactorRequired),
        Err((refusal, account)) => {
            // The log escapes control characters (`logging`): a username cannot forge a line.
            tracing::warn!(username = %body.username, reason = refusal.as_str(), "login refused");
            let accounts = &state.config.accounts;
            let policy = LockoutPolicy {
                failures: accounts.lockout_failures,
                duration_ms: (accounts.lockout_secs > 0)
                    .then(|| i64::try_from(accounts.lockout_secs * 1000).unwrap_or(i64::MAX)),
            };
            if store
                .record_login_refused(&body.username, account.as_ref(), refusal, policy)
                .await?
            {
                tracing::warn!(username = %body.username, "account locked after repeated wrong passwords");
            }
            return Err(ApiError::BadLogin);
        }
    };
    let token = random_hex(32);
    let ttl = state.config.session_ttl_secs;
    let expires = now + i64::try_from(ttl * 1000).unwrap_or(i64::MAX / 2);
    let origin = LoginOrigin {
        source: source.map(|ip| ip.to_string()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(MAX_USER_AGENT).collect()),
    };
    let session_id = store
        .create_session(&sha256_hex(&token), &operator, expires, origin)
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={ttl}"
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    let second_factor_required =
        lacks_second_factor(&state, operator.role, operator.totp_secret.is_some());
    Ok((
        headers,
        Json(LoggedIn {
            username: operator.username,
            role: operator.role,
            session_id,
            must_change_password: operator.must_change_password,
            second_factor_required,
        }),
    ))
}

/// A login's answer (the session itself is the cookie).
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct LoggedIn {
    username: String,
    role: Role,
    session_id: i64,
    /// An admin reset the password: only changing it is allowed until then.
    must_change_password: bool,
    /// The role needs a second factor the account has not set up: only that is allowed.
    second_factor_required: bool,
}

/// The hash of a new password for `username`, once it passes the password policy.
///
/// # Errors
/// 422 naming `password` when the policy refuses it; 429 when the password workers are busy.
pub(super) async fn new_password_hash(
    state: &AppState,
    username: &str,
    password: String,
) -> Result<String, ApiError> {
    validate_new_password(
        &password,
        username,
        state.config.accounts.minimum_password_chars,
    )?;
    Ok(state.logins.workers.hash(password).await?)
}

/// A refused login: why, and the account when it exists. `(WrongCode, None)` stands for a
/// missing code (the password was right; the client asks for the code).
type Refused = (LoginRefusal, Option<Operator>);

/// Checks the second factor of an account whose password was right: its code must come with the
/// login (a six-digit code, each taken once, or a recovery code, each used once).
async fn second_factor(
    state: &AppState,
    operator: Operator,
    code: Option<&str>,
    now: i64,
) -> Result<Result<Operator, Refused>, ApiError> {
    let Some(secret) = operator.totp_secret.clone() else {
        return Ok(Ok(operator));
    };
    let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
        return Ok(Err((LoginRefusal::WrongCode, None)));
    };
    let store = &state.dispatch.store;
    let ok = if is_recovery_code(code) {
        store
            .use_recovery_code(&operator.actor(), &recovery_code_hash(code))
            .await?
            .is_some()
    } else {
        let now_secs = u64::try_from(now / 1000).unwrap_or(0);
        match matching_step(&secret, &operator.username, code, now_secs) {
            Some(step) => store.take_code_step(operator.id, step).await?,
            None => false,
        }
    };
    Ok(if ok {
        Ok(operator)
    } else {
        Err((LoginRefusal::WrongCode, Some(operator)))
    })
}

/// The header that clears the session cookie.
fn cleared_cookie() -> [(axum::http::HeaderName, String); 1] {
    [(
        SET_COOKIE,
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0"),
    )]
}

#[utoipa::path(
    post, path = "/api/logout", tag = "session",
    responses(
        (
            status = 200,
            body = LoggedOut,
            description = "The session ended; the cookie is cleared.",
            headers(("Set-Cookie" = String, description = "Clears `dispatch_session`.")),
        ),
        WriteErrors,
        SessionErrors,
    )
)]
async fn logout(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let ended = state
        .dispatch
        .store
        .end_session(auth.operator.session_id, None, &auth.actor(), "logout")
        .await?;
    state.dispatch.feed.sessions_ended(ended.as_slice());
    Ok((cleared_cookie(), Json(LoggedOut { logged_out: true })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct LoggedOut {
    logged_out: bool,
}

#[utoipa::path(
    get, path = "/api/me", tag = "session",
    responses((status = 200, body = Me), SessionErrors)
)]
async fn me(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Me>, ApiError> {
    let o = &auth.operator;
    let recovery_codes_left = if o.second_factor {
        Some(state.dispatch.store.recovery_codes_left(o.id).await?)
    } else {
        None
    };
    Ok(Json(Me {
        id: o.id,
        username: o.username.clone(),
        role: o.role,
        session_id: o.session_id,
        must_change_password: o.must_change_password,
        second_factor: o.second_factor,
        second_factor_required: needs_second_factor(&state, o),
        recovery_codes_left,
        idle_timeout_secs: state.config.accounts.idle_timeout_secs.of(o.role),
    }))
}

/// The logged-in operator and the session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Me {
    id: i64,
    username: String,
    role: Role,
    session_id: i64,
    must_change_password: bool,
    /// Whether the account has a second factor.
    second_factor: bool,
    /// The role needs a second factor the account lacks.
    second_factor_required: bool,
    /// Recovery codes not yet used (null without a second factor).
    recovery_codes_left: Option<i64>,
    /// The session ends after this long without a request.
    idle_timeout_secs: u64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// The operator's own new password; the account's other sessions end.
#[utoipa::path(
    post, path = "/api/password", tag = "session",
    request_body = PasswordChange,
    responses(
        (status = 200, body = PasswordChanged),
        InputErrors,
        WriteErrors,
        Busy,
        SessionErrors,
    )
)]
async fn change_password(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Json<PasswordChanged>, ApiError> {
    let store = &state.dispatch.store;
    let o = &auth.operator;
    let account = store.operator(o.id).await?;
    let current_ok = state
        .logins
        .workers
        .verify(body.current_password, account.password_hash)
        .await?;
    if !current_ok {
        return Err(
            crate::domain::Invalid::field("current_password", "is not your password").into(),
        );
    }
    let hash = new_password_hash(&state, &o.username, body.new_password).await?;
    let ended = store
        .change_own_password(&auth.actor(), &hash, o.session_id)
        .await?;
    state.dispatch.feed.sessions_ended(&ended);
    Ok(Json(PasswordChanged {
        changed: true,
        other_sessions_ended: ended.len(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct PasswordChanged {
    changed: bool,
    /// The account's other sessions, ended by the change.
    other_sessions_ended: usize,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SessionsQuery {
    /// Every operator's sessions (admins only).
    #[serde(default)]
    all: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct ListedSession {
    #[serde(flatten)]
    record: SessionRecord,
    /// The session this request was made with.
    current: bool,
}

#[utoipa::path(
    get, path = "/api/sessions", tag = "session",
    params(SessionsQuery),
    responses((status = 200, body = Vec<ListedSession>), Malformed, SessionErrors)
)]
async fn list_sessions(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SessionsQuery>,
) -> Result<Json<Vec<ListedSession>>, ApiError> {
    let o = &auth.operator;
    if query.all && !o.role.allows(Role::Admin) {
        return Err(ApiError::Forbidden(
            "listing everybody's sessions needs the admin role".into(),
        ));
    }
    let records = state
        .dispatch
        .store
        .session_records((!query.all).then_some(o.id))
        .await?;
    Ok(Json(
        records
            .into_iter()
            .map(|record| ListedSession {
                current: record.id == o.session_id,
                record,
            })
            .collect(),
    ))
}

/// Ends one of the operator's own sessions, or (admins) anybody's; its console socket closes.
#[utoipa::path(
    post, path = "/api/sessions/{id}/end", tag = "session",
    params(("id" = i64, Path, description = "The session's id.")),
    responses((status = 200, body = SessionEnded), Malformed, WriteErrors, NotFound, SessionErrors)
)]
async fn end_session(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SessionEnded>, ApiError> {
    let o = &auth.operator;
    let owner = (!o.role.allows(Role::Admin)).then_some(o.id);
    let ended = state
        .dispatch
        .store
        .end_session(id, owner, &auth.actor(), "session_ended")
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("session {id}")))?;
    state
        .dispatch
        .feed
        .sessions_ended(std::slice::from_ref(&ended));
    Ok(Json(SessionEnded { ended: id }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SessionEnded {
    /// The session's id.
    ended: i64,
}

/// Admin-only: the sessions of one account.
#[utoipa::path(
    get, path = "/api/users/{id}/sessions", tag = "users",
    params(("id" = i64, Path, description = "The account's id.")),
    responses((status = 200, body = Vec<SessionRecord>), Malformed, NotFound, SessionErrors)
)]
pub async fn sessions_of_user(
    _: Authorized<Admin>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<SessionRecord>>, ApiError> {
    state.dispatch.store.operator(id).await?;
    Ok(Json(state.dispatch.store.session_records(Some(id)).await?))
}
