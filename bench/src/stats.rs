//! Latency samples and the printed comparison table.

use std::time::Duration;

/// Latency samples of one measurement.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `p`-th percentile (0–100).
    pub fn percentile(&self, p: usize) -> Duration {
        let mut v = self.0.clone();
        v.sort_unstable();
        v.get((v.len().saturating_sub(1)) * p / 100)
            .copied()
            .unwrap_or_default()
    }
}

/// Formats a duration with a unit that keeps three significant figures readable.
pub fn show(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{:.2} µs", d.as_secs_f64() * 1e6)
    } else if ns < 10_000_000 {
        format!("{:.3} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

/// One row of the report.
#[derive(Debug)]
pub struct Row {
    pub what: String,
    pub ours: String,
    pub peer: String,
    pub ratio: String,
    pub target: String,
}

/// Prints rows as a Markdown table.
pub fn print_table(rows: &[Row]) {
    println!("| measurement | ours | peer | peer/ours | target |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            r.what, r.ours, r.peer, r.ratio, r.target
        );
    }
}

/// `peer / ours` of two p99s, e.g. `12.3×`.
pub fn ratio(peer: Duration, ours: Duration) -> String {
    if ours.is_zero() {
        return "n/a".into();
    }
    let r = peer.as_secs_f64() / ours.as_secs_f64();
    if r < 0.1 {
        format!("{r:.3}×")
    } else {
        format!("{r:.1}×")
    }
}
