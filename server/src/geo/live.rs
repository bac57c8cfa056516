//! The shared live index plus the glue that feeds it from stored units, and the call signs
//! that recommendations are answered with.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use crate::domain::{Unit, UnitStatus};
use crate::store::PositionChange;
use dispatch_geo::{Candidate, LiveIndex, UnitSnapshot};

/// Live positions of all units. Cheap to clone; every method takes only the short locks of
/// [`LiveIndex`], so queries and position updates run side by side.
#[derive(Debug, Clone, Default)]
pub struct LiveUnits {
    index: Arc<LiveIndex>,
    /// Call sign of every unit loaded (call signs do not change).
    call_signs: Arc<RwLock<HashMap<i64, Arc<str>>>>,
    /// Units loaded with a lost tablet link.
    unlinked: Arc<RwLock<HashSet<i64>>>,
}

impl LiveUnits {
    /// Puts a stored unit (position, status, capabilities) into the index; a unit without a
    /// position is left out until its first fix.
    pub fn load(&self, unit: &Unit) {
        self.call_signs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(unit.id)
            .or_insert_with(|| unit.call_sign.as_str().into());
        let capabilities = self.index.capability_mask(&unit.capabilities).unwrap_or(0);
        // A unit whose tablet lost its link cannot be told, so it is not offered for dispatch.
        let available = unit.status == UnitStatus::Available && unit.link_lost_at_ms.is_none();
        let mut unlinked = self
            .unlinked
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if unit.link_lost_at_ms.is_some() {
            unlinked.insert(unit.id);
        } else {
            unlinked.remove(&unit.id);
        }
        drop(unlinked);
        match unit.position {
            Some(p) => self.index.upsert(UnitSnapshot {
                unit_id: unit.id,
                lat: p.lat,
                lon: p.lon,
                accuracy_m: p.accuracy_m,
                available,
                capabilities,
                fix_received_ms: p.received_ms,
            }),
            None => self.index.set_state(unit.id, available, capabilities),
        }
    }

    /// Moves a unit already in the index. Returns `false` when it is not there yet (the caller
    /// then loads it from the store).
    pub fn moved(&self, fix: &PositionChange) -> bool {
        self.index.move_to(
            fix.unit_id,
            (fix.lat, fix.lon),
            fix.accuracy_m,
            fix.received_ms,
        )
    }

    /// Whether the unit was loaded with a lost tablet link (its next connection restores it).
    pub fn link_lost(&self, unit_id: i64) -> bool {
        self.unlinked
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&unit_id)
    }

    /// The call sign of a loaded unit.
    pub fn call_sign(&self, unit_id: i64) -> Option<Arc<str>> {
        self.call_signs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&unit_id)
            .cloned()
    }

    /// Every unit with a position inside `fence`, whatever its status.
    pub fn within(&self, fence: &dispatch_geo::fence::Fence) -> Vec<UnitSnapshot> {
        self.index.within(fence)
    }

    /// The `k` nearest units that are available, have every capability in `required` and a
    /// fix received at or after `fresh_after_ms`. `None` when `required` names more
    /// capabilities than the index can track.
    pub fn nearest(
        &self,
        lat: f64,
        lon: f64,
        k: usize,
        required: &[String],
        fresh_after_ms: i64,
    ) -> Option<Vec<Candidate>> {
        self.index
            .nearest_with((lat, lon), k, required, fresh_after_ms)
    }
}
