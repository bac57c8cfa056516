//! The car road graph: nodes, directed travel-time edges (one-way streets respected), snapping
//! of points to the nearest road segment, exact drive-time search on a contraction hierarchy,
//! and whole fastest paths for what drives on it (the fleet simulator).

mod cache;
mod ch_search;
mod contract;
mod graph;
mod import;
mod paths;
mod search;
mod snap;

pub use cache::{load_or_import, Origin};
pub use graph::{Direction, RoadGraph, RoadGraphBuilder, Segment};
pub use import::{import_pbf, way_profile};
pub use paths::{Path, Route};
pub use search::{DriveTime, EtaSearch, Snapped};
