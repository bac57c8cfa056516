//! Operator login and logout with an HttpOnly, Secure, SameSite=Strict session cookie.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiJson};
use super::extract::session_token;
use super::extract::{Authorized, OperatorRole, SESSION_COOKIE};
use crate::app::AppState;
use crate::auth::{dummy_hash, random_hex, sha256_hex, verify_password};
use crate::domain::now_ms;

pub fn public_router() -> Router<AppState> {
    Router::new().route("/api/login", post(login))
}

pub fn protected_router() -> Router<AppState> {
    Router::new()
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    username: String,
    password: String,
}

#[tracing::instrument(skip_all, fields(username = %body.username), err(level = "warn"))]
async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let operator = state
        .dispatch
        .store
        .operator_by_username(&body.username)
        .await?;
    let hash = operator
        .as_ref()
        .map_or(dummy_hash(), |o| o.password_hash.as_str());
    let password_ok = verify_password(&body.password, hash);
    let operator = match operator {
        Some(o) if password_ok && !o.disabled => o,
        _ => return Err(ApiError::BadLogin),
    };
    let token = random_hex(32);
    let ttl = state.config.session_ttl_secs;
    let expires = now_ms() + i64::try_from(ttl * 1000).unwrap_or(i64::MAX / 2);
    state
        .dispatch
        .store
        .create_session(&sha256_hex(&token), &operator, expires)
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={ttl}"
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.into()))?,
    );
    Ok((
        headers,
        Json(serde_json::json!({ "username": operator.username, "role": operator.role })),
    ))
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = session_token(&headers) {
        state
            .dispatch
            .store
            .delete_session(&sha256_hex(&token))
            .await?;
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    Ok((
        [(SET_COOKIE, cookie)],
        Json(serde_json::json!({ "logged_out": true })),
    ))
}

async fn me(auth: Authorized<OperatorRole>) -> Json<serde_json::Value> {
    Json(
        serde_json::json!({ "id": auth.operator.id, "username": auth.operator.username, "role": auth.operator.role }),
    )
}
