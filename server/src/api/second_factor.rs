//! Setting up one's own second factor: a new secret shown as a QR code (and in base32), then
//! confirmed by its first code, which answers the one-time recovery codes (shown once). An admin
//! removes a lost one (`users.rs`); the login takes the code (`session.rs`).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiJson};
use super::extract::{Authorized, OperatorRole};
use super::openapi::{self, Conflict, InputErrors, SessionErrors, WriteErrors};
use crate::app::AppState;
use crate::auth::second_factor::{
    enrolment, matching_step, new_recovery_codes, new_secret, recovery_code_hash, Enrolment,
};
use crate::domain::{now_ms, Invalid};

pub fn router() -> OpenApiRouter<AppState> {
    openapi::new_router()
        .routes(routes!(begin))
        .routes(routes!(confirm))
}

/// A new secret to scan; it takes effect once confirmed.
#[utoipa::path(
    post, path = "/api/me/second-factor", tag = "session",
    responses(
        (
            status = 200,
            body = Enrolment,
            description = "A new secret to scan; confirmed with one of its codes.",
        ),
        WriteErrors,
        Conflict,
        SessionErrors,
    )
)]
async fn begin(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
) -> Result<Json<Enrolment>, ApiError> {
    let o = &auth.operator;
    if o.second_factor {
        return Err(ApiError::Conflict {
            code: "second_factor_enrolled",
            message: "this account has a second factor; an admin can remove a lost one".into(),
        });
    }
    let secret = new_secret();
    let shown = enrolment(&secret, &o.username)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("cannot render the enrolment")))?;
    state
        .dispatch
        .store
        .begin_second_factor(o.id, &secret)
        .await?;
    Ok(Json(shown))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Confirmation {
    code: String,
}

/// Confirms the secret being set up with its current code; answers the recovery codes.
#[utoipa::path(
    post, path = "/api/me/second-factor/confirm", tag = "session",
    request_body = Confirmation,
    responses(
        (status = 200, body = SecondFactorEnrolled),
        InputErrors,
        WriteErrors,
        Conflict,
        SessionErrors,
    )
)]
async fn confirm(
    auth: Authorized<OperatorRole>,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Confirmation>,
) -> Result<Json<SecondFactorEnrolled>, ApiError> {
    let store = &state.dispatch.store;
    let o = &auth.operator;
    let secret = store
        .pending_second_factor(o.id)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            code: "no_second_factor_setup",
            message: "no second factor is being set up; start with POST /api/me/second-factor"
                .into(),
        })?;
    let now_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
    let step = matching_step(&secret, &o.username, &body.code, now_secs).ok_or_else(|| {
        Invalid::field(
            "code",
            "is not the current code of the new secret (check the device's clock)",
        )
    })?;
    let codes = new_recovery_codes();
    let hashes = codes.iter().map(|c| recovery_code_hash(c)).collect();
    store
        .confirm_second_factor(&auth.actor(), &secret, step, hashes)
        .await?;
    Ok(Json(SecondFactorEnrolled {
        enrolled: true,
        recovery_codes: codes,
    }))
}

/// The second factor is set up; the recovery codes are shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct SecondFactorEnrolled {
    enrolled: bool,
    recovery_codes: Vec<String>,
}
