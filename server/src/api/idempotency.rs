//! The `Idempotency-Key` request header: a dispatcher's client sends the same key when it
//! retries an action whose answer it never saw, and the server applies the action once.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 128;

/// The request's idempotency key, if it sent one.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// A key derived from this one for the `n`th of several actions one request performs.
    pub fn part(&self, n: usize) -> Self {
        Self(self.0.as_ref().map(|k| format!("{k}#{n}")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| {
                !k.is_empty()
                    && k.len() <= MAX_KEY_LEN
                    && k.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
            })
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "header `Idempotency-Key` must be 1 to {MAX_KEY_LEN} visible ASCII characters without '#'"
                ))
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Type};
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_KEY_LEN))
            .pattern(Some("^[!-\"$-~]+$"));
        vec![ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .description(Some(
                "Sent again with a retry of this request: the action is applied once and the \
                 retry answers what the first attempt did.",
            ))
            .schema(Some(key))
            .build()]
    }
}
