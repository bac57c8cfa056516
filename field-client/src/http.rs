//! HTTPS to the dispatch server's JSON API over the same trust as the device channel.
//!
//! Shared by enrolment and the fleet simulator so both read server errors the same way.

use std::time::Duration;

use serde::Deserialize;

use crate::tls::{TlsError, Trust};

/// How long one API request may take; the server answers in milliseconds on a healthy network.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A non-2xx answer, with the server's `{"error": {"code", "message"}}` when it sent one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server answered {status}: {message} ({code})")]
pub struct ApiError {
    pub status: u16,
    /// Machine-readable code such as `unknown_enrolment_code`; `http_<status>` when the body had
    /// none.
    pub code: String,
    pub message: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl ApiError {
    /// Reads the error out of a failed response, falling back to the raw body text.
    pub async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Self {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => Self {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message: if text.trim().is_empty() {
                    status.canonical_reason().unwrap_or("no reason").to_owned()
                } else {
                    text.trim().chars().take(300).collect()
                },
            },
        }
    }
}

/// Why an HTTPS client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A reqwest client that trusts exactly what `trust` says; `cookies` keeps a session cookie
/// across requests (operator login).
///
/// # Errors
/// When the trust setting is unusable or reqwest cannot start.
pub fn https_client(trust: &Trust, cookies: bool) -> Result<reqwest::Client, ClientBuildError> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(trust.client_config()?)
        .cookie_store(cookies)
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

/// An error with all its causes, because reqwest's own message hides the interesting part
/// (for example a certificate that does not match the pin).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
