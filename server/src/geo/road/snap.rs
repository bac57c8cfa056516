//! Snapping: a uniform grid over road segments finds the segment nearest to a point.

use std::collections::HashMap;

use super::graph::{RoadGraph, Segment};
use super::search::Snapped;

/// Side of a grid cell in metres.
const CELL_M: f64 = 100.0;

/// Segment indices by grid cell; a segment is listed in every cell its bounding box touches.
#[derive(Debug, Default)]
pub(crate) struct SegmentGrid {
    cells: HashMap<(i32, i32), Vec<u32>>,
}

#[allow(clippy::cast_possible_truncation)]
fn cell(v: f64) -> i32 {
    (v / CELL_M).floor() as i32
}

impl SegmentGrid {
    pub fn build(xy: &[(f64, f64)], segments: &[Segment]) -> Self {
        let mut cells: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
        for (i, s) in segments.iter().enumerate() {
            let (pa, pb) = (xy[s.a as usize], xy[s.b as usize]);
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for cx in cell(pa.0.min(pb.0))..=cell(pa.0.max(pb.0)) {
                for cy in cell(pa.1.min(pb.1))..=cell(pa.1.max(pb.1)) {
                    cells.entry((cx, cy)).or_default().push(i);
                }
            }
        }
        Self { cells }
    }

    pub fn memory_bytes(&self) -> usize {
        self.cells.values().map(|v| v.len() * 4 + 32).sum()
    }
}

impl RoadGraph {
    /// The point on the nearest road segment within `max_m` metres of (`lat`, `lon`).
    pub fn snap(&self, lat: f64, lon: f64, max_m: f64) -> Option<Snapped> {
        let (px, py) = self.project(lat, lon);
        let mut best: Option<Snapped> = None;
        for cx in cell(px - max_m)..=cell(px + max_m) {
            for cy in cell(py - max_m)..=cell(py + max_m) {
                let Some(list) = self.grid.cells.get(&(cx, cy)) else {
                    continue;
                };
                for &i in list {
                    let s = &self.segments[i as usize];
                    let (a, b) = (self.xy[s.a as usize], self.xy[s.b as usize]);
                    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
                    let len2 = dx * dx + dy * dy;
                    let t = if len2 > 0.0 {
                        (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    let d = (a.0 + t * dx - px).hypot(a.1 + t * dy - py);
                    if d <= max_m && best.is_none_or(|b| (d, i) < (b.distance_m, b.segment)) {
                        best = Some(Snapped {
                            segment: i,
                            t,
                            distance_m: d,
                        });
                    }
                }
            }
        }
        best
    }
}
