//! Graph storage: node positions, forward and reverse adjacency in compressed rows, and the
//! undirected segment list that snapping works on.

use std::sync::atomic::{AtomicU64, Ordering};

use super::contract::{contract, Hierarchy};
use super::search::EtaSearch;
use super::snap::SegmentGrid;
use crate::EARTH_RADIUS_M;

/// Which ways a segment from `a` to `b` may be driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Both,
    /// Only from `a` to `b`.
    Forward,
    /// Only from `b` to `a`.
    Backward,
}

impl Direction {
    pub fn forward(self) -> bool {
        matches!(self, Self::Both | Self::Forward)
    }

    pub fn backward(self) -> bool {
        matches!(self, Self::Both | Self::Backward)
    }
}

/// One stretch of road between two consecutive nodes.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub a: u32,
    pub b: u32,
    /// Travel time a→b in milliseconds, when allowed.
    pub forward_ms: Option<f64>,
    /// Travel time b→a in milliseconds, when allowed.
    pub backward_ms: Option<f64>,
}

/// Adjacency in compressed rows: the edges of node `v` are `first[v]..first[v + 1]`.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub first: Vec<u32>,
    pub head: Vec<u32>,
    pub cost_ms: Vec<f64>,
}

impl Rows {
    /// Rows from `(tail, head, cost)` edges, taken so that they are freed once copied.
    pub fn build(n: usize, mut edges: Vec<(u32, u32, f64)>) -> Self {
        edges.sort_unstable_by_key(|e| (e.0, e.1));
        let mut first = vec![0u32; n + 1];
        for e in edges.iter() {
            first[e.0 as usize + 1] += 1;
        }
        for i in 0..n {
            first[i + 1] += first[i];
        }
        let head = edges.iter().map(|e| e.1).collect();
        let cost_ms = edges.iter().map(|e| e.2).collect();
        Self {
            first,
            head,
            cost_ms,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.first.len() * 4 + self.head.len() * 4 + self.cost_ms.len() * 8
    }

    pub fn edges(&self, v: u32) -> impl Iterator<Item = (u32, f64)> + '_ {
        let range = self.first[v as usize] as usize..self.first[v as usize + 1] as usize;
        range.map(move |i| (self.head[i], self.cost_ms[i]))
    }
}

/// The id of the next graph built.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A drivable road network, immutable once built.
#[derive(Debug)]
pub struct RoadGraph {
    /// Unique within the process, so that per-thread search state can tell graphs apart.
    pub(crate) id: u64,
    pub(crate) lat: Vec<f64>,
    pub(crate) lon: Vec<f64>,
    /// Local planar metres, for snapping.
    pub(crate) xy: Vec<(f64, f64)>,
    pub(crate) forward: Rows,
    pub(crate) reverse: Rows,
    pub(crate) segments: Vec<Segment>,
    pub(crate) grid: SegmentGrid,
    pub(crate) ref_lat_cos: f64,
    max_speed_mps: f64,
    pub(crate) hierarchy: Hierarchy,
    pub(crate) eta_search: EtaSearch,
}

impl RoadGraph {
    pub fn node_count(&self) -> usize {
        self.lat.len()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The highest speed on any road, for lower bounds on drive time.
    pub fn max_speed_mps(&self) -> f64 {
        self.max_speed_mps
    }

    /// A position in the graph's local planar metres (equirectangular at the graph's mean
    /// latitude), the plane snapping and travel times are computed on.
    pub fn project(&self, lat: f64, lon: f64) -> (f64, f64) {
        project(lat, lon, self.ref_lat_cos)
    }

    /// The road segments, each once whatever its directions.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Position of a node.
    pub fn node_position(&self, v: u32) -> (f64, f64) {
        (self.lat[v as usize], self.lon[v as usize])
    }

    /// Approximate heap size of the graph in bytes, without the contraction hierarchy.
    pub fn memory_bytes(&self) -> usize {
        self.lat.len() * (8 + 8 + 16)
            + self.forward.memory_bytes()
            + self.reverse.memory_bytes()
            + self.segments.len() * std::mem::size_of::<Segment>()
            + self.grid.memory_bytes()
    }

    /// Approximate heap size of the contraction hierarchy in bytes.
    pub fn hierarchy_memory_bytes(&self) -> usize {
        self.hierarchy.memory_bytes()
    }

    /// Edges of the contraction hierarchy, shortcuts included.
    pub fn hierarchy_edge_count(&self) -> usize {
        self.hierarchy.edge_count()
    }

    /// Chooses how [`RoadGraph::drive_times_to`] searches (both are exact).
    pub fn set_eta_search(&mut self, search: EtaSearch) {
        self.eta_search = search;
    }
}

pub(crate) fn project(lat: f64, lon: f64, ref_lat_cos: f64) -> (f64, f64) {
    (
        EARTH_RADIUS_M * lon.to_radians() * ref_lat_cos,
        EARTH_RADIUS_M * lat.to_radians(),
    )
}

/// A segment as added to the builder: end nodes, speed (m/s) and direction.
pub(crate) type RawSegment = (u32, u32, f64, Direction);

/// Collects nodes and segments, then builds the immutable [`RoadGraph`].
#[derive(Debug, Default)]
pub struct RoadGraphBuilder {
    lat: Vec<f64>,
    lon: Vec<f64>,
    segments: Vec<RawSegment>,
}

impl RoadGraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node and returns its index.
    ///
    /// # Panics
    /// When more than `u32::MAX` nodes are added.
    pub fn add_node(&mut self, lat: f64, lon: f64) -> u32 {
        self.lat.push(lat);
        self.lon.push(lon);
        u32::try_from(self.lat.len() - 1).expect("fewer than 2^32 nodes")
    }

    /// Adds a road segment between two existing nodes at `speed_mps`.
    pub fn add_segment(&mut self, a: u32, b: u32, speed_mps: f64, direction: Direction) {
        if a != b && speed_mps > 0.0 {
            self.segments.push((a, b, speed_mps, direction));
        }
    }

    /// Node positions and segments as added, for the on-disk cache.
    pub(super) fn parts(&self) -> (Vec<(f64, f64)>, &[RawSegment]) {
        (
            self.lat
                .iter()
                .copied()
                .zip(self.lon.iter().copied())
                .collect(),
            &self.segments,
        )
    }

    /// Builds the graph and its contraction hierarchy.
    pub fn build(self) -> RoadGraph {
        self.build_with(None)
    }

    /// Builds the graph with `hierarchy` when it was computed before (the cache), else
    /// contracts it now. The caller vouches that a given hierarchy belongs to these segments.
    pub(super) fn build_with(self, hierarchy: Option<Hierarchy>) -> RoadGraph {
        let n = self.lat.len();
        #[allow(clippy::cast_precision_loss)]
        let mean_lat = if n == 0 {
            0.0
        } else {
            self.lat.iter().sum::<f64>() / n as f64
        };
        let ref_lat_cos = mean_lat.to_radians().cos();
        let xy: Vec<(f64, f64)> = (0..n)
            .map(|i| project(self.lat[i], self.lon[i], ref_lat_cos))
            .collect();
        let mut forward = Vec::new();
        let mut reverse = Vec::new();
        let mut segments = Vec::with_capacity(self.segments.len());
        let mut max_speed_mps: f64 = 0.0;
        for (a, b, speed, dir) in self.segments {
            let (pa, pb) = (xy[a as usize], xy[b as usize]);
            let ms = (pa.0 - pb.0).hypot(pa.1 - pb.1) / speed * 1000.0;
            max_speed_mps = max_speed_mps.max(speed);
            if dir.forward() {
                forward.push((a, b, ms));
                reverse.push((b, a, ms));
            }
            if dir.backward() {
                forward.push((b, a, ms));
                reverse.push((a, b, ms));
            }
            segments.push(Segment {
                a,
                b,
                forward_ms: dir.forward().then_some(ms),
                backward_ms: dir.backward().then_some(ms),
            });
        }
        let grid = SegmentGrid::build(&xy, &segments);
        let forward = Rows::build(n, forward);
        let reverse = Rows::build(n, reverse);
        let hierarchy = hierarchy.unwrap_or_else(|| contract(&forward));
        RoadGraph {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            lat: self.lat,
            lon: self.lon,
            xy,
            forward,
            reverse,
            segments,
            grid,
            ref_lat_cos,
            max_speed_mps,
            hierarchy,
            // A city's fleet is hundreds to a few thousand units, where the hierarchy is the
            // faster search (1,000 units on the benchmark grid: p99 1.8 against 2.5 ms for the
            // bounded Dijkstra); only among 100,000 units is the Dijkstra ahead (1.2 against
            // 1.7 ms). bench/RESULTS.md. Both are exact.
            eta_search: EtaSearch::Hierarchy,
        }
    }
}
