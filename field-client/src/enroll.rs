//! Enrolment: trade a one-time code from an administrator for the device's credential.
//!
//! The only time the device speaks plain HTTPS; afterwards it uses the device channel.

use serde::{Deserialize, Serialize};

use crate::credential::{Credential, CredentialError};
use crate::http::{error_chain, https_client, ApiError, ClientBuildError};
use crate::tls::Trust;

/// Path of the enrolment endpoint.
pub const ENROLL_PATH: &str = "/api/devices/enroll";

/// Why enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server URL is not `https://host:port`.
    #[error(transparent)]
    Url(#[from] CredentialError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    /// No answer: unreachable, TLS refused (wrong pin?) or timed out.
    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },
    /// The server refused; for a bad code `code` is `unknown_enrolment_code`.
    #[error("enrolment refused: {0}")]
    Refused(ApiError),
    /// A 2xx answer that is not the documented enrolment response.
    #[error("unexpected enrolment response: {0}")]
    BadResponse(reqwest::Error),
}

#[derive(Serialize)]
struct EnrollRequest<'a> {
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_name: Option<&'a str>,
}

#[derive(Deserialize)]
struct EnrollResponse {
    device_id: i64,
    token: String,
    unit_id: i64,
    call_sign: String,
    /// Every address of the service (the server's `server_urls`); empty when none is set.
    #[serde(default)]
    servers: Vec<String>,
}

/// Enrols this device at `server_url` (`https://host:port`) with a one-time `code`.
///
/// The returned credential is not saved; call [`Credential::save`]. Enrolling revokes any earlier
/// device of the same unit.
///
/// # Errors
/// [`EnrollError::Refused`] carries the server's code and message (for example
/// `unknown_enrolment_code` for a wrong, used or expired code); the other variants say why the
/// server could not be asked.
pub async fn enroll(
    server_url: &str,
    trust: &Trust,
    code: &str,
    device_name: Option<&str>,
) -> Result<Credential, EnrollError> {
    let mut credential = Credential {
        server_url: server_url.trim_end_matches('/').to_owned(),
        other_servers: Vec::new(),
        pins: Vec::new(),
        ca_cert_pem: None,
        device_id: 0,
        token: String::new(),
        unit_id: 0,
        call_sign: String::new(),
    };
    credential.set_trust(trust);
    let url = credential
        .endpoint()?
        .base
        .join(ENROLL_PATH)
        .map_err(|_| CredentialError::BadUrl(server_url.to_owned()))?;
    let client = https_client(trust, false)?;
    let response = client
        .post(url.clone())
        .json(&EnrollRequest { code, device_name })
        .send()
        .await
        .map_err(|e| EnrollError::Transport {
            url: url.to_string(),
            detail: error_chain(&e),
        })?;
    if !response.status().is_success() {
        return Err(EnrollError::Refused(
            ApiError::from_response(response).await,
        ));
    }
    let body: EnrollResponse = response.json().await.map_err(EnrollError::BadResponse)?;
    credential.device_id = body.device_id;
    credential.token = body.token;
    credential.unit_id = body.unit_id;
    credential.call_sign = body.call_sign;
    credential.adopt_servers(&body.servers);
    Ok(credential)
}
