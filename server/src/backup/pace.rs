//! A backup's pace: at most a set number of bytes a second, so that copying and hashing a large
//! database beside a live server takes the disk and a core in small slices, not all at once
//! (like `pg_basebackup --max-rate`). The copy takes longer; dispatch keeps its share.

use std::time::{Duration, Instant};

/// The pace of a backup when none is configured, in MiB a second: a 3 GB database is copied in
/// under a minute.
pub const DEFAULT_MIB_PER_S: u32 = 64;

/// Bytes done since the start against a rate; `None` for no limit.
#[derive(Debug)]
pub struct Pace {
    bytes_per_s: Option<u64>,
    started: Instant,
    bytes: u64,
}

impl Pace {
    /// A pace of `mib_per_s` MiB a second, starting now; 0 means no limit.
    pub fn new(mib_per_s: u32) -> Self {
        Self {
            bytes_per_s: (mib_per_s > 0).then(|| u64::from(mib_per_s) << 20),
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` more done and sleeps until the work so far is within the rate.
    pub fn advance(&mut self, bytes: u64) {
        self.bytes += bytes;
        let wait = self.ahead_by(self.started.elapsed());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// How far the work done is ahead of the rate when `elapsed` has passed since the start.
    fn ahead_by(&self, elapsed: Duration) -> Duration {
        match self.bytes_per_s {
            Some(rate) => {
                Duration::from_secs_f64(self.bytes as f64 / rate as f64).saturating_sub(elapsed)
            }
            None => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_ahead_of_the_rate_waits_for_the_difference_and_no_limit_never_waits() {
        let mut pace = Pace::new(4);
        pace.bytes = 8 << 20;
        assert_eq!(
            pace.ahead_by(Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        assert_eq!(pace.ahead_by(Duration::from_secs(3)), Duration::ZERO);
        let mut unlimited = Pace::new(0);
        unlimited.bytes = u64::MAX / 2;
        assert_eq!(unlimited.ahead_by(Duration::ZERO), Duration::ZERO);
    }
}
