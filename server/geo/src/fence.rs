//! Geofences: polygons in latitude/longitude with a point-in-polygon test that stays fast for
//! thousands of vertices by bucketing edges into latitude bands.

use crate::{coordinates, Invalid};

/// Most vertices a fence may have.
pub const MAX_VERTICES: usize = 10_000;
/// Latitude bands the edges are bucketed into.
const BANDS: usize = 256;

/// A simple polygon (even-odd rule), closed implicitly.
#[derive(Debug, Clone)]
pub struct Fence {
    vertices: Vec<(f64, f64)>,
    min: (f64, f64),
    max: (f64, f64),
    /// For each latitude band, the edges (index of their first vertex) that span it.
    bands: Vec<Vec<u32>>,
}

impl Fence {
    /// # Errors
    /// When there are fewer than 3 or more than [`MAX_VERTICES`] vertices, or a coordinate is
    /// out of range.
    pub fn new(vertices: Vec<(f64, f64)>) -> Result<Self, Invalid> {
        if vertices.len() < 3 || vertices.len() > MAX_VERTICES {
            return Err(Invalid::field(
                "polygon",
                format_args!("must have 3 to {MAX_VERTICES} vertices"),
            ));
        }
        for &(lat, lon) in &vertices {
            coordinates(lat, lon)?;
        }
        let min = vertices
            .iter()
            .fold((f64::MAX, f64::MAX), |m, v| (m.0.min(v.0), m.1.min(v.1)));
        let max = vertices
            .iter()
            .fold((f64::MIN, f64::MIN), |m, v| (m.0.max(v.0), m.1.max(v.1)));
        let mut fence = Self {
            vertices,
            min,
            max,
            bands: vec![Vec::new(); BANDS],
        };
        for i in 0..fence.vertices.len() {
            let (a, b) = fence.edge(i);
            let (lo, hi) = (fence.band(a.0.min(b.0)), fence.band(a.0.max(b.0)));
            for band in &mut fence.bands[lo..=hi] {
                band.push(u32::try_from(i).unwrap_or(u32::MAX));
            }
        }
        Ok(fence)
    }

    fn edge(&self, i: usize) -> ((f64, f64), (f64, f64)) {
        (
            self.vertices[i],
            self.vertices[(i + 1) % self.vertices.len()],
        )
    }

    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn band(&self, lat: f64) -> usize {
        let span = (self.max.0 - self.min.0).max(f64::MIN_POSITIVE);
        (((lat - self.min.0) / span * BANDS as f64) as usize).min(BANDS - 1)
    }

    /// South-west and north-east corners.
    pub fn bounds(&self) -> ((f64, f64), (f64, f64)) {
        (self.min, self.max)
    }

    /// Whether the point is inside (even-odd rule, boundary points may go either way).
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        if lat < self.min.0 || lat > self.max.0 || lon < self.min.1 || lon > self.max.1 {
            return false;
        }
        let mut inside = false;
        for &i in &self.bands[self.band(lat)] {
            let (a, b) = self.edge(i as usize);
            if crosses(a, b, lat, lon) {
                inside = !inside;
            }
        }
        inside
    }
}

/// Whether a ray from the point towards +longitude crosses edge a–b (half-open in latitude so
/// that a vertex is counted once).
fn crosses(a: (f64, f64), b: (f64, f64), lat: f64, lon: f64) -> bool {
    (a.0 > lat) != (b.0 > lat) && lon < (b.1 - a.1) * (lat - a.0) / (b.0 - a.0) + a.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(vertices: &[(f64, f64)], lat: f64, lon: f64) -> bool {
        let n = vertices.len();
        (0..n)
            .filter(|&i| crosses(vertices[i], vertices[(i + 1) % n], lat, lon))
            .count()
            % 2
            == 1
    }

    #[test]
    fn square() {
        let f = Fence::new(vec![(60.0, 24.0), (60.0, 25.0), (61.0, 25.0), (61.0, 24.0)]).unwrap();
        assert!(f.contains(60.5, 24.5));
        assert!(!f.contains(59.5, 24.5));
        assert!(!f.contains(60.5, 25.5));
    }

    #[test]
    fn rejects_bad_polygons() {
        assert!(Fence::new(vec![(0.0, 0.0), (1.0, 1.0)])
            .unwrap_err()
            .0
            .contains("polygon"));
        assert!(Fence::new(vec![(0.0, 0.0), (1.0, 1.0), (95.0, 0.0)])
            .unwrap_err()
            .0
            .contains("lat"));
    }

    proptest! {
        /// Star-shaped polygons of up to 2,000 vertices: banded test equals the plain one.
        #[test]
        fn banded_equals_naive(
            radii in proptest::collection::vec(0.1..1.0f64, 3..2000),
            points in proptest::collection::vec((59.0..61.0f64, 23.0..25.0f64), 1..100),
        ) {
            #[allow(clippy::cast_precision_loss)]
            let n = radii.len() as f64;
            let vertices: Vec<(f64, f64)> = radii.iter().enumerate().map(|(i, r)| {
                #[allow(clippy::cast_precision_loss)]
                let a = i as f64 / n * std::f64::consts::TAU;
                (60.0 + r * a.sin(), 24.0 + r * a.cos())
            }).collect();
            let fence = Fence::new(vertices.clone()).unwrap();
            for (lat, lon) in points {
                prop_assert_eq!(fence.contains(lat, lon), naive(&vertices, lat, lon));
            }
        }
    }
}
