//! The password policy for new passwords: long enough, not the username, and not guessable —
//! judged offline by zxcvbn, whose lists (about 30,000 common and breached passwords, names and
//! words, plus keyboard patterns, sequences, dates and l33t spellings of them) ship inside the
//! program.

use crate::domain::Invalid;

/// Longest password accepted (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 200;

/// Checks a new password for `username`.
///
/// # Errors
/// When shorter than `min_chars` or longer than [`MAX_PASSWORD_CHARS`], when it contains the
/// username, or when zxcvbn rates it below 3 of 4 (guessable within 10^10 tries: common or
/// breached passwords and simple variants of them).
pub fn validate_new_password(
    password: &str,
    username: &str,
    min_chars: usize,
) -> Result<(), Invalid> {
    let n = password.chars().count();
    if n < min_chars || n > MAX_PASSWORD_CHARS {
        return Err(Invalid::field(
            "password",
            format!("must be {min_chars} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let lowered = password.to_lowercase();
    if !username.is_empty() && lowered.contains(&username.to_lowercase()) {
        return Err(Invalid::field("password", "must not contain the username"));
    }
    let estimate = zxcvbn::zxcvbn(password, &[username]);
    if u8::from(estimate.score()) < 3 {
        let why = estimate
            .feedback()
            .and_then(zxcvbn::feedback::Feedback::warning)
            .map_or_else(
                || "it is too easy to guess".to_owned(),
                |w| w.to_string().trim_end_matches('.').to_lowercase(),
            );
        return Err(Invalid::field(
            "password",
            format!("is too weak ({why}); use a longer phrase of unrelated words"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_the_reason() {
        for weak in [
            "1234567890",
            "password12",
            "password1234",
            "qwertyuiop123",
            "111111111111",
            "abcdefghijkl",
        ] {
            let e = validate_new_password(weak, "kim", 10).unwrap_err();
            assert!(e.0.contains("password"), "{weak}: {}", e.0);
        }
        let e = validate_new_password("short", "kim", 12).unwrap_err();
        assert!(e.0.contains("12 to 200"), "{}", e.0);
        let e = validate_new_password("officer.park-the-best", "officer.park", 12).unwrap_err();
        assert!(e.0.contains("username"), "{}", e.0);
    }

    #[test]
    fn a_long_unusual_phrase_is_accepted() {
        validate_new_password("harbour lantern 47 quietly", "kim", 12).unwrap();
        validate_new_password("붉은 자전거가 달린다 1927", "kim", 12).unwrap();
    }
}
