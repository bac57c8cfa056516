//! Web mercator tile math: longitude/latitude to "world" coordinates in 0..1 (y down), and the
//! z/x/y tile scheme (XYZ, as MapLibre requests it) over them.

use std::f64::consts::PI;

/// Latitude limit of web mercator: the world is square there.
pub const MAX_LAT: f64 = 85.051_128_779_806_6;

/// A point in world coordinates: x east, y south, both 0..1 across the whole map.
pub type World = [f64; 2];

/// Projects longitude and latitude (degrees) to world coordinates.
pub fn project(lon: f64, lat: f64) -> World {
    let lat = lat.clamp(-MAX_LAT, MAX_LAT).to_radians();
    let x = (lon + 180.0) / 360.0;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / PI) / 2.0;
    [x, y]
}

/// The tile holding a world point at zoom `z` (checks the tile math in tests).
#[cfg(test)]
pub fn tile_of(p: World, z: u8) -> (u32, u32) {
    let n = f64::from(1u32 << z);
    let max = (1u32 << z) - 1;
    let at = |v: f64| ((v * n).floor().max(0.0) as u32).min(max);
    (at(p[0]), at(p[1]))
}

/// Maps world points into one tile's coordinates, 0..`extent` across the tile.
#[derive(Debug, Clone, Copy)]
pub struct TileTransform {
    scale: f64,
    origin: World,
}

impl TileTransform {
    pub fn new(z: u8, x: u32, y: u32, extent: u32) -> Self {
        let n = f64::from(1u32 << z);
        Self {
            scale: n * f64::from(extent),
            origin: [f64::from(x) / n, f64::from(y) / n],
        }
    }

    pub fn apply(&self, p: World) -> [f64; 2] {
        [
            (p[0] - self.origin[0]) * self.scale,
            (p[1] - self.origin[1]) * self.scale,
        ]
    }

    /// World units per tile unit.
    pub fn world_per_unit(&self) -> f64 {
        1.0 / self.scale
    }

    /// The world box `[min_x, min_y, max_x, max_y]` of the tile grown by `buffer` tile units.
    pub fn world_box(&self, extent: u32, buffer: f64) -> [f64; 4] {
        let b = buffer / self.scale;
        let size = f64::from(extent) / self.scale;
        [
            self.origin[0] - b,
            self.origin[1] - b,
            self.origin[0] + size + b,
            self.origin[1] + size + b,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tiles() {
        // Helsinki railway square area; tile numbers from the OSM slippy-map formula.
        let p = project(24.9384, 60.1699);
        assert_eq!(tile_of(p, 15), (18653, 9484));
        assert_eq!(tile_of(p, 16), (37307, 18969));
        assert_eq!(tile_of(p, 0), (0, 0));
        assert_eq!(tile_of(project(0.0, 0.0), 1), (1, 1));
        assert_eq!(tile_of(project(-180.0, MAX_LAT), 5), (0, 0));
        assert_eq!(tile_of(project(180.0, -MAX_LAT), 5), (31, 31));
    }

    #[test]
    fn tile_transform() {
        let t = TileTransform::new(1, 1, 0, 4096);
        assert_eq!(t.apply([0.5, 0.0]), [0.0, 0.0]);
        assert_eq!(t.apply([1.0, 0.5]), [4096.0, 4096.0]);
        assert_eq!(t.world_box(4096, 0.0), [0.5, 0.0, 1.0, 0.5]);
    }
}
