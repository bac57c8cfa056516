//! Geography: the live index of unit positions used for recommendations.
//! Road graphs, geocoding and basemap tiles join here later.

pub mod fence;
pub mod geocode;
pub mod index;
pub mod live;
pub mod premise;
pub mod premise_import;
pub mod recommend;
pub mod road;
pub mod tiles;

pub use index::{Candidate, LiveIndex, UnitFilter, UnitSnapshot};
pub use live::LiveUnits;

/// Mean Earth radius in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}
