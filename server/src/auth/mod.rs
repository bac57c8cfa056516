//! Credentials: operator passwords (argon2), random tokens, and the hashes we store instead;
//! the password policy, the bounded pool password checks run on, and login throttling. The
//! request-side checks (sessions, roles, origins) are in `api::extract` and `api::guard`.

mod login_throttle;
mod password_policy;
mod password_workers;
pub mod qr;
pub mod second_factor;
pub mod session_sweep;

pub use login_throttle::{Attempt, LoginThrottle};
pub use password_policy::{validate_new_password, MAX_PASSWORD_CHARS};
pub use password_workers::{Busy, PasswordWorkers};

/// What guards the login route: per-source throttling and the bounded password workers.
#[derive(Debug, Clone)]
pub struct Logins {
    pub throttle: std::sync::Arc<LoginThrottle>,
    pub workers: PasswordWorkers,
}

impl Logins {
    pub fn new(accounts: &crate::config::Accounts) -> Self {
        Self {
            throttle: std::sync::Arc::new(LoginThrottle::new(accounts.login_attempts_per_minute)),
            workers: PasswordWorkers::new(
                accounts.password_workers,
                accounts.password_checks_per_second,
            ),
        }
    }
}

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// `n` random bytes from the OS generator, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// SHA-256 of `s`, hex-encoded. Tokens and codes are high-entropy, so a plain hash suffices.
pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// # Errors
/// When hashing fails (it does not with valid parameters).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified against when the user does not exist so that both
/// cases cost the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_hex(16)).unwrap_or_default())
}

/// A one-time password an admin hands over after a reset, like `K7QX-4MZD-P2WA-9HTR` (about
/// 79 bits); it must be changed at the next login.
pub fn new_temporary_password() -> String {
    format!("{}-{}", new_enrolment_code(), &new_enrolment_code()[..4])
}

/// Letters for enrolment codes: no 0/O, 1/I/L, easy to read aloud and type on a tablet.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A new enrolment code like `K7QX-4MZD-P2WA` (about 59 bits).
pub fn new_enrolment_code() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Canonical form of a typed code: upper case, without dashes or spaces.
pub fn normalise_enrolment_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", dummy_hash()));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn codes_normalise() {
        let c = new_enrolment_code();
        assert_eq!(c.len(), 14);
        assert_eq!(
            normalise_enrolment_code(&c.to_lowercase().replace('-', " ")),
            c.replace('-', "")
        );
    }

    #[test]
    fn constant_time() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
