//! The device credential obtained at enrolment and kept in the state directory.
//!
//! Written as `credential.json` with mode 0600 because it holds the device's only secret;
//! rewritten when the server announces a new certificate pin set.

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
    /// Further `https://host:port` addresses of the same service, as the server names them at
    /// enrolment and in `welcome`, tried in turn after `server_url` when a connection cannot be
    /// made. They are trusted the same way (the same pins or CA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_servers: Vec<String>,
    /// SHA-256 fingerprints (lower-case hex) of the server certificates accepted, when pinned:
    /// one, or two while the server rotates its certificate. Files written before pin sets
    /// hold a single `"pin": "…"`, read as a set of one.
    #[serde(
        default,
        alias = "pin",
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub pins: Vec<String>,
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
            .field("pins", &self.pins)
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
        match (self.pins.is_empty(), &self.ca_cert_pem) {
            (false, _) => Ok(Trust::pins(&self.pins)?),
            (true, Some(pem)) => Ok(Trust::CaPem(pem.clone())),
            (true, None) => Err(CredentialError::NoTrust),
        }
    }

    /// Stores `trust` in the credential, replacing any earlier setting.
    pub fn set_trust(&mut self, trust: &Trust) {
        (self.pins, self.ca_cert_pem) = match trust {
            Trust::Pins(pins) => (pins.iter().cloned().collect(), None),
            Trust::CaPem(pem) => (Vec::new(), Some(pem.clone())),
        };
    }

    /// Replaces the pin set with the one the server announced (`pins` frame). Returns whether
    /// anything changed. A credential that trusts a CA keeps doing so and ignores pins.
    ///
    /// # Errors
    /// When the announcement is empty, holds more than [`dispatch_protocol::MAX_PINS`], or a
    /// malformed pin; the credential is then unchanged.
    pub fn adopt_pins(&mut self, announced: &[String]) -> Result<bool, TlsError> {
        if self.pins.is_empty() {
            return Ok(false);
        }
        if announced.len() > dispatch_protocol::MAX_PINS {
            return Err(TlsError::TooManyPins(announced.len()));
        }
        let pins: Vec<String> = crate::tls::pin_set(announced)?.into_iter().collect();
        let mut current = self.pins.clone();
        current.sort();
        current.dedup();
        if current == pins {
            return Ok(false);
        }
        self.pins = pins;
        Ok(true)
    }

    /// Where the server is, parsed from `server_url`.
    ///
    /// # Errors
    /// [`CredentialError::BadUrl`] unless the URL is `https://` with a host.
    pub(crate) fn endpoint(&self) -> Result<Endpoint, CredentialError> {
        Endpoint::parse(&self.server_url)
    }

    /// Takes the service's addresses as the server names them (enrolment answer, `welcome`):
    /// `other_servers` becomes those other than `server_url`, each `https://` with a host (any
    /// other is skipped with a warning). An empty list changes nothing. Returns whether the
    /// list changed.
    pub fn adopt_servers(&mut self, servers: &[String]) -> bool {
        if servers.is_empty() {
            return false;
        }
        let mut others: Vec<String> = Vec::new();
        for url in servers {
            let url = url.trim_end_matches('/');
            if url == self.server_url || others.iter().any(|o| o == url) {
                continue;
            }
            match Endpoint::parse(url) {
                Ok(_) => others.push(url.to_owned()),
                Err(e) => tracing::warn!("the server named an address that is not usable: {e}"),
            }
        }
        if others == self.other_servers {
            return false;
        }
        self.other_servers = others;
        true
    }

    /// Every address of the service: `server_url` first, then `other_servers`.
    ///
    /// # Errors
    /// [`CredentialError::BadUrl`] naming the first that is not `https://` with a host.
    pub(crate) fn endpoints(&self) -> Result<Vec<Endpoint>, CredentialError> {
        std::iter::once(&self.server_url)
            .chain(&self.other_servers)
            .map(|url| Endpoint::parse(url))
            .collect()
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

/// `"pin": "…"` (files written before pin sets) or `"pins": […]`.
fn one_or_many<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(pin) => vec![pin],
        OneOrMany::Many(pins) => pins,
    })
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
    /// Parses `https://host[:port]`.
    ///
    /// # Errors
    /// [`CredentialError::BadUrl`] unless the URL is `https://` with a host.
    pub(crate) fn parse(url: &str) -> Result<Self, CredentialError> {
        let bad = || CredentialError::BadUrl(url.to_owned());
        let base = reqwest::Url::parse(url).map_err(|_| bad())?;
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

    pub(super) fn sample() -> Credential {
        Credential {
            server_url: "https://127.0.0.1:8443".into(),
            other_servers: Vec::new(),
            pins: vec!["ab".repeat(32)],
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
        let mut cred = sample();
        cred.other_servers = vec!["https://10.0.0.6:8443".into()];
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
    fn the_addresses_are_the_server_then_the_others_and_each_is_checked() {
        let mut cred = sample();
        cred.other_servers = vec!["https://10.0.0.6:8443".into(), "https://node-3".into()];
        let ends = cred.endpoints().unwrap();
        let named: Vec<_> = ends.iter().map(|e| (e.host.as_str(), e.port)).collect();
        assert_eq!(
            named,
            [("127.0.0.1", 8443), ("10.0.0.6", 8443), ("node-3", 443)]
        );
        cred.other_servers.push("ftp://x".into());
        match cred.endpoints() {
            Err(CredentialError::BadUrl(url)) => assert_eq!(url, "ftp://x"),
            other => panic!("expected the bad address named, got {other:?}"),
        }
    }

    #[test]
    fn trust_comes_from_pin_or_ca() {
        let mut cred = sample();
        assert!(matches!(cred.trust().unwrap(), Trust::Pins(_)));
        cred.set_trust(&Trust::CaPem("pem".into()));
        assert!(cred.pins.is_empty());
        assert_eq!(cred.trust().unwrap(), Trust::CaPem("pem".into()));
        cred.ca_cert_pem = None;
        assert!(matches!(cred.trust(), Err(CredentialError::NoTrust)));
    }
}

#[cfg(test)]
mod pin_set_tests {
    use super::*;

    #[test]
    fn a_single_pin_written_before_pin_sets_is_read_as_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let old = serde_json::json!({
            "server_url": "https://127.0.0.1:8443", "pin": "ab".repeat(32), "device_id": 3,
            "token": "secret", "unit_id": 12, "call_sign": "P-12"
        });
        fs::write(Credential::path(dir.path()), old.to_string()).unwrap();
        assert_eq!(
            Credential::load(dir.path()).unwrap(),
            super::tests::sample()
        );
    }

    #[test]
    fn an_announced_pin_set_replaces_the_stored_one_and_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut cred = super::tests::sample();
        let (old, next) = ("ab".repeat(32), "cd".repeat(32));
        assert!(!cred.adopt_pins(std::slice::from_ref(&old)).unwrap());
        assert!(cred
            .adopt_pins(&[old.clone(), next.to_uppercase()])
            .unwrap());
        assert_eq!(cred.pins, [old.clone(), next.clone()]);
        cred.save(dir.path()).unwrap();
        let reloaded = Credential::load(dir.path()).unwrap();
        assert_eq!(reloaded.pins, [old.clone(), next.clone()]);
        assert_eq!(
            reloaded.trust().unwrap(),
            Trust::pins([&old, &next]).unwrap()
        );
        // After the switch the server announces only the new one.
        let mut cred = reloaded;
        assert!(cred.adopt_pins(std::slice::from_ref(&next)).unwrap());
        assert_eq!(cred.pins, [next.as_str()]);
    }

    #[test]
    fn a_bad_announcement_changes_nothing() {
        let mut cred = super::tests::sample();
        assert!(matches!(cred.adopt_pins(&[]), Err(TlsError::NoPins)));
        assert!(matches!(
            cred.adopt_pins(&["zz".into()]),
            Err(TlsError::BadPin(_))
        ));
        let many = vec!["cd".repeat(32); dispatch_protocol::MAX_PINS + 1];
        assert!(matches!(
            cred.adopt_pins(&many),
            Err(TlsError::TooManyPins(_))
        ));
        assert_eq!(cred, super::tests::sample());
        // A credential that trusts a CA ignores pins.
        cred.set_trust(&Trust::CaPem("pem".into()));
        assert!(!cred.adopt_pins(&["cd".repeat(32)]).unwrap());
        assert!(cred.pins.is_empty());
    }
}
