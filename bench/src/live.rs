//! In-process K-nearest on the live index while a second thread ingests position updates.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dispatch_server::domain::{Position, Unit, UnitStatus};
use dispatch_server::geo::LiveUnits;
use dispatch_server::store::PositionChange;
use rand::{Rng, SeedableRng};

use crate::stats::Samples;

/// What the ingest-while-querying run measured.
#[derive(Debug)]
pub struct LiveResult {
    pub queries: Samples,
    pub updates_per_s: f64,
    /// Most updates the paced writer was ever behind its schedule (0 when unpaced).
    pub max_backlog: u64,
}

/// A unit at `p`; 70 % available, capabilities drawn from two codes.
pub fn unit(id: i64, p: (f64, f64), rng: &mut impl Rng) -> Unit {
    let mut capabilities = vec!["patrol".to_owned()];
    if rng.gen_bool(0.3) {
        capabilities.push("k9".to_owned());
    }
    Unit {
        id,
        call_sign: format!("B-{id}"),
        kind: "patrol_car".into(),
        capabilities,
        home_station: None,
        status: if rng.gen_bool(0.7) {
            UnitStatus::Available
        } else {
            UnitStatus::Assigned
        },
        device_id: None,
        position: Some(Position {
            lat: p.0,
            lon: p.1,
            accuracy_m: Some(5.0),
            fix_time_ms: 0,
            received_ms: 1,
        }),
        link_lost_at_ms: None,
        disabled_at_ms: None,
    }
}

/// Fills an index with `points` as units.
pub fn fill(points: &[(f64, f64)], seed: u64) -> LiveUnits {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let live = LiveUnits::default();
    for (i, p) in points.iter().enumerate() {
        live.load(&unit(i64::try_from(i).unwrap_or(0), *p, &mut rng));
    }
    live
}

/// Moves random units to a point near their start: one position update.
fn move_one(live: &LiveUnits, points: &[(f64, f64)], rng: &mut impl Rng) {
    let i = rng.gen_range(0..points.len());
    let (lat, lon) = points[i];
    live.moved(&PositionChange {
        unit_id: i64::try_from(i).unwrap_or(0),
        lat: lat + rng.gen_range(-1e-4..1e-4),
        lon: lon + rng.gen_range(-1e-4..1e-4),
        accuracy_m: Some(5.0),
        received_ms: 2,
    });
}

/// Queries K=5 nearest available `patrol` units at `queries` for `duration` while another
/// thread moves units, `rate` updates per second when given, else as fast as it can.
fn queries_while_moving(
    live: &LiveUnits,
    points: &[(f64, f64)],
    queries: &[(f64, f64)],
    rate: Option<u64>,
    duration: Duration,
    pinned: bool,
) -> LiveResult {
    let all_cpus = rustix::thread::sched_getaffinity(None).ok();
    if pinned {
        pin_to_cpu(0);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let behind = Arc::new(AtomicU64::new(0));
    let writer = {
        let (live, stop, behind) = (live.clone(), stop.clone(), behind.clone());
        let points = points.to_vec();
        std::thread::spawn(move || {
            if pinned {
                pin_to_cpu(1);
            }
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let started = Instant::now();
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Some(rate) = rate else {
                    for _ in 0..1000 {
                        move_one(&live, &points, &mut rng);
                    }
                    sent += 1000;
                    continue;
                };
                // Pace to `rate`: catch up in batches, then sleep.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                behind.fetch_max(due.saturating_sub(sent), Ordering::Relaxed);
                while sent < due {
                    move_one(&live, &points, &mut rng);
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            (sent, started.elapsed())
        })
    };
    let required = vec!["patrol".to_owned()];
    let mut samples = Samples::default();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < duration {
        let (lat, lon) = queries[i % queries.len()];
        let t = Instant::now();
        let found = live.nearest(lat, lon, 5, &required, 0).unwrap_or_default();
        samples.push(t.elapsed());
        assert_eq!(found.len(), 5);
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(all) = all_cpus {
        // This thread goes back to the runtime's blocking pool.
        let _ = rustix::thread::sched_setaffinity(None, &all);
    }
    let (sent, elapsed) = writer.join().unwrap_or_default();
    #[allow(clippy::cast_precision_loss)]
    let updates_per_s = sent as f64 / elapsed.as_secs_f64().max(1e-9);
    LiveResult {
        queries: samples,
        updates_per_s,
        max_backlog: behind.load(Ordering::Relaxed),
    }
}

/// Keeps the calling thread on one CPU (best effort: a machine with one CPU stays as it is).
fn pin_to_cpu(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

/// The runs of [`query_while_ingesting`].
#[derive(Debug)]
pub struct LiveRuns {
    /// Updates paced at the asked rate: the measurement.
    pub paced: LiveResult,
    /// The same with the query thread on CPU 0 and the writer on CPU 1, so that the writer
    /// waking up cannot take the query thread's CPU.
    pub pinned: LiveResult,
    /// The same pacing thread waking as often but moving nothing: what the machine alone adds.
    pub idle_writer: LiveResult,
    /// Updates as fast as one thread can: the ingest capacity while querying.
    pub unpaced: LiveResult,
}

/// Queries K=5 nearest available `patrol` units at `queries` while another thread moves units
/// at `rate` updates per second, for `duration`; then for a few seconds each the same with the
/// two threads pinned to separate CPUs, with the writer moving nothing, and with it unpaced.
pub fn query_while_ingesting(
    live: &LiveUnits,
    points: &[(f64, f64)],
    queries: &[(f64, f64)],
    rate: u64,
    duration: Duration,
) -> LiveRuns {
    let short = duration.min(Duration::from_secs(3));
    LiveRuns {
        paced: queries_while_moving(live, points, queries, Some(rate), duration, false),
        pinned: queries_while_moving(live, points, queries, Some(rate), short, true),
        idle_writer: queries_while_moving(live, points, queries, Some(0), short, false),
        unpaced: queries_while_moving(live, points, queries, None, short, false),
    }
}
