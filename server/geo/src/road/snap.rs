//! Snapping: a uniform grid over road segments finds the segment nearest to a point.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::graph::{RoadGraph, Segment};
use super::search::Snapped;

/// Side of a grid cell in metres.
const CELL_M: f64 = 100.0;

/// A segment whose bounding box spans at most this many cells is listed in the whole box; a
/// longer one is walked, so that a diagonal does not fill a square.
const MAX_BOX_CELLS: i64 = 64;
/// A segment this many cells long (50 km between two nodes) is broken data, such as a node at
/// 0,0 or off the globe: it is not listed (nothing snaps to it; routes still use it) rather
/// than listed in millions of cells. The fuzzer found a 573-byte PBF that hung here.
const MAX_SEGMENT_CELLS: i64 = 500;

/// Segment indices by grid cell; a segment is listed in every cell it crosses (the whole
/// bounding box of a short one).
#[derive(Debug, Default)]
pub(crate) struct SegmentGrid {
    cells: HashMap<i64, Vec<u32>, BuildHasherDefault<CellHasher>>,
}

/// Hashes a cell key with one multiplication: every candidate unit of a ranking is snapped,
/// and the default hasher made the cell look-ups the largest cost of a query.
#[derive(Debug, Default)]
struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        // The product's high bits depend on every bit of the key; the table indexes by the low.
        self.0.rotate_left(26)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The map key of cell (`cx`, `cy`).
fn key(cx: i32, cy: i32) -> i64 {
    (i64::from(cx) << 32) | (i64::from(cy) & 0xFFFF_FFFF)
}

#[allow(clippy::cast_possible_truncation)]
fn cell(v: f64) -> i32 {
    (v / CELL_M).floor() as i32
}

/// The cells a segment between two projected points is listed in: every cell it crosses (and
/// some around them); none when it is broken data.
fn segment_cells(a: (f64, f64), b: (f64, f64)) -> Vec<(i32, i32)> {
    let (ax, ay, bx, by) = (cell(a.0), cell(a.1), cell(b.0), cell(b.1));
    let width = (i64::from(ax) - i64::from(bx)).abs() + 1;
    let height = (i64::from(ay) - i64::from(by)).abs() + 1;
    if width * height <= MAX_BOX_CELLS {
        let ys = ay.min(by)..=ay.max(by);
        return (ax.min(bx)..=ax.max(bx))
            .flat_map(|x| ys.clone().map(move |y| (x, y)))
            .collect();
    }
    if width.max(height) > MAX_SEGMENT_CELLS {
        return Vec::new();
    }
    // A point every half cell along the segment, with its eight neighbours: every cell the
    // segment crosses is next to one of those points.
    let steps = width.max(height) * 2;
    let mut cells = std::collections::HashSet::new();
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let (x, y) = (cell(a.0 + (b.0 - a.0) * t), cell(a.1 + (b.1 - a.1) * t));
        for dx in -1..=1 {
            for dy in -1..=1 {
                cells.insert((x.saturating_add(dx), y.saturating_add(dy)));
            }
        }
    }
    cells.into_iter().collect()
}

impl SegmentGrid {
    pub fn build(xy: &[(f64, f64)], segments: &[Segment]) -> Self {
        let mut cells: HashMap<i64, Vec<u32>, BuildHasherDefault<CellHasher>> = HashMap::default();
        for (i, s) in segments.iter().enumerate() {
            let (pa, pb) = (xy[s.a as usize], xy[s.b as usize]);
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for (cx, cy) in segment_cells(pa, pb) {
                cells.entry(key(cx, cy)).or_default().push(i);
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
        let max2 = max_m * max_m;
        // Cells nearest the point first; once a cell is farther than the best segment found,
        // so are the rest. A segment is listed in the cell of its point nearest to ours.
        let mut cells: Vec<(f64, &[u32])> = Vec::with_capacity(16);
        for cx in cell(px - max_m)..=cell(px + max_m) {
            for cy in cell(py - max_m)..=cell(py + max_m) {
                if let Some(list) = self.grid.cells.get(&key(cx, cy)) {
                    let (x0, y0) = (f64::from(cx) * CELL_M, f64::from(cy) * CELL_M);
                    let ex = (x0 - px).max(px - x0 - CELL_M).max(0.0);
                    let ey = (y0 - py).max(py - y0 - CELL_M).max(0.0);
                    cells.push((ex * ex + ey * ey, list));
                }
            }
        }
        cells.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut best: Option<(f64, Snapped)> = None;
        for (cell_d2, list) in cells {
            if cell_d2 > best.map_or(max2, |(b2, _)| b2) {
                break;
            }
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
                let (ex, ey) = (a.0 + t * dx - px, a.1 + t * dy - py);
                let d2 = ex * ex + ey * ey;
                if d2 <= max2 && best.is_none_or(|(b2, b)| (d2, i) < (b2, b.segment)) {
                    best = Some((
                        d2,
                        Snapped {
                            segment: i,
                            t,
                            distance_m: ex.hypot(ey),
                        },
                    ));
                }
            }
        }
        best.map(|(_, s)| s)
    }

    /// Local planar position of a snapped point, metres.
    pub(super) fn snapped_xy(&self, s: &Snapped) -> (f64, f64) {
        let seg = &self.segments[s.segment as usize];
        let (a, b) = (self.xy[seg.a as usize], self.xy[seg.b as usize]);
        (a.0 + s.t * (b.0 - a.0), a.1 + s.t * (b.1 - a.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_segments_are_walked_and_broken_ones_left_out() {
        // 300 m: the whole 4 × 4 box.
        assert_eq!(segment_cells((0.0, 0.0), (300.0, 300.0)).len(), 16);
        // 20 km diagonally: the cells along the diagonal and their neighbours, not 40,000.
        let cells = segment_cells((50.0, 50.0), (14_000.0, 14_000.0));
        assert!(cells.len() < 2_000, "{}", cells.len());
        for i in 0..140 {
            assert!(cells.contains(&(i, i)), "({i}, {i}) missing");
        }
        // A node at the far side of the world, or at i32's end: nothing.
        assert!(segment_cells((0.0, 0.0), (6.0e6, 1.0e6)).is_empty());
        assert!(segment_cells((f64::MAX, 0.0), (0.0, 0.0)).is_empty());
        let edge = f64::from(i32::MAX) * CELL_M;
        assert!(!segment_cells((edge, 0.0), (edge - 10_000.0, 0.0)).is_empty());
    }
}
