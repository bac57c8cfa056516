//! Geography of the dispatch system, free of any web or database framework: the live index of
//! unit positions, the car road graph with exact drive times (contraction hierarchy), the
//! offline geocoder, basemap tiles and geofences, and the one great-circle distance every part
//! of the product uses (with its initial bearing).

pub mod fence;
pub mod geocode;
pub mod index;
mod osm_pbf;
pub mod road;
pub mod tiles;

pub use index::{Candidate, LiveIndex, UnitFilter, UnitSnapshot};

/// Mean Earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// The degrees of latitude and of longitude that `metres` span at latitude `lat` (on the
/// sphere of [`EARTH_RADIUS_M`]; the longitude span grows towards the poles, capped near them).
pub fn degrees_spanned(lat: f64, metres: f64) -> (f64, f64) {
    let dlat = (metres / EARTH_RADIUS_M).to_degrees();
    (dlat, dlat / lat.to_radians().cos().max(0.01))
}

/// Initial bearing from the first point to the second, degrees clockwise from north in
/// `[0, 360)`.
pub fn bearing_deg(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dl = (lon2 - lon1).to_radians();
    let y = dl.sin() * p2.cos();
    let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
    y.atan2(x).to_degrees().rem_euclid(360.0)
}

/// Input this crate refuses, with a message naming the field and the problem (the server
/// answers it as a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

impl Invalid {
    pub fn field(name: &str, problem: impl std::fmt::Display) -> Self {
        Self(format!("`{name}` {problem}"))
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// Checks a WGS84 coordinate pair (the protocol's one rule).
///
/// # Errors
/// When latitude is outside −90..=90, longitude outside −180..=180, or either is not a number.
pub fn coordinates(lat: f64, lon: f64) -> Result<(f64, f64), Invalid> {
    dispatch_protocol::validate_coordinates(lat, lon).map_err(|e| Invalid(e.0))?;
    Ok((lat, lon))
}

/// The demo and test map, `data/helsinki.osm.pbf` of the repository.
#[cfg(test)]
pub(crate) fn helsinki_pbf() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/helsinki.osm.pbf")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haversine_of_a_known_distance() {
        // Helsinki railway station to Tampere railway station: about 160.6 km.
        let d = haversine_m(60.1719, 24.9414, 61.4986, 23.7730);
        assert!((d - 160_600.0).abs() < 500.0, "{d}");
        assert_eq!(haversine_m(60.0, 25.0, 60.0, 25.0), 0.0);
    }

    #[test]
    fn degrees_spanned_come_back_as_the_same_metres() {
        let (dlat, dlon) = degrees_spanned(60.17, 1000.0);
        assert!((haversine_m(60.17, 24.94, 60.17 + dlat, 24.94) - 1000.0).abs() < 1e-6);
        assert!((haversine_m(60.17, 24.94, 60.17, 24.94 + dlon) - 1000.0).abs() < 0.1);
    }

    #[test]
    fn bearings_point_the_right_way() {
        assert!(bearing_deg(60.0, 25.0, 60.01, 25.0) < 1e-9);
        assert!((bearing_deg(60.0, 25.0, 60.0, 25.01) - 90.0).abs() < 0.01);
        assert!((bearing_deg(60.0, 25.0, 59.99, 25.0) - 180.0).abs() < 1e-9);
        assert!((bearing_deg(60.0, 25.0, 60.0, 24.99) - 270.0).abs() < 0.01);
    }

    #[test]
    fn coordinates_out_of_range_are_named() {
        assert!(coordinates(60.2, 24.9).is_ok());
        assert!(coordinates(91.0, 0.0).unwrap_err().0.contains("`lat`"));
        assert!(coordinates(0.0, -181.0).unwrap_err().0.contains("`lon`"));
    }
}
