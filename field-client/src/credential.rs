//! The device credential obtained at enrolment and kept in the state directory.
//!
//! Written once as `credential.json` with mode 0600 because it holds the device's only secret.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tls::{TlsError, Trust};

/// Name of the credential file inside a state directory.
pub const CREDENTIAL_FILE: &str = "credential.json";

/// Why a credential cannot be stored, read or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a credential.
    #[error("{path} is not a valid credential: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// Neither a pin nor a CA certificate is stored, so the server could not be authenticated.
    #[error("credential has neither a certificate pin nor a CA certificate")]
    NoTrust,
    /// The stored trust setting is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `server_url` is not an `https://host:port` URL.
    #[error("server URL {0:?} must look like https://HOST:PORT")]
    BadUrl(String),
}

/// Everything a device needs to connect: where the server is, how to trust it, who we are.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// `https://host:port` of the server.
    pub server_url: String,
    /// SHA-256 fingerprint (lower-case hex) of the server certificate, when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
    /// PEM CA certificate, when the server is trusted through a private CA instead of a pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_pem: Option<String>,
    pub device_id: i64,
    /// Secret bearer token; the server keeps only its hash, so losing it means re-enrolling.
    pub token: String,
    pub unit_id: i64,
    pub call_sign: String,
}

/// Keeps the token out of logs.
impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("server_url", &self.server_url)
            .field("pin", &self.pin)
            .field("ca_cert_pem", &self.ca_cert_pem.as_ref().map(|_| "…"))
            .field("device_id", &self.device_id)
            .field("token", &"<redacted>")
            .field("unit_id", &self.unit_id)
            .field("call_sign", &self.call_sign)
            .finish()
    }
}

impl Credential {
    /// Path of the credential file in `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(CREDENTIAL_FILE)
    }

    /// Whether `state_dir` already holds a credential.
    pub fn exists(state_dir: &Path) -> bool {
        Self::path(state_dir).is_file()
    }

    /// How to authenticate the server, from the stored pin or CA.
    ///
    /// # Errors
    /// [`CredentialError::NoTrust`] when neither is stored, or a TLS error when it is malformed.
    pub fn trust(&self) -> Result<Trust, CredentialError> {
        match (&self.pin, &self.ca_cert_pem) {
            (Some(pin), _) => Ok(Trust::pin(pin)?),
            (None, Some(pem)) => Ok(Trust::CaPem(pem.clone())),
            (None, None) => Err(CredentialError::NoTrust),
        }
    }

    /// Stores `trust` in the credential, replacing any earlier setting.
    pub fn set_trust(&mut self, trust: &Trust) {
        (self.pin, self.ca_cert_pem) = match trust {
            Trust::Pin(pin) => (Some(pin.clone()), None),
            Trust::CaPem(pem) => (None, Some(pem.clone())),
        };
    }

    /// Where the server is, parsed from `server_url`.
    ///
    /// # Errors
    /// [`CredentialError::BadUrl`] unless the URL is `https://` with a host.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, CredentialError> {
        let bad = || CredentialError::BadUrl(self.server_url.clone());
        let base = reqwest::Url::parse(&self.server_url).map_err(|_| bad())?;
        if base.scheme() != "https" {
            return Err(bad());
        }
        let host = base
            .host_str()
            .ok_or_else(bad)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = base.port_or_known_default().ok_or_else(bad)?;
        Ok(Endpoint { base, host, port })
    }

    /// Writes the credential to `state_dir/credential.json` with mode 0600, creating the
    /// directory (mode 0700) if needed. The file is replaced atomically.
    ///
    /// # Errors
    /// When the directory or file cannot be written.
    pub fn save(&self, state_dir: &Path) -> Result<(), CredentialError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CredentialError::Io { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io(state_dir))?;
        let path = Self::path(state_dir);
        let tmp = state_dir.join(format!("{CREDENTIAL_FILE}.tmp"));
        // A leftover temporary file may have other permissions; `mode` applies only on creation.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&tmp)(e)),
            _ => {}
        }
        let json = serde_json::to_vec_pretty(self).map_err(|e| io(&tmp)(e.into()))?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&json).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(state_dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io(state_dir))?;
        Ok(())
    }

    /// Reads `state_dir/credential.json`, warning when other users could read it.
    ///
    /// # Errors
    /// When the file is missing, unreadable or not a credential.
    pub fn load(state_dir: &Path) -> Result<Self, CredentialError> {
        let path = Self::path(state_dir);
        let text = fs::read_to_string(&path).map_err(|source| CredentialError::Io {
            path: path.clone(),
            source,
        })?;
        if let Ok(meta) = fs::metadata(&path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                    "credential file is readable by other users; it should be 0600");
            }
        }
        serde_json::from_str(&text).map_err(|source| CredentialError::Parse { path, source })
    }
}

/// The parts of `server_url` that the HTTP and WebSocket code need.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `https://host:port`, to join API paths onto.
    pub base: reqwest::Url,
    /// Host name or IP address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// `wss://host:port/api/device/channel`.
    pub fn channel_url(&self) -> String {
        let host = self.base.host_str().unwrap_or(&self.host);
        format!(
            "wss://{host}:{}{}",
            self.port,
            dispatch_protocol::DEVICE_CHANNEL_PATH
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credential {
        Credential {
            server_url: "https://127.0.0.1:8443".into(),
            pin: Some("ab".repeat(32)),
            ca_cert_pem: None,
            device_id: 3,
            token: "secret".into(),
            unit_id: 12,
            call_sign: "P-12".into(),
        }
    }

    #[test]
    fn saved_with_mode_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let cred = sample();
        cred.save(&state).unwrap();
        let mode = fs::metadata(Credential::path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Credential::load(&state).unwrap(), cred);
        // Saving again replaces the file and keeps the mode.
        let mut other = cred.clone();
        other.token = "rotated".into();
        other.save(&state).unwrap();
        assert_eq!(Credential::load(&state).unwrap().token, "rotated");
        let mode = fs::metadata(Credential::path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_hides_the_token() {
        assert!(!format!("{:?}", sample()).contains("secret"));
    }

    #[test]
    fn url_is_checked() {
        let mut cred = sample();
        let end = cred.endpoint().unwrap();
        assert_eq!((end.host.as_str(), end.port), ("127.0.0.1", 8443));
        assert_eq!(end.channel_url(), "wss://127.0.0.1:8443/api/device/channel");
        cred.server_url = "https://[::1]:9".into();
        let end = cred.endpoint().unwrap();
        assert_eq!(end.host, "::1");
        assert_eq!(end.channel_url(), "wss://[::1]:9/api/device/channel");
        cred.server_url = "http://x:1".into();
        assert!(matches!(cred.endpoint(), Err(CredentialError::BadUrl(_))));
    }

    #[test]
    fn trust_comes_from_pin_or_ca() {
        let mut cred = sample();
        assert!(matches!(cred.trust().unwrap(), Trust::Pin(_)));
        cred.set_trust(&Trust::CaPem("pem".into()));
        assert_eq!(cred.pin, None);
        assert_eq!(cred.trust().unwrap(), Trust::CaPem("pem".into()));
        cred.ca_cert_pem = None;
        assert!(matches!(cred.trust(), Err(CredentialError::NoTrust)));
    }
}
