//! Live unit index: a uniform grid in local metres whose cells hold their units' entries
//! contiguously (a scan touches few cache lines), answering
//! "K nearest units that pass a filter" by ring search, exact against brute force.

use std::collections::HashMap;

use super::EARTH_RADIUS_M;

/// Side of a grid cell in metres: a few cells cover a city district.
const CELL_M: f64 = 250.0;

/// What the index knows about one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitSnapshot {
    pub unit_id: i64,
    pub lat: f64,
    pub lon: f64,
    pub available: bool,
    /// Bit set of capabilities, see [`LiveIndex::capability_mask`].
    pub capabilities: u64,
    /// Server time the fix arrived, ms.
    pub fix_received_ms: i64,
}

/// Which units a query may return.
#[derive(Debug, Clone, Copy)]
pub struct UnitFilter {
    pub required_capabilities: u64,
    /// Fixes that arrived before this time (ms) are stale and excluded.
    pub fresh_after_ms: i64,
}

impl UnitFilter {
    fn accepts(&self, u: &UnitSnapshot) -> bool {
        u.available
            && u.capabilities & self.required_capabilities == self.required_capabilities
            && u.fix_received_ms >= self.fresh_after_ms
    }
}

/// One answer of a nearest query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub unit_id: i64,
    /// Straight-line distance in metres (local planar approximation).
    pub distance_m: f64,
    pub snapshot: UnitSnapshot,
}

/// A unit's entry in its cell, with its projected position.
#[derive(Debug, Clone, Copy)]
struct Slot {
    unit: UnitSnapshot,
    x: f64,
    y: f64,
}

/// The index. Not synchronised: the owner wraps it in a lock.
#[derive(Debug, Default)]
pub struct LiveIndex {
    /// Which cell each unit is in.
    cell_of_unit: HashMap<i64, (i32, i32)>,
    grid: HashMap<(i32, i32), Vec<Slot>>,
    /// Latitude the local projection is centred on (the first fix seen).
    ref_lat_cos: Option<f64>,
    bounds: Option<((i32, i32), (i32, i32))>,
    capability_bits: HashMap<String, u32>,
}

impl LiveIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of units with a position.
    pub fn len(&self) -> usize {
        self.cell_of_unit.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cell_of_unit.is_empty()
    }

    /// The bit set for these capability codes, assigning bits to codes seen for the first time.
    /// Returns `None` when more than 64 distinct codes are in use.
    pub fn capability_mask(&mut self, codes: &[String]) -> Option<u64> {
        let mut mask = 0u64;
        for c in codes {
            let next = u32::try_from(self.capability_bits.len()).ok()?;
            let bit = *self.capability_bits.entry(c.clone()).or_insert(next);
            if bit >= 64 {
                return None;
            }
            mask |= 1 << bit;
        }
        Some(mask)
    }

    fn project(&mut self, lat: f64, lon: f64) -> (f64, f64) {
        let c = *self
            .ref_lat_cos
            .get_or_insert_with(|| lat.to_radians().cos());
        (
            EARTH_RADIUS_M * lon.to_radians() * c,
            EARTH_RADIUS_M * lat.to_radians(),
        )
    }

    fn cell_of(x: f64, y: f64) -> (i32, i32) {
        // Truncation is intended: coordinates on Earth stay far inside i32 cells.
        #[allow(clippy::cast_possible_truncation)]
        ((x / CELL_M).floor() as i32, (y / CELL_M).floor() as i32)
    }

    /// Inserts or replaces a unit. O(1) apart from the cell's occupancy.
    pub fn upsert(&mut self, unit: UnitSnapshot) {
        let (x, y) = self.project(unit.lat, unit.lon);
        let cell = Self::cell_of(x, y);
        let slot = Slot { unit, x, y };
        match self.cell_of_unit.insert(unit.unit_id, cell) {
            Some(old) if old == cell => {
                if let Some(entry) = self.entry_mut(unit.unit_id) {
                    *entry = slot;
                }
            }
            Some(old) => {
                self.remove_from_cell(old, unit.unit_id);
                self.grid.entry(cell).or_default().push(slot);
            }
            None => self.grid.entry(cell).or_default().push(slot),
        }
        self.bounds = Some(match self.bounds {
            None => (cell, cell),
            Some((lo, hi)) => (
                (lo.0.min(cell.0), lo.1.min(cell.1)),
                (hi.0.max(cell.0), hi.1.max(cell.1)),
            ),
        });
    }

    fn entry_mut(&mut self, unit_id: i64) -> Option<&mut Slot> {
        let cell = self.cell_of_unit.get(&unit_id)?;
        self.grid
            .get_mut(cell)?
            .iter_mut()
            .find(|s| s.unit.unit_id == unit_id)
    }

    /// Changes a unit's availability and capabilities without moving it.
    pub fn set_state(&mut self, unit_id: i64, available: bool, capabilities: u64) {
        if let Some(entry) = self.entry_mut(unit_id) {
            entry.unit.available = available;
            entry.unit.capabilities = capabilities;
        }
    }

    pub fn get(&self, unit_id: i64) -> Option<UnitSnapshot> {
        let cell = self.cell_of_unit.get(&unit_id)?;
        self.grid
            .get(cell)?
            .iter()
            .find(|s| s.unit.unit_id == unit_id)
            .map(|s| s.unit)
    }

    fn remove_from_cell(&mut self, cell: (i32, i32), unit_id: i64) {
        if let Some(v) = self.grid.get_mut(&cell) {
            if let Some(pos) = v.iter().position(|s| s.unit.unit_id == unit_id) {
                v.swap_remove(pos);
            }
            if v.is_empty() {
                self.grid.remove(&cell);
            }
        }
    }

    /// Every unit whose position lies inside `fence`, by unit id.
    pub fn within(&mut self, fence: &super::fence::Fence) -> Vec<UnitSnapshot> {
        let Some((lo, hi)) = self.bounds else {
            return Vec::new();
        };
        let ((s, w), (n, e)) = fence.bounds();
        let (x0, y0) = self.project(s, w);
        let (x1, y1) = self.project(n, e);
        let (c0, c1) = (Self::cell_of(x0, y0), Self::cell_of(x1, y1));
        let mut found: Vec<UnitSnapshot> = Vec::new();
        for cx in c0.0.max(lo.0)..=c1.0.min(hi.0) {
            for cy in c0.1.max(lo.1)..=c1.1.min(hi.1) {
                let Some(cell) = self.grid.get(&(cx, cy)) else {
                    continue;
                };
                found.extend(
                    cell.iter()
                        .map(|s| s.unit)
                        .filter(|u| fence.contains(u.lat, u.lon)),
                );
            }
        }
        found.sort_by_key(|u| u.unit_id);
        found
    }

    /// The `k` nearest units passing `filter`, nearest first (ties by unit id).
    pub fn nearest(&mut self, lat: f64, lon: f64, k: usize, filter: &UnitFilter) -> Vec<Candidate> {
        let Some((lo, hi)) = self.bounds else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let (qx, qy) = self.project(lat, lon);
        let (cx, cy) = Self::cell_of(qx, qy);
        let far = [lo.0 - cx, cx - hi.0, lo.1 - cy, cy - hi.1];
        let first_ring = far.into_iter().max().unwrap_or(0).max(0);
        let last_ring = [cx - lo.0, hi.0 - cx, cy - lo.1, hi.1 - cy]
            .into_iter()
            .max()
            .unwrap_or(0)
            .max(0);
        let mut best: Vec<(f64, i64, UnitSnapshot)> = Vec::with_capacity(k + 1);
        for r in first_ring..=last_ring {
            for key in ring_within((cx, cy), r, lo, hi) {
                let Some(cell) = self.grid.get(&key) else {
                    continue;
                };
                for s in cell {
                    if !filter.accepts(&s.unit) {
                        continue;
                    }
                    let d = (s.x - qx).hypot(s.y - qy);
                    insert_bounded(&mut best, (d, s.unit.unit_id, s.unit), k);
                }
            }
            // Every cell outside rings 0..=r lies at least r whole cells away.
            if best.len() == k && best[k - 1].0 <= f64::from(r) * CELL_M {
                break;
            }
        }
        best.into_iter()
            .map(|(d, unit_id, snapshot)| Candidate {
                unit_id,
                distance_m: d,
                snapshot,
            })
            .collect()
    }
}

/// Keeps `best` sorted by (distance, id) and at most `k` long.
fn insert_bounded(
    best: &mut Vec<(f64, i64, UnitSnapshot)>,
    item: (f64, i64, UnitSnapshot),
    k: usize,
) {
    let pos = best.partition_point(|b| (b.0, b.1) < (item.0, item.1));
    if pos < k {
        best.insert(pos, item);
        best.truncate(k);
    }
}

/// Cells at Chebyshev distance exactly `r` from `c`, clipped to the occupied bounds so that a
/// query far from every unit costs no more than the bounds' perimeter per ring.
fn ring_within(c: (i32, i32), r: i32, lo: (i32, i32), hi: (i32, i32)) -> Vec<(i32, i32)> {
    let mut cells = Vec::new();
    if r == 0 {
        if (lo.0..=hi.0).contains(&c.0) && (lo.1..=hi.1).contains(&c.1) {
            cells.push(c);
        }
        return cells;
    }
    let (x0, x1, y0, y1) = (c.0 - r, c.0 + r, c.1 - r, c.1 + r);
    for y in [y0, y1] {
        if (lo.1..=hi.1).contains(&y) {
            cells.extend((x0.max(lo.0)..=x1.min(hi.0)).map(|x| (x, y)));
        }
    }
    for x in [x0, x1] {
        if (lo.0..=hi.0).contains(&x) {
            cells.extend(((y0 + 1).max(lo.1)..=(y1 - 1).min(hi.1)).map(|y| (x, y)));
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_force(
        idx: &mut LiveIndex,
        units: &[UnitSnapshot],
        lat: f64,
        lon: f64,
        k: usize,
        f: &UnitFilter,
    ) -> Vec<i64> {
        let (qx, qy) = idx.project(lat, lon);
        let mut all: Vec<(f64, i64)> = units
            .iter()
            .filter(|u| f.accepts(u))
            .map(|u| {
                let (x, y) = idx.project(u.lat, u.lon);
                ((x - qx).hypot(y - qy), u.unit_id)
            })
            .collect();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        all.into_iter().take(k).map(|a| a.1).collect()
    }

    fn unit() -> impl Strategy<Value = (f64, f64, bool, u64, i64)> {
        (
            60.10..60.25f64,
            24.80..25.10f64,
            proptest::bool::weighted(0.7),
            0u64..8,
            0i64..100,
        )
    }

    proptest! {
        #[test]
        fn nearest_matches_brute_force(
            units in proptest::collection::vec(unit(), 0..200),
            moves in proptest::collection::vec((0usize..200, 60.10..60.25f64, 24.80..25.10f64), 0..50),
            q in prop_oneof![(60.0..60.3f64, 24.7..25.2f64), (-60.0..80.0f64, -170.0..170.0f64)],
            k in 0usize..8,
            required in 0u64..4,
            fresh_after in 0i64..60,
        ) {
            let mut idx = LiveIndex::new();
            let mut snaps: Vec<UnitSnapshot> = units.iter().enumerate().map(|(i, &(lat, lon, available, capabilities, t))| UnitSnapshot {
                unit_id: i64::try_from(i).unwrap(), lat, lon, available, capabilities, fix_received_ms: t,
            }).collect();
            for s in &snaps { idx.upsert(*s); }
            for (i, lat, lon) in moves {
                if let Some(s) = snaps.get_mut(i) {
                    s.lat = lat;
                    s.lon = lon;
                    idx.upsert(*s);
                }
            }
            let filter = UnitFilter { required_capabilities: required, fresh_after_ms: fresh_after };
            let got: Vec<i64> = idx.nearest(q.0, q.1, k, &filter).iter().map(|c| c.unit_id).collect();
            let want = brute_force(&mut idx, &snaps, q.0, q.1, k, &filter);
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #[test]
        fn within_matches_brute_force(
            units in proptest::collection::vec((60.10..60.25f64, 24.80..25.10f64), 0..300),
            corner in (60.10..60.25f64, 24.80..25.10f64),
            size in (0.001..0.1f64, 0.001..0.2f64),
        ) {
            let mut idx = LiveIndex::new();
            for (i, &(lat, lon)) in units.iter().enumerate() {
                idx.upsert(UnitSnapshot { unit_id: i64::try_from(i).unwrap(), lat, lon, available: true, capabilities: 0, fix_received_ms: 0 });
            }
            let (s, w) = corner;
            let fence = crate::geo::fence::Fence::new(vec![(s, w), (s + size.0, w + size.1 / 2.0), (s, w + size.1)]).unwrap();
            let got: Vec<i64> = idx.within(&fence).iter().map(|u| u.unit_id).collect();
            let want: Vec<i64> = units.iter().enumerate().filter(|(_, &(lat, lon))| fence.contains(lat, lon)).map(|(i, _)| i64::try_from(i).unwrap()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn capability_bits_are_stable() {
        let mut idx = LiveIndex::new();
        let a = idx.capability_mask(&["patrol".into()]).unwrap();
        let b = idx
            .capability_mask(&["k9".into(), "patrol".into()])
            .unwrap();
        assert_eq!(a, 1);
        assert_eq!(b, 3);
    }

    #[test]
    fn excludes_unavailable_and_stale() {
        let mut idx = LiveIndex::new();
        let base = UnitSnapshot {
            unit_id: 1,
            lat: 60.17,
            lon: 24.94,
            available: true,
            capabilities: 1,
            fix_received_ms: 100,
        };
        idx.upsert(base);
        idx.upsert(UnitSnapshot {
            unit_id: 2,
            fix_received_ms: 10,
            ..base
        });
        idx.upsert(UnitSnapshot {
            unit_id: 3,
            available: false,
            ..base
        });
        let f = UnitFilter {
            required_capabilities: 1,
            fresh_after_ms: 50,
        };
        let got: Vec<i64> = idx
            .nearest(60.17, 24.94, 5, &f)
            .iter()
            .map(|c| c.unit_id)
            .collect();
        assert_eq!(got, vec![1]);
        idx.set_state(1, false, 1);
        assert!(idx.nearest(60.17, 24.94, 5, &f).is_empty());
    }
}
