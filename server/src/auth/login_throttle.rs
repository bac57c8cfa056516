//! Per-source throttling of login attempts: each source address has a bucket of
//! `attempts_per_minute` tokens that refills continuously; an attempt with the bucket empty is
//! refused with the seconds until the next token. In memory: a restart forgets it, which at
//! worst grants one more minute of attempts (the account lockout, on disk, still holds).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use crate::domain::Millis;

/// Source addresses remembered at most; past this, buckets that are full again are dropped.
const MAX_SOURCES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Millis,
    /// The source was refused since its last allowed attempt (reported once).
    refusing: bool,
}

/// The outcome of asking for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// Refused; retry after this many seconds. `first` is true for the first refusal of a
    /// run, so it can be audited once rather than per request.
    Refused {
        retry_after_secs: u64,
        first: bool,
    },
}

/// Login attempts per source address.
#[derive(Debug)]
pub struct LoginThrottle {
    per_minute: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl LoginThrottle {
    pub fn new(attempts_per_minute: u32) -> Self {
        Self {
            per_minute: f64::from(attempts_per_minute.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one attempt for `source` at `now`.
    pub fn attempt(&self, source: IpAddr, now: Millis) -> Attempt {
        let per_ms = self.per_minute / 60_000.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&source) {
            let full = self.per_minute;
            buckets.retain(|_, b| b.tokens + (now - b.at) as f64 * per_ms < full);
        }
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: self.per_minute,
            at: now,
            refusing: false,
        });
        let elapsed = (now - bucket.at).max(0) as f64;
        bucket.tokens = (bucket.tokens + elapsed * per_ms).min(self.per_minute);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.refusing = false;
            return Attempt::Allowed;
        }
        let first = !bucket.refusing;
        bucket.refusing = true;
        let wait_ms = (1.0 - bucket.tokens) / per_ms;
        Attempt::Refused {
            retry_after_secs: (wait_ms / 1000.0).ceil().max(1.0) as u64,
            first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_allowance_then_waits_for_refill() {
        let throttle = LoginThrottle::new(6); // one token every 10 s
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..6 {
            assert_eq!(throttle.attempt(a, 0), Attempt::Allowed);
        }
        assert_eq!(
            throttle.attempt(a, 0),
            Attempt::Refused {
                retry_after_secs: 10,
                first: true
            }
        );
        assert_eq!(
            throttle.attempt(a, 4_000),
            Attempt::Refused {
                retry_after_secs: 6,
                first: false
            }
        );
        assert_eq!(
            throttle.attempt(b, 4_000),
            Attempt::Allowed,
            "other sources"
        );
        assert_eq!(throttle.attempt(a, 10_000), Attempt::Allowed);
        assert!(matches!(
            throttle.attempt(a, 10_000),
            Attempt::Refused { first: true, .. }
        ));
    }
}
