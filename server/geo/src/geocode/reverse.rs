//! Reverse geocoding: a uniform grid of 100 m cells over addresses and street segments, so a
//! position only looks at the few cells around it.

use std::collections::{HashMap, HashSet};

use super::{Address, Geocoder, ReverseHit, Street};
use crate::{haversine_m, EARTH_RADIUS_M};

/// An address farther than this is not "at" the position.
pub const ADDRESS_RADIUS_M: f64 = 100.0;
/// A street farther than this is not "at" the position either.
pub const STREET_RADIUS_M: f64 = 300.0;
const CELL_M: f64 = 100.0;
/// A street segment whose bounding box spans at most this many cells (any segment up to some
/// 800 m) is filed under the whole box; a longer one is walked, so that a diagonal does not
/// fill a square.
const MAX_BOX_CELLS: i64 = 64;
/// Consecutive nodes of a street this many cells apart (50 km) are broken data (a node at 0,0,
/// a coordinate off the globe): the segment is left out of the reverse index instead of filing
/// it under millions of cells. The fuzzer found a 573-byte PBF that took gigabytes here.
const MAX_SEGMENT_CELLS: i64 = 500;

type Cell = (i32, i32);

/// Cells of a local equirectangular projection, scaled at the data's mean latitude.
#[derive(Debug, Default)]
pub(super) struct Grid {
    lon_scale: f64,
    addresses: HashMap<Cell, Vec<u32>>,
    /// (street, line, index of the segment's first point)
    segments: HashMap<Cell, Vec<(u32, u32, u32)>>,
}

impl Grid {
    pub(super) fn build(addresses: &[Address], streets: &[Street]) -> Self {
        let lats = addresses.iter().map(|a| a.lat).chain(
            streets
                .iter()
                .flat_map(|s| s.lines.iter().flatten().map(|p| p.0)),
        );
        let (sum, n) = lats.fold((0.0, 0.0), |(s, n), lat| (s + lat, n + 1.0));
        let mean_lat: f64 = if n > 0.0 { sum / n } else { 0.0 };
        let mut grid = Self {
            lon_scale: mean_lat.to_radians().cos().max(0.01),
            ..Self::default()
        };
        for (i, a) in addresses.iter().enumerate() {
            let cell = grid.cell(a.lat, a.lon);
            grid.addresses.entry(cell).or_default().push(i as u32);
        }
        for (s, street) in streets.iter().enumerate() {
            for (l, line) in street.lines.iter().enumerate() {
                for (p, pair) in line.windows(2).enumerate() {
                    let entry = (s as u32, l as u32, p as u32);
                    for cell in grid.segment_cells(pair[0], pair[1]) {
                        grid.segments.entry(cell).or_default().push(entry);
                    }
                }
            }
        }
        grid
    }

    /// The cells a segment between two `(lat, lon)` points is filed under: every cell it
    /// touches (and some around them); none when it is broken data.
    fn segment_cells(&self, a: (f64, f64), b: (f64, f64)) -> Vec<Cell> {
        let on_globe =
            |p: (f64, f64)| (-90.0..=90.0).contains(&p.0) && (-180.0..=180.0).contains(&p.1);
        if !on_globe(a) || !on_globe(b) {
            return Vec::new();
        }
        let (ca, cb) = (self.cell(a.0, a.1), self.cell(b.0, b.1));
        let width = (i64::from(ca.0) - i64::from(cb.0)).abs() + 1;
        let height = (i64::from(ca.1) - i64::from(cb.1)).abs() + 1;
        if width * height <= MAX_BOX_CELLS {
            let ys = ca.1.min(cb.1)..=ca.1.max(cb.1);
            return (ca.0.min(cb.0)..=ca.0.max(cb.0))
                .flat_map(|x| ys.clone().map(move |y| (x, y)))
                .collect();
        }
        if width.max(height) > MAX_SEGMENT_CELLS {
            return Vec::new();
        }
        // A point every half cell along the segment, with its eight neighbours: every cell the
        // segment crosses is next to one of those points.
        let steps = width.max(height) * 2;
        let mut cells = HashSet::new();
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let (x, y) = self.cell(a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            for dx in -1..=1 {
                for dy in -1..=1 {
                    cells.insert((x.saturating_add(dx), y.saturating_add(dy)));
                }
            }
        }
        cells.into_iter().collect()
    }

    fn cell(&self, lat: f64, lon: f64) -> Cell {
        let metres_per_degree = EARTH_RADIUS_M.to_radians();
        let x = lon * metres_per_degree * self.lon_scale / CELL_M;
        let y = lat * metres_per_degree / CELL_M;
        (x.floor() as i32, y.floor() as i32)
    }

    /// Cells that may hold something within `radius_m` of the position.
    fn around(&self, lat: f64, lon: f64, radius_m: f64) -> impl Iterator<Item = Cell> {
        let (cx, cy) = self.cell(lat, lon);
        // Away from the mean latitude a cell spans fewer or more metres east-west.
        let stretch = (self.lon_scale / lat.to_radians().cos().max(0.01)).max(1.0);
        let ry = (radius_m / CELL_M).ceil() as i32;
        let rx = (radius_m * stretch / CELL_M).ceil() as i32;
        (cx - rx..=cx + rx).flat_map(move |x| (cy - ry..=cy + ry).map(move |y| (x, y)))
    }
}

impl Geocoder {
    /// The nearest address within 100 m of the position, else the nearest point of a street
    /// within 300 m; `None` when neither is that close.
    pub fn reverse(&self, lat: f64, lon: f64) -> Option<ReverseHit> {
        self.nearest_address(lat, lon)
            .or_else(|| self.nearest_street(lat, lon))
    }

    fn nearest_address(&self, lat: f64, lon: f64) -> Option<ReverseHit> {
        let (index, distance_m) = self
            .grid
            .around(lat, lon, ADDRESS_RADIUS_M)
            .filter_map(|cell| self.grid.addresses.get(&cell))
            .flatten()
            .map(|i| {
                let a = &self.addresses[*i as usize];
                (*i as usize, haversine_m(lat, lon, a.lat, a.lon))
            })
            .filter(|(_, d)| *d <= ADDRESS_RADIUS_M)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))?;
        let hit = self.address_hit(index, 1.0 - distance_m / ADDRESS_RADIUS_M);
        Some(ReverseHit { hit, distance_m })
    }

    fn nearest_street(&self, lat: f64, lon: f64) -> Option<ReverseHit> {
        let mut best: Option<(usize, (f64, f64), f64)> = None;
        for cell in self.grid.around(lat, lon, STREET_RADIUS_M) {
            for (s, l, p) in self.grid.segments.get(&cell).into_iter().flatten() {
                let line = &self.streets[*s as usize].lines[*l as usize];
                let (a, b) = (line[*p as usize], line[*p as usize + 1]);
                let (point, d) = closest_on_segment((lat, lon), a, b);
                if d <= STREET_RADIUS_M && best.is_none_or(|(_, _, bd)| d < bd) {
                    best = Some((*s as usize, point, d));
                }
            }
        }
        let (street, point, distance_m) = best?;
        let hit = self.street_hit(street, point, 1.0 - distance_m / STREET_RADIUS_M);
        Some(ReverseHit { hit, distance_m })
    }
}

/// The point of segment a–b nearest to `q` and its distance in metres, in a flat projection
/// centred on `q` (exact enough over a few hundred metres).
fn closest_on_segment(q: (f64, f64), a: (f64, f64), b: (f64, f64)) -> ((f64, f64), f64) {
    let k = EARTH_RADIUS_M.to_radians();
    let cos = q.0.to_radians().cos();
    let flat = |p: (f64, f64)| ((p.1 - q.1) * k * cos, (p.0 - q.0) * k);
    let (ax, ay) = flat(a);
    let (bx, by) = flat(b);
    let (dx, dy) = (bx - ax, by - ay);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (-(ax * dx + ay * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (x, y) = (ax + t * dx, ay + t * dy);
    let point = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
    (point, (x * x + y * y).sqrt())
}
