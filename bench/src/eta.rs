//! Drive-time ranking on a synthetic grid city (500,000 nodes for a city, 5,000,000 for a
//! country): arterials every tenth street, one in ten streets one-way. The same queries are
//! timed on the contraction hierarchy and by the bounded Dijkstra, and both rankings must agree.

use std::time::{Duration, Instant};

use dispatch_geo::road::{Direction, EtaSearch, RoadGraph, RoadGraphBuilder};
use dispatch_server::geo::recommend::{rank, Ranked};
use rand::{Rng, SeedableRng};

use crate::stats::Samples;

/// Metres between grid streets.
const SPACING_M: f64 = 100.0;

/// A grid graph of `side × side` nodes south-west-anchored at (`lat0`, `lon0`).
pub fn grid_city(side: usize, (lat0, lon0): (f64, f64)) -> RoadGraph {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (dlat, dlon) = dispatch_geo::degrees_spanned(lat0, SPACING_M);
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

/// Timings of one search method: per fleet size, the query times.
#[derive(Debug)]
pub struct EtaTimings {
    pub search: EtaSearch,
    pub by_fleet: Vec<(usize, Samples)>,
}

/// What the ETA run measured.
#[derive(Debug)]
pub struct EtaResult {
    pub nodes: usize,
    /// Building the graph and contracting it.
    pub prepare: Duration,
    pub memory_bytes: usize,
    pub hierarchy_bytes: usize,
    pub hierarchy_edges: usize,
    /// The process's peak resident memory after preparing, when the platform tells.
    pub peak_rss_bytes: Option<u64>,
    pub timings: Vec<EtaTimings>,
}

/// `VmHWM` (peak resident memory) of this process, in bytes.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Builds the grid city and times `queries` K=5 rankings with each fleet size, on the
/// contraction hierarchy and by bounded Dijkstra.
///
/// # Panics
/// When the two searches rank differently.
pub fn run(side: usize, queries: usize, fleets: &[usize]) -> EtaResult {
    let origin = (60.0, 24.0);
    let started = Instant::now();
    let mut graph = grid_city(side, origin);
    let prepare = started.elapsed();
    let peak_rss_bytes = peak_rss_bytes();
    #[allow(clippy::cast_precision_loss)]
    let extent = dispatch_geo::degrees_spanned(origin.0, side as f64 * SPACING_M);
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let point = |rng: &mut rand::rngs::StdRng| {
        (
            origin.0 + rng.gen_range(0.0..extent.0),
            origin.1 + rng.gen_range(0.0..extent.1),
        )
    };
    let searches = [EtaSearch::Hierarchy, EtaSearch::BoundedDijkstra];
    let mut timings: Vec<EtaTimings> = searches
        .iter()
        .map(|&search| EtaTimings {
            search,
            by_fleet: fleets.iter().map(|&n| (n, Samples::default())).collect(),
        })
        .collect();
    for (fleet, &units) in fleets.iter().enumerate() {
        let points: Vec<(f64, f64)> = (0..units).map(|_| point(&mut rng)).collect();
        let live = crate::live::fill(&points, 3);
        let incidents: Vec<(f64, f64)> = (0..queries).map(|_| point(&mut rng)).collect();
        let mut first: Vec<Vec<Ranked>> = Vec::new();
        for timing in &mut timings {
            graph.set_eta_search(timing.search);
            let samples = &mut timing.by_fleet[fleet].1;
            for (i, &at) in incidents.iter().enumerate() {
                let t = Instant::now();
                let ranked = rank(Some(&graph), &live, at, 5, &["patrol".to_owned()], 0);
                samples.push(t.elapsed());
                assert_eq!(ranked.len(), 5);
                match first.get(i) {
                    None => first.push(ranked),
                    Some(before) => assert_same_ranking(before, &ranked, timing.search),
                }
            }
        }
    }
    EtaResult {
        nodes: graph.node_count(),
        prepare,
        memory_bytes: graph.memory_bytes(),
        hierarchy_bytes: graph.hierarchy_memory_bytes(),
        hierarchy_edges: graph.hierarchy_edge_count(),
        peak_rss_bytes,
        timings,
    }
}

fn assert_same_ranking(a: &[Ranked], b: &[Ranked], search: EtaSearch) {
    let ids = |r: &[Ranked]| r.iter().map(|x| x.unit_id).collect::<Vec<_>>();
    assert_eq!(ids(a), ids(b), "{search:?} ranks differently");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x.eta_s - y.eta_s).abs() < 1e-6,
            "{search:?}: {x:?} vs {y:?}"
        );
    }
}
