//! The shared, locked live index plus the glue that feeds it from stored units.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Candidate, LiveIndex, UnitFilter, UnitSnapshot};
use crate::domain::{Unit, UnitStatus};

/// Live positions of all units. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct LiveUnits {
    index: Arc<Mutex<LiveIndex>>,
}

impl LiveUnits {
    fn lock(&self) -> MutexGuard<'_, LiveIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a stored unit (position, status, capabilities) into the index; a unit without a
    /// position is left out until its first fix.
    pub fn load(&self, unit: &Unit) {
        let mut index = self.lock();
        let capabilities = index.capability_mask(&unit.capabilities).unwrap_or(0);
        let available = unit.status == UnitStatus::Available;
        match unit.position {
            Some(p) => index.upsert(UnitSnapshot {
                unit_id: unit.id,
                lat: p.lat,
                lon: p.lon,
                available,
                capabilities,
                fix_received_ms: p.received_ms,
            }),
            None => index.set_state(unit.id, available, capabilities),
        }
    }

    /// Moves a unit already in the index. Returns `false` when it is not there yet (the caller
    /// then loads it from the store).
    pub fn moved(&self, unit_id: i64, lat: f64, lon: f64, received_ms: i64) -> bool {
        let mut index = self.lock();
        let Some(mut snapshot) = index.get(unit_id) else {
            return false;
        };
        snapshot.lat = lat;
        snapshot.lon = lon;
        snapshot.fix_received_ms = received_ms;
        index.upsert(snapshot);
        true
    }

    /// Every unit with a position inside `fence`, whatever its status.
    pub fn within(&self, fence: &super::fence::Fence) -> Vec<UnitSnapshot> {
        self.lock().within(fence)
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
        let mut index = self.lock();
        let required_capabilities = index.capability_mask(required)?;
        Some(index.nearest(
            lat,
            lon,
            k,
            &UnitFilter {
                required_capabilities,
                fresh_after_ms,
            },
        ))
    }
}
