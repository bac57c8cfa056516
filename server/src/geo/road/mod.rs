//! The car road graph: nodes, directed travel-time edges (one-way streets respected), snapping
//! of points to the nearest road segment, and exact drive-time search on a contraction
//! hierarchy.

mod cache;
mod ch_search;
mod contract;
mod graph;
mod import;
mod search;
mod snap;

pub use cache::{load_or_import, Origin};
pub use graph::{Direction, RoadGraph, RoadGraphBuilder};
pub use import::{import_pbf, way_profile};
pub use search::{DriveTime, EtaSearch, Snapped};
