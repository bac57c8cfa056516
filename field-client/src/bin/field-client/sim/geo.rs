//! Small-scale geometry for the simulator: bearings, interpolation and areas on WGS84, with
//! distances from `dispatch_geo`.
//!
//! Accurate enough over the few kilometres a simulated city covers.

use rand::Rng;

/// A WGS84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// Great-circle distance in metres (the product's one haversine).
pub fn distance_m(a: Point, b: Point) -> f64 {
    dispatch_geo::haversine_m(a.lat, a.lon, b.lat, b.lon)
}

/// Initial bearing from `a` to `b`, degrees clockwise from north in `[0, 360)`.
pub fn bearing_deg(a: Point, b: Point) -> f64 {
    dispatch_geo::bearing_deg(a.lat, a.lon, b.lat, b.lon)
}

/// The point `fraction` of the way from `a` to `b` (linear in degrees; fine at city scale).
pub fn towards(a: Point, b: Point, fraction: f64) -> Point {
    Point {
        lat: a.lat + (b.lat - a.lat) * fraction,
        lon: a.lon + (b.lon - a.lon) * fraction,
    }
}

/// A latitude/longitude rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub south_west: Point,
    pub north_east: Point,
}

impl Area {
    /// A square of `half_side_m` metres each way around `centre`.
    pub fn around(centre: Point, half_side_m: f64) -> Self {
        let (dlat, dlon) = dispatch_geo::degrees_spanned(centre.lat, half_side_m);
        Self {
            south_west: Point {
                lat: centre.lat - dlat,
                lon: centre.lon - dlon,
            },
            north_east: Point {
                lat: centre.lat + dlat,
                lon: centre.lon + dlon,
            },
        }
    }

    pub fn random_point(&self, rng: &mut impl Rng) -> Point {
        Point {
            lat: rng.gen_range(self.south_west.lat..=self.north_east.lat),
            lon: rng.gen_range(self.south_west.lon..=self.north_east.lon),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CENTRE: Point = Point {
        lat: 60.1699,
        lon: 24.9384,
    };

    #[test]
    fn distances_and_bearings_are_plausible() {
        let north = Point {
            lat: CENTRE.lat + 0.01,
            lon: CENTRE.lon,
        };
        assert!((distance_m(CENTRE, north) - 1112.0).abs() < 2.0);
        assert!(bearing_deg(CENTRE, north) < 0.01);
        let east = Point {
            lat: CENTRE.lat,
            lon: CENTRE.lon + 0.01,
        };
        assert!((bearing_deg(CENTRE, east) - 90.0).abs() < 0.1);
        assert!((towards(CENTRE, north, 0.5).lat - (CENTRE.lat + 0.005)).abs() < 1e-9);
    }

    #[test]
    fn area_is_square_in_metres() {
        let area = Area::around(CENTRE, 1000.0);
        let west = Point {
            lat: CENTRE.lat,
            lon: area.south_west.lon,
        };
        let south = Point {
            lat: area.south_west.lat,
            lon: CENTRE.lon,
        };
        assert!((distance_m(CENTRE, west) - 1000.0).abs() < 5.0);
        assert!((distance_m(CENTRE, south) - 1000.0).abs() < 5.0);
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let p = area.random_point(&mut rng);
            assert!(p.lat >= area.south_west.lat && p.lon <= area.north_east.lon);
        }
    }
}
