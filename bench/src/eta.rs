//! Drive-time ranking on a synthetic 500,000-node grid city: arterials every tenth street,
//! one in ten streets one-way.

use std::time::{Duration, Instant};

use dispatch_server::geo::recommend::rank;
use dispatch_server::geo::road::{Direction, RoadGraph, RoadGraphBuilder};
use rand::{Rng, SeedableRng};

use crate::stats::Samples;

/// Metres between grid streets.
const SPACING_M: f64 = 100.0;

/// A grid graph of `side × side` nodes south-west-anchored at (`lat0`, `lon0`).
pub fn grid_city(side: usize, (lat0, lon0): (f64, f64)) -> RoadGraph {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let dlat = SPACING_M / 111_320.0;
    let dlon = SPACING_M / (111_320.0 * lat0.to_radians().cos());
    let mut g = RoadGraphBuilder::new();
    #[allow(clippy::cast_precision_loss)]
    let ids: Vec<u32> = (0..side * side)
        .map(|k| {
            g.add_node(
                lat0 + (k / side) as f64 * dlat,
                lon0 + (k % side) as f64 * dlon,
            )
        })
        .collect();
    let street = |rng: &mut rand::rngs::StdRng, arterial: bool| {
        let speed = if arterial { 60.0 / 3.6 } else { 30.0 / 3.6 };
        let direction = match rng.gen_range(0..20) {
            0 => Direction::Forward,
            1 => Direction::Backward,
            _ => Direction::Both,
        };
        (speed, if arterial { Direction::Both } else { direction })
    };
    for row in 0..side {
        for col in 0..side {
            let here = ids[row * side + col];
            if col + 1 < side {
                let (speed, dir) = street(&mut rng, row % 10 == 0);
                g.add_segment(here, ids[row * side + col + 1], speed, dir);
            }
            if row + 1 < side {
                let (speed, dir) = street(&mut rng, col % 10 == 0);
                g.add_segment(here, ids[(row + 1) * side + col], speed, dir);
            }
        }
    }
    g.build()
}

/// What the ETA run measured.
#[derive(Debug)]
pub struct EtaResult {
    pub nodes: usize,
    pub prepare: Duration,
    pub memory_bytes: usize,
    pub dense: Samples,
    pub sparse: Samples,
}

/// Builds the grid city and times K=5 ranking with 100,000 and with 1,000 units.
pub fn run(side: usize, queries: usize) -> EtaResult {
    let origin = (60.0, 24.0);
    let started = Instant::now();
    let graph = grid_city(side, origin);
    let prepare = started.elapsed();
    #[allow(clippy::cast_precision_loss)]
    let extent = (
        side as f64 * SPACING_M / 111_320.0,
        side as f64 * SPACING_M / (111_320.0 * origin.0.to_radians().cos()),
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let point = |rng: &mut rand::rngs::StdRng| {
        (
            origin.0 + rng.gen_range(0.0..extent.0),
            origin.1 + rng.gen_range(0.0..extent.1),
        )
    };
    let time = |units: usize, rng: &mut rand::rngs::StdRng| {
        let points: Vec<(f64, f64)> = (0..units).map(|_| point(rng)).collect();
        let live = crate::live::fill(&points, 3);
        let mut samples = Samples::default();
        for _ in 0..queries {
            let at = point(rng);
            let t = Instant::now();
            let ranked = rank(Some(&graph), &live, at, 5, &["patrol".to_owned()], 0);
            samples.push(t.elapsed());
            assert_eq!(ranked.len(), 5);
        }
        samples
    };
    let dense = time(100_000, &mut rng);
    let sparse = time(1_000, &mut rng);
    EtaResult {
        nodes: graph.node_count(),
        prepare,
        memory_bytes: graph.memory_bytes(),
        dense,
        sparse,
    }
}
