//! Trust in the dispatch server: a set of pinned certificate fingerprints or a private CA.
//!
//! Builds the one rustls `ClientConfig` used for both enrolment (HTTPS) and the device channel.
//! A set rather than one pin, so that the server's certificate can be replaced with an overlap.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

/// Why a trust setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The pin is not 64 hexadecimal digits.
    #[error(
        "pin must be the 64 hex digits of a SHA-256 fingerprint (colons and a sha256= prefix \
         allowed), got {0:?}"
    )]
    BadPin(String),
    /// A pin set must hold at least one pin.
    #[error("no pin given")]
    NoPins,
    /// The server announced more pins than a device accepts.
    #[error("{0} pins announced; at most {max} are accepted", max = dispatch_protocol::MAX_PINS)]
    TooManyPins(usize),
    /// The CA file could not be read.
    #[error("cannot read CA certificate {path}: {source}")]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
    /// The CA PEM held no usable certificate.
    #[error("CA PEM holds no usable certificate: {0}")]
    BadCa(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// How the client decides that it talks to the real server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Accept exactly the certificates whose DER SHA-256 is one of these (lower-case hex, never
    /// empty); host names are not checked. This is the normal case: the server's certificate
    /// is often self-signed. More than one during a certificate rotation.
    Pins(BTreeSet<String>),
    /// Verify the chain against this PEM-encoded CA and check the host name.
    CaPem(String),
}

impl Trust {
    /// A pin from user input: 64 hex digits, case-insensitive, colons and spaces ignored,
    /// optionally after `sha256=` as dispatchd prints it at start.
    ///
    /// # Errors
    /// [`TlsError::BadPin`] when the text is not a SHA-256 fingerprint.
    pub fn pin(text: &str) -> Result<Self, TlsError> {
        Self::pins([text])
    }

    /// A pin set: any of these certificates is accepted (duplicates count once).
    ///
    /// # Errors
    /// [`TlsError::BadPin`] when one is not a SHA-256 fingerprint; [`TlsError::NoPins`] when
    /// there is none.
    pub fn pins<I, S>(texts: I) -> Result<Self, TlsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        pin_set(texts).map(Self::Pins)
    }

    /// Reads a PEM CA certificate file, checking that it parses.
    ///
    /// # Errors
    /// When the file cannot be read or holds no certificate.
    pub fn ca_file(path: &Path) -> Result<Self, TlsError> {
        let pem = std::fs::read_to_string(path).map_err(|source| TlsError::ReadCa {
            path: path.display().to_string(),
            source,
        })?;
        parse_ca(&pem)?;
        Ok(Self::CaPem(pem))
    }

    /// The rustls configuration for this trust, with the ring provider and TLS 1.2/1.3.
    ///
    /// # Errors
    /// When the CA does not parse or rustls refuses the settings.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match self {
            Self::Pins(pins) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinVerifier::new(pins, &provider)?))
                .with_no_client_auth(),
            Self::CaPem(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in parse_ca(pem)? {
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::BadCa(e.to_string()))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(config)
    }
}

pub(crate) fn pin_set<I, S>(texts: I) -> Result<BTreeSet<String>, TlsError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let pins = texts
        .into_iter()
        .map(|t| normalise_pin(t.as_ref()))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if pins.is_empty() {
        return Err(TlsError::NoPins);
    }
    Ok(pins)
}

/// A fingerprint in the one form pins are compared in: 64 lower-case hex digits.
fn normalise_pin(text: &str) -> Result<String, TlsError> {
    let trimmed = text.trim();
    let bare = match trimmed.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &trimmed[7..],
        _ => trimmed,
    };
    let hex = bare
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TlsError::BadPin(text.to_owned()));
    }
    Ok(hex)
}

fn parse_ca(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCa(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::BadCa("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// SHA-256 of a DER certificate as lower-case hex, the form the server prints at start-up.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Accepts exactly the certificates of a pin set, chosen by fingerprint.
///
/// Chain and name checks are skipped on purpose: the pins already name the keys the server
/// holds. Handshake signatures are still verified, so a peer must own that certificate's key.
#[derive(Debug)]
pub struct PinVerifier {
    pins: BTreeSet<String>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    /// # Errors
    /// [`TlsError::BadPin`] when a pin is not a SHA-256 fingerprint; [`TlsError::NoPins`] when
    /// there is none.
    pub fn new<I, S>(pins: I, provider: &CryptoProvider) -> Result<Self, TlsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self {
            pins: pin_set(pins)?,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

/// Why a presented certificate was refused; carried inside the rustls error for the logs.
#[derive(Debug, thiserror::Error)]
#[error("server certificate sha256={presented} matches none of the pinned {pinned:?}")]
struct PinMismatch {
    presented: String,
    pinned: Vec<String>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity);
        if self.pins.contains(&presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch {
                    presented,
                    pinned: self.pins.iter().cloned().collect(),
                })),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertificateDer<'static> {
        rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .unwrap()
            .cert
            .der()
            .clone()
    }

    fn verify(verifier: &PinVerifier, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let name = ServerName::try_from("dispatch.invalid").unwrap();
        verifier
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn a_pin_set_accepts_each_of_its_certificates_and_rejects_another() {
        let provider = rustls::crypto::ring::default_provider();
        let (old, new, other) = (cert(), cert(), cert());
        let verifier = PinVerifier::new([fingerprint(&old), fingerprint(&new)], &provider).unwrap();
        verify(&verifier, &old).unwrap();
        verify(&verifier, &new).unwrap();
        let err = verify(&verifier, &other).unwrap_err();
        assert!(err.to_string().contains(&fingerprint(&other)), "{err}");
        // Once the old pin is dropped from the set, its certificate is refused.
        let verifier = PinVerifier::new([fingerprint(&new)], &provider).unwrap();
        verify(&verifier, &new).unwrap();
        verify(&verifier, &old).unwrap_err();
        assert!(matches!(
            PinVerifier::new(Vec::<String>::new(), &provider),
            Err(TlsError::NoPins)
        ));
    }

    #[test]
    fn pin_accepts_its_certificate_and_rejects_another() {
        let provider = rustls::crypto::ring::default_provider();
        let (right, other) = (cert(), cert());
        let verifier = PinVerifier::new([fingerprint(&right)], &provider).unwrap();
        verify(&verifier, &right).unwrap();
        let err = verify(&verifier, &other).unwrap_err();
        assert!(
            matches!(
                &err,
                rustls::Error::InvalidCertificate(CertificateError::Other(_))
            ),
            "{err}"
        );
        // The log line names both fingerprints.
        assert!(err.to_string().contains(&fingerprint(&other)), "{err}");
    }

    #[test]
    fn pin_input_is_normalised_and_checked() {
        let hex = "AB".repeat(32);
        let colons = hex
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let pinned = |hex: &str| Trust::Pins(BTreeSet::from([hex.to_owned()]));
        assert_eq!(Trust::pin(&colons).unwrap(), pinned(&"ab".repeat(32)));
        // As dispatchd prints it at start: `tls fingerprint sha256=…`.
        assert_eq!(
            Trust::pin(&format!("sha256={hex}")).unwrap(),
            pinned(&"ab".repeat(32))
        );
        assert_eq!(
            Trust::pin(&format!(" SHA256={colons}\n")).unwrap(),
            pinned(&"ab".repeat(32))
        );
        assert!(matches!(
            Trust::pin(&format!("sha1={hex}")),
            Err(TlsError::BadPin(_))
        ));
        assert_eq!(
            Trust::pins([hex.as_str(), &colons, &"cd".repeat(32)]).unwrap(),
            Trust::Pins(BTreeSet::from(["ab".repeat(32), "cd".repeat(32)]))
        );
        assert!(matches!(
            Trust::pins(Vec::<&str>::new()),
            Err(TlsError::NoPins)
        ));
        assert!(matches!(Trust::pin("abc"), Err(TlsError::BadPin(_))));
        assert!(matches!(
            Trust::pin(&"zz".repeat(32)),
            Err(TlsError::BadPin(_))
        ));
    }

    #[test]
    fn ca_pem_builds_a_config_and_garbage_does_not() {
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        Trust::CaPem(ca.cert.pem()).client_config().unwrap();
        assert!(matches!(
            Trust::CaPem("not pem".into()).client_config(),
            Err(TlsError::BadCa(_))
        ));
    }
}
