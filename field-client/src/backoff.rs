//! Reconnect delays: exponential backoff with full jitter.
//!
//! Full jitter spreads a fleet's reconnects after a server restart instead of synchronising them.

use std::time::Duration;

use rand::Rng;

/// Delay policy; `attempt` counts failures since the last connection that reached `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// The protocol's reference values: base 0.5 s, cap 30 s.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Upper bound of the delay before retry number `attempt`: `min(cap, base · 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.checked_pow(attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A delay drawn uniformly from `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        Duration::from_secs_f64(rng.gen_range(0.0..=ceiling.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(5), Duration::from_secs(16));
        assert_eq!(b.ceiling(6), Duration::from_secs(30));
        assert_eq!(b.ceiling(200), Duration::from_secs(30));
    }

    #[test]
    fn delays_stay_within_full_jitter_bounds() {
        let b = Backoff::default();
        let mut rng = rand::thread_rng();
        for attempt in 0..40 {
            let bound = b.ceiling(attempt).min(b.cap);
            for _ in 0..200 {
                let d = b.delay(attempt, &mut rng);
                assert!(d <= bound, "attempt {attempt}: {d:?} > {bound:?}");
            }
        }
        // Jitter really spreads: not every draw is the ceiling.
        let draws: Vec<Duration> = (0..50).map(|_| b.delay(10, &mut rng)).collect();
        assert!(draws.iter().any(|d| *d < b.cap));
    }
}
