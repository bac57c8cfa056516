//! The second factor: time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps,
//! one step of clock skew either way), which authenticator apps compute offline from a secret
//! shared once through a QR code rendered here; and one-time recovery codes for a lost device.

use rand::RngCore;
use totp_rs::{Algorithm, TOTP};

/// Seconds per code.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
const DIGITS: usize = 6;
/// Steps of clock difference accepted either way.
const SKEW: u64 = 1;
/// Bytes of a secret (160 bits, as RFC 4226 recommends).
const SECRET_BYTES: usize = 20;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "Dispatch";

/// A new random secret, hex-encoded for storage.
pub fn new_secret() -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    hex::encode(secret)
}

fn totp(secret_hex: &str, username: &str) -> Option<TOTP> {
    let secret = hex::decode(secret_hex).ok()?;
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        secret,
        Some(ISSUER.to_owned()),
        username.to_owned(),
    )
    .ok()
}

/// What an authenticator app needs: the `otpauth://` URI, the same as a QR code (SVG), and the
/// secret in base32 for typing in by hand.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Enrolment {
    pub otpauth_uri: String,
    pub qr_svg: String,
    pub secret_base32: String,
}

/// The enrolment of `secret_hex` for `username`.
pub fn enrolment(secret_hex: &str, username: &str) -> Option<Enrolment> {
    let totp = totp(secret_hex, username)?;
    let uri = totp.get_url();
    let qr_svg = super::qr::qr_svg(&uri)?;
    Some(Enrolment {
        otpauth_uri: uri,
        qr_svg,
        secret_base32: totp.get_secret_base32(),
    })
}

/// The time step whose code `code` is, within the accepted skew of `now_secs`, if any. The
/// caller takes each step once (a code cannot be replayed).
pub fn matching_step(secret_hex: &str, username: &str, code: &str, now_secs: u64) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret_hex, username)?;
    let now = now_secs / STEP_SECS;
    (now.saturating_sub(SKEW)..=now + SKEW)
        .find(|step| super::constant_time_eq(&totp.generate(step * STEP_SECS), &code))
}

/// New recovery codes, like `K7QX-4MZD-P2WA` (about 59 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| super::new_enrolment_code())
        .collect()
}

/// Whether `code` looks like a recovery code rather than a six-digit code.
pub fn is_recovery_code(code: &str) -> bool {
    super::normalise_enrolment_code(code).len() == 12
}

/// The stored form of a recovery code: SHA-256 of its canonical form.
pub fn recovery_code_hash(code: &str) -> String {
    super::sha256_hex(&super::normalise_enrolment_code(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 secret "12345678901234567890" at T = 59 s gives
    /// 94287082 (8 digits); its last six are the 6-digit code.
    #[test]
    fn codes_follow_rfc_6238() {
        let secret = hex::encode(b"12345678901234567890");
        assert_eq!(matching_step(&secret, "u", "287082", 59), Some(1));
        assert_eq!(
            matching_step(&secret, "u", "287082", 59 + 30),
            Some(1),
            "skew"
        );
        assert_eq!(
            matching_step(&secret, "u", "287082", 59 + 90),
            None,
            "too late"
        );
        assert_eq!(matching_step(&secret, "u", "287083", 59), None);
        assert_eq!(matching_step(&secret, "u", "28708", 59), None);
    }

    #[test]
    fn enrolment_renders_a_qr_code_of_the_uri() {
        let e = enrolment(&new_secret(), "kim").unwrap();
        assert!(e
            .otpauth_uri
            .starts_with("otpauth://totp/Dispatch:kim?secret="));
        assert!(e.otpauth_uri.contains(&e.secret_base32));
        assert!(e.qr_svg.contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_told_apart_and_hashed_canonically() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(is_recovery_code(&codes[0]));
        assert!(!is_recovery_code("123456"));
        assert_eq!(
            recovery_code_hash(&codes[0].to_lowercase()),
            recovery_code_hash(&codes[0])
        );
    }
}
