//! Enrolment links: everything a tablet needs to enrol in one QR-friendly string,
//! `dispatch-enrol://HOST:PORT?code=CODE&pin=SHA256HEX`, so an officer scans instead of typing.
//!
//! The link carries the one-time code (valid 15 minutes, single use) and the certificate pin;
//! it is a secret until used, like the code itself.

use crate::tls::Trust;

/// Scheme of an enrolment link.
pub use dispatch_protocol::ENROLMENT_LINK_SCHEME as SCHEME;

/// A parsed enrolment link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentLink {
    /// `https://HOST:PORT` of the server.
    pub server_url: String,
    pub code: String,
    /// SHA-256 fingerprint of the server certificate, 64 hex digits.
    pub pin: String,
}

/// Why a link is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad enrolment link: {0} (expected {SCHEME}://HOST:PORT?code=CODE&pin=SHA256)")]
pub struct BadLink(String);

impl EnrolmentLink {
    /// The link for `server_url` (`https://HOST:PORT`), `code` and `pin`.
    pub fn to_link(&self) -> String {
        dispatch_protocol::enrolment_link(&self.server_url, &self.code, &self.pin)
    }

    /// Parses a scanned link; the pin is checked to be a well-formed fingerprint.
    ///
    /// # Errors
    /// [`BadLink`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, BadLink> {
        let rest = text
            .trim()
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| BadLink(format!("it does not start with {SCHEME}://")))?;
        let (authority, query) = rest
            .split_once('?')
            .ok_or_else(|| BadLink("no ?code=…&pin=… part".into()))?;
        let authority = authority.trim_end_matches('/');
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| BadLink(format!("{authority:?} has no port")))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(BadLink(format!("{authority:?} is not HOST:PORT")));
        }
        let (mut code, mut pin) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("code", v)) if !v.is_empty() => code = Some(v.to_owned()),
                Some(("pin", v)) if !v.is_empty() => pin = Some(v.to_ascii_lowercase()),
                _ => return Err(BadLink(format!("unexpected {pair:?}"))),
            }
        }
        let code = code.ok_or_else(|| BadLink("no code".into()))?;
        let pin = pin.ok_or_else(|| BadLink("no pin".into()))?;
        Trust::pin(&pin).map_err(|e| BadLink(format!("pin: {e}")))?;
        Ok(Self {
            server_url: format!("https://{authority}"),
            code,
            pin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_problems() {
        let link = EnrolmentLink {
            server_url: "https://10.1.2.3:8443".into(),
            code: "K7QM-2XPD".into(),
            pin: "ab".repeat(32),
        };
        let text = link.to_link();
        assert_eq!(
            text,
            format!(
                "dispatch-enrol://10.1.2.3:8443?code=K7QM-2XPD&pin={}",
                "ab".repeat(32)
            )
        );
        assert_eq!(EnrolmentLink::parse(&text).unwrap(), link);
        let upper = text.replace("abab", "ABAB");
        assert_eq!(EnrolmentLink::parse(&upper).unwrap(), link);
        let err = |t: &str| EnrolmentLink::parse(t).unwrap_err().to_string();
        assert!(err("https://x:1?code=a&pin=b").contains("does not start"));
        assert!(err("dispatch-enrol://host?code=a&pin=b").contains("no port"));
        assert!(err("dispatch-enrol://host:1?code=a").contains("no pin"));
        assert!(err("dispatch-enrol://host:1?code=a&pin=zz").contains("pin:"));
        assert!(err("dispatch-enrol://host:1?code=a&x=1").contains("unexpected"));
    }
}
