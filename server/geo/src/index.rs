//! Live unit index: a uniform grid in local metres whose cells hold their units' entries
//! contiguously (a scan touches few cache lines), answering
//! "K nearest units that pass a filter" by ring search, exact against brute force.
//!
//! Safe to share between threads without an outer lock. The cells live in many shards, each
//! behind its own read-write lock, so a query only ever waits for a writer updating one of the
//! few cells it reads, for the time of that one update. Writers serialise among themselves on
//! the unit → cell map. A unit that changes cells is removed from one cell and added to
//! another inside a sequence-counter window; a query that overlapped such a window starts over
//! (after a few tries it holds the writers off for one pass), so every query sees each unit
//! exactly once, at a position it held during the query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use super::EARTH_RADIUS_M;

/// Side of a grid cell in metres: a few cells cover a city district.
const CELL_M: f64 = 250.0;
/// Shards of the grid (a power of two); neighbouring cells land in different shards.
const SHARDS: usize = 1024;
/// Lock-free reads a query tries before it holds the writers off for a consistent view.
const OPTIMISTIC_ATTEMPTS: usize = 8;

/// What the index knows about one unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitSnapshot {
    pub unit_id: i64,
    pub lat: f64,
    pub lon: f64,
    /// Reported accuracy of the fix, metres.
    pub accuracy_m: Option<f64>,
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

type Cell = (i32, i32);
type Cells = HashMap<Cell, Vec<Slot>>;

/// One shard of the grid, on its own cache line so that shards' locks do not share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard(RwLock<Cells>);

/// The occupied cells' bounding box; it only grows.
#[derive(Debug)]
struct Bounds {
    lo: (AtomicI32, AtomicI32),
    hi: (AtomicI32, AtomicI32),
}

impl Bounds {
    fn include(&self, c: Cell) {
        self.lo.0.fetch_min(c.0, Ordering::AcqRel);
        self.lo.1.fetch_min(c.1, Ordering::AcqRel);
        self.hi.0.fetch_max(c.0, Ordering::AcqRel);
        self.hi.1.fetch_max(c.1, Ordering::AcqRel);
    }

    /// `None` while no unit has a position.
    fn get(&self) -> Option<(Cell, Cell)> {
        let lo = (
            self.lo.0.load(Ordering::Acquire),
            self.lo.1.load(Ordering::Acquire),
        );
        let hi = (
            self.hi.0.load(Ordering::Acquire),
            self.hi.1.load(Ordering::Acquire),
        );
        (lo.0 <= hi.0 && lo.1 <= hi.1).then_some((lo, hi))
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            lo: (AtomicI32::new(i32::MAX), AtomicI32::new(i32::MAX)),
            hi: (AtomicI32::new(i32::MIN), AtomicI32::new(i32::MIN)),
        }
    }
}

/// The index.
#[derive(Debug)]
pub struct LiveIndex {
    /// Which cell each unit is in; held by a writer for its whole update.
    cell_of_unit: Mutex<HashMap<i64, Cell>>,
    shards: Box<[Shard]>,
    /// Odd while a unit is between two cells; bumped twice per change of cell.
    cell_changes: AtomicU64,
    /// Latitude the local projection is centred on (the first position seen).
    ref_lat_cos: OnceLock<f64>,
    bounds: Bounds,
    capability_bits: RwLock<HashMap<String, u32>>,
}

impl Default for LiveIndex {
    fn default() -> Self {
        Self {
            cell_of_unit: Mutex::default(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            cell_changes: AtomicU64::new(0),
            ref_lat_cos: OnceLock::new(),
            bounds: Bounds::default(),
            capability_bits: RwLock::default(),
        }
    }
}

impl LiveIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of units with a position.
    pub fn len(&self) -> usize {
        self.writer().len()
    }

    pub fn is_empty(&self) -> bool {
        self.writer().is_empty()
    }

    fn writer(&self) -> MutexGuard<'_, HashMap<i64, Cell>> {
        self.cell_of_unit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn shard(&self, c: Cell) -> &RwLock<Cells> {
        // Any mix works; this one sends the cells of a small square to distinct shards.
        #[allow(clippy::cast_sign_loss)]
        let h = (c.0 as u32).wrapping_mul(0x9E37_79B1) ^ (c.1 as u32).wrapping_mul(0x85EB_CA77);
        &self.shards[(h as usize ^ (h as usize >> 10)) % SHARDS].0
    }

    fn read_cell<T>(&self, c: Cell, f: impl FnOnce(&[Slot]) -> T) -> Option<T> {
        let shard = self.shard(c).read().unwrap_or_else(PoisonError::into_inner);
        shard.get(&c).map(|slots| f(slots))
    }

    fn write_cells(&self, c: Cell) -> std::sync::RwLockWriteGuard<'_, Cells> {
        self.shard(c)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The bit set for these capability codes, assigning bits to codes seen for the first time.
    /// Returns `None` when more than 64 distinct codes are in use.
    pub fn capability_mask(&self, codes: &[String]) -> Option<u64> {
        let mut bits = self
            .capability_bits
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut mask = 0u64;
        for c in codes {
            let next = u32::try_from(bits.len()).ok()?;
            let bit = *bits.entry(c.clone()).or_insert(next);
            if bit >= 64 {
                return None;
            }
            mask |= 1 << bit;
        }
        Some(mask)
    }

    /// The filter's bit set for these codes without assigning any: `Ok(None)` when a code was
    /// never seen on a unit (no unit can match), `Err(())` when a code has no bit.
    fn required_mask(&self, codes: &[String]) -> Result<Option<u64>, ()> {
        let bits = self
            .capability_bits
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut mask = 0u64;
        for c in codes {
            match bits.get(c) {
                None => return Ok(None),
                Some(&bit) if bit >= 64 => return Err(()),
                Some(&bit) => mask |= 1 << bit,
            }
        }
        Ok(Some(mask))
    }

    fn project(&self, lat: f64, lon: f64) -> (f64, f64) {
        let c = *self.ref_lat_cos.get_or_init(|| lat.to_radians().cos());
        (
            EARTH_RADIUS_M * lon.to_radians() * c,
            EARTH_RADIUS_M * lat.to_radians(),
        )
    }

    fn cell_of(x: f64, y: f64) -> Cell {
        // Truncation is intended: coordinates on Earth stay far inside i32 cells.
        #[allow(clippy::cast_possible_truncation)]
        ((x / CELL_M).floor() as i32, (y / CELL_M).floor() as i32)
    }

    /// Inserts or replaces a unit. O(1) apart from the cell's occupancy.
    pub fn upsert(&self, unit: UnitSnapshot) {
        let mut cells = self.writer();
        self.upsert_locked(&mut cells, unit);
    }

    fn upsert_locked(&self, cell_of_unit: &mut HashMap<i64, Cell>, unit: UnitSnapshot) {
        let (x, y) = self.project(unit.lat, unit.lon);
        let cell = Self::cell_of(x, y);
        let slot = Slot { unit, x, y };
        match cell_of_unit.insert(unit.unit_id, cell) {
            Some(old) if old == cell => {
                let mut shard = self.write_cells(cell);
                if let Some(entry) = find_mut(&mut shard, cell, unit.unit_id) {
                    *entry = slot;
                }
            }
            Some(old) => {
                self.bounds.include(cell);
                // Readers that overlap this window start over (see `consistent`).
                self.cell_changes.fetch_add(1, Ordering::AcqRel);
                {
                    let mut shard = self.write_cells(old);
                    if let Some(v) = shard.get_mut(&old) {
                        if let Some(pos) = v.iter().position(|s| s.unit.unit_id == unit.unit_id) {
                            v.swap_remove(pos);
                        }
                        if v.is_empty() {
                            shard.remove(&old);
                        }
                    }
                }
                self.write_cells(cell).entry(cell).or_default().push(slot);
                self.cell_changes.fetch_add(1, Ordering::AcqRel);
            }
            None => {
                self.bounds.include(cell);
                self.write_cells(cell).entry(cell).or_default().push(slot);
            }
        }
    }

    /// Moves a unit already in the index to a new fix, keeping its state. Returns `false` when
    /// it is not there.
    pub fn move_to(
        &self,
        unit_id: i64,
        (lat, lon): (f64, f64),
        accuracy_m: Option<f64>,
        received_ms: i64,
    ) -> bool {
        let mut cells = self.writer();
        let Some(mut unit) = self.get_locked(&cells, unit_id) else {
            return false;
        };
        unit.lat = lat;
        unit.lon = lon;
        unit.accuracy_m = accuracy_m;
        unit.fix_received_ms = received_ms;
        self.upsert_locked(&mut cells, unit);
        true
    }

    /// Changes a unit's availability and capabilities without moving it.
    pub fn set_state(&self, unit_id: i64, available: bool, capabilities: u64) {
        let cells = self.writer();
        let Some(&cell) = cells.get(&unit_id) else {
            return;
        };
        let mut shard = self.write_cells(cell);
        if let Some(entry) = find_mut(&mut shard, cell, unit_id) {
            entry.unit.available = available;
            entry.unit.capabilities = capabilities;
        }
    }

    pub fn get(&self, unit_id: i64) -> Option<UnitSnapshot> {
        self.get_locked(&self.writer(), unit_id)
    }

    fn get_locked(&self, cells: &HashMap<i64, Cell>, unit_id: i64) -> Option<UnitSnapshot> {
        let cell = *cells.get(&unit_id)?;
        self.read_cell(cell, |slots| {
            slots
                .iter()
                .find(|s| s.unit.unit_id == unit_id)
                .map(|s| s.unit)
        })
        .flatten()
    }

    /// Runs `read` until no unit changed cells while it ran, and returns its answer. After a
    /// few overlapped attempts it holds the writers off instead, so a query cannot starve.
    fn consistent<T>(&self, mut read: impl FnMut() -> T) -> T {
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let before = self.cell_changes.load(Ordering::Acquire);
            if before.is_multiple_of(2) {
                let answer = read();
                // Cells are read under their shards' locks, which order those reads before
                // this load: a change that any of them saw has bumped the counter by now.
                if self.cell_changes.load(Ordering::Acquire) == before {
                    return answer;
                }
            }
            std::hint::spin_loop();
        }
        let _writers_held_off = self.writer();
        read()
    }

    /// Every unit whose position lies inside `fence`, by unit id.
    pub fn within(&self, fence: &super::fence::Fence) -> Vec<UnitSnapshot> {
        let mut found = self.consistent(|| {
            let Some((lo, hi)) = self.bounds.get() else {
                return Vec::new();
            };
            let ((s, w), (n, e)) = fence.bounds();
            let (x0, y0) = self.project(s, w);
            let (x1, y1) = self.project(n, e);
            let (c0, c1) = (Self::cell_of(x0, y0), Self::cell_of(x1, y1));
            let mut found: Vec<UnitSnapshot> = Vec::new();
            for cx in c0.0.max(lo.0)..=c1.0.min(hi.0) {
                for cy in c0.1.max(lo.1)..=c1.1.min(hi.1) {
                    self.read_cell((cx, cy), |cell| {
                        found.extend(
                            cell.iter()
                                .map(|s| s.unit)
                                .filter(|u| fence.contains(u.lat, u.lon)),
                        );
                    });
                }
            }
            found
        });
        found.sort_by_key(|u| u.unit_id);
        found
    }

    /// The `k` nearest units with every capability in `required` that also pass the rest of
    /// `filter`, nearest first (ties by unit id). `None` when `required` names a capability the
    /// index cannot track (more than 64 codes in use).
    pub fn nearest_with(
        &self,
        (lat, lon): (f64, f64),
        k: usize,
        required: &[String],
        fresh_after_ms: i64,
    ) -> Option<Vec<Candidate>> {
        let Some(required_capabilities) = self.required_mask(required).ok()? else {
            return Some(Vec::new());
        };
        Some(self.nearest(
            lat,
            lon,
            k,
            &UnitFilter {
                required_capabilities,
                fresh_after_ms,
            },
        ))
    }

    /// The `k` nearest units passing `filter`, nearest first (ties by unit id).
    pub fn nearest(&self, lat: f64, lon: f64, k: usize, filter: &UnitFilter) -> Vec<Candidate> {
        if k == 0 {
            return Vec::new();
        }
        // (squared distance, unit id, unit): square roots only for the k kept.
        let mut best: Vec<(f64, i64, UnitSnapshot)> = Vec::with_capacity(k + 1);
        self.consistent(|| {
            best.clear();
            let Some((lo, hi)) = self.bounds.get() else {
                return;
            };
            let (qx, qy) = self.project(lat, lon);
            let (cx, cy) = Self::cell_of(qx, qy);
            let far = [lo.0 - cx, cx - hi.0, lo.1 - cy, cy - hi.1];
            let first_ring = far.into_iter().max().unwrap_or(0).max(0);
            let last_ring = [cx - lo.0, hi.0 - cx, cy - lo.1, hi.1 - cy]
                .into_iter()
                .max()
                .unwrap_or(0)
                .max(0);
            for r in first_ring..=last_ring {
                for_ring_within((cx, cy), r, lo, hi, |key| {
                    self.read_cell(key, |cell| {
                        for s in cell {
                            if filter.accepts(&s.unit) {
                                let (dx, dy) = (s.x - qx, s.y - qy);
                                let squared = dx.mul_add(dx, dy * dy);
                                insert_bounded(&mut best, (squared, s.unit.unit_id, s.unit), k);
                            }
                        }
                    });
                });
                // Every cell outside rings 0..=r lies at least r whole cells away.
                let reach = f64::from(r) * CELL_M;
                if best.len() == k && best[k - 1].0 <= reach * reach {
                    break;
                }
            }
        });
        best.into_iter()
            .map(|(squared, unit_id, snapshot)| Candidate {
                unit_id,
                distance_m: squared.sqrt(),
                snapshot,
            })
            .collect()
    }
}

fn find_mut(cells: &mut Cells, cell: Cell, unit_id: i64) -> Option<&mut Slot> {
    cells
        .get_mut(&cell)?
        .iter_mut()
        .find(|s| s.unit.unit_id == unit_id)
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

/// Calls `visit` with each cell at Chebyshev distance exactly `r` from `c`, clipped to the
/// occupied bounds so that a query far from every unit costs no more than the bounds'
/// perimeter per ring.
fn for_ring_within(c: Cell, r: i32, lo: Cell, hi: Cell, mut visit: impl FnMut(Cell)) {
    if r == 0 {
        if (lo.0..=hi.0).contains(&c.0) && (lo.1..=hi.1).contains(&c.1) {
            visit(c);
        }
        return;
    }
    let (x0, x1, y0, y1) = (c.0 - r, c.0 + r, c.1 - r, c.1 + r);
    for y in [y0, y1] {
        if (lo.1..=hi.1).contains(&y) {
            (x0.max(lo.0)..=x1.min(hi.0)).for_each(|x| visit((x, y)));
        }
    }
    for x in [x0, x1] {
        if (lo.0..=hi.0).contains(&x) {
            ((y0 + 1).max(lo.1)..=(y1 - 1).min(hi.1)).for_each(|y| visit((x, y)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute_force(
        idx: &LiveIndex,
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
                let (dx, dy) = (x - qx, y - qy);
                (dx.mul_add(dx, dy * dy).sqrt(), u.unit_id)
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
            let idx = LiveIndex::new();
            let mut snaps: Vec<UnitSnapshot> = units.iter().enumerate().map(|(i, &(lat, lon, available, capabilities, t))| UnitSnapshot {
                unit_id: i64::try_from(i).unwrap(), lat, lon, accuracy_m: None, available, capabilities, fix_received_ms: t,
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
            let want = brute_force(&idx, &snaps, q.0, q.1, k, &filter);
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
            let idx = LiveIndex::new();
            for (i, &(lat, lon)) in units.iter().enumerate() {
                idx.upsert(UnitSnapshot { unit_id: i64::try_from(i).unwrap(), lat, lon, accuracy_m: None, available: true, capabilities: 0, fix_received_ms: 0 });
            }
            let (s, w) = corner;
            let fence = crate::fence::Fence::new(vec![(s, w), (s + size.0, w + size.1 / 2.0), (s, w + size.1)]).unwrap();
            let got: Vec<i64> = idx.within(&fence).iter().map(|u| u.unit_id).collect();
            let want: Vec<i64> = units.iter().enumerate().filter(|(_, &(lat, lon))| fence.contains(lat, lon)).map(|(i, _)| i64::try_from(i).unwrap()).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn capability_bits_are_stable() {
        let idx = LiveIndex::new();
        let a = idx.capability_mask(&["patrol".into()]).unwrap();
        let b = idx
            .capability_mask(&["k9".into(), "patrol".into()])
            .unwrap();
        assert_eq!(a, 1);
        assert_eq!(b, 3);
    }

    #[test]
    fn excludes_unavailable_and_stale() {
        let idx = LiveIndex::new();
        let base = UnitSnapshot {
            unit_id: 1,
            lat: 60.17,
            lon: 24.94,
            accuracy_m: Some(5.0),
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

    /// Units jump between two cells far apart while other threads ask for all of them: every
    /// answer must hold each unit exactly once.
    #[test]
    fn queries_during_cell_changes_see_each_unit_once() {
        let idx = std::sync::Arc::new(LiveIndex::new());
        let units = 50i64;
        let at = |i: i64, far: bool| {
            #[allow(clippy::cast_precision_loss)]
            let lat = 60.17 + (i as f64) * 1e-4 + if far { 0.05 } else { 0.0 };
            (lat, 24.94)
        };
        for i in 0..units {
            let (lat, lon) = at(i, false);
            idx.upsert(UnitSnapshot {
                unit_id: i,
                lat,
                lon,
                accuracy_m: None,
                available: true,
                capabilities: 0,
                fix_received_ms: 0,
            });
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (idx, stop) = (idx.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut moves = 0u64;
                while !stop.load(Ordering::Relaxed) || moves < 10_000 {
                    let i = i64::try_from(moves % 50).unwrap();
                    assert!(idx.move_to(i, at(i, (moves / 50).is_multiple_of(2)), None, 0));
                    moves += 1;
                }
            })
        };
        let all = UnitFilter {
            required_capabilities: 0,
            fresh_after_ms: 0,
        };
        let k = usize::try_from(units).unwrap();
        for _ in 0..2_000 {
            let mut ids: Vec<i64> = idx
                .nearest(60.19, 24.94, k + 1, &all)
                .iter()
                .map(|c| c.unit_id)
                .collect();
            ids.sort_unstable();
            assert_eq!(ids, (0..units).collect::<Vec<_>>());
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }
}
