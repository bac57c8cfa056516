//! The self-served basemap: vector tiles cut from the agency's OpenStreetMap extract (or read
//! from an MBTiles or PMTiles file) addressed in the XYZ scheme.

mod clip;
mod extract;
mod features;
mod glyphs;
mod mbtiles;
mod mercator;
mod pbf;
mod pmtiles;
mod render;

use crate::Invalid;
pub use extract::{extract_pbf, Extract};
pub use features::Layer;
pub use glyphs::{parse_range, GlyphStack, RANGE_SIZE};
pub use mbtiles::MbTiles;
pub use pmtiles::PmTiles;
pub use render::TileSet;

/// Highest zoom served; MapLibre over-zooms beyond it.
pub const MAX_ZOOM: u8 = 18;
/// The attribution OpenStreetMap's licence (ODbL) requires wherever its data is shown.
pub const OSM_ATTRIBUTION: &str = "© OpenStreetMap contributors";

/// A tile address in the XYZ scheme (y counted from the north).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    /// Checks path segments: `z` 0 to [`MAX_ZOOM`], `x` and `y` below 2^z.
    ///
    /// # Errors
    /// Names the first segment that is not a whole number in range.
    pub fn parse(z: &str, x: &str, y: &str) -> Result<Self, Invalid> {
        let z: u8 = z.parse().ok().filter(|z| *z <= MAX_ZOOM).ok_or_else(|| {
            Invalid::field("z", format!("must be a whole number 0 to {MAX_ZOOM}"))
        })?;
        let n = 1u32 << z;
        let coordinate = |name: &str, v: &str| {
            v.parse::<u32>().ok().filter(|v| *v < n).ok_or_else(|| {
                Invalid::field(
                    name,
                    format!("must be a whole number 0 to {} at zoom {z}", n - 1),
                )
            })
        };
        Ok(Self {
            z,
            x: coordinate("x", x)?,
            y: coordinate("y", y)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_ids_are_checked() {
        assert_eq!(
            TileId::parse("15", "18653", "9484").unwrap(),
            TileId {
                z: 15,
                x: 18653,
                y: 9484
            }
        );
        assert_eq!(
            TileId::parse("0", "0", "0").unwrap(),
            TileId { z: 0, x: 0, y: 0 }
        );
        let e = |z, x, y| TileId::parse(z, x, y).unwrap_err().0;
        assert!(e("19", "0", "0").starts_with("`z`"));
        assert!(e("a", "0", "0").starts_with("`z`"));
        assert!(e("1", "2", "0").starts_with("`x`"), "{}", e("1", "2", "0"));
        assert!(e("1", "0", "-1").starts_with("`y`"));
        assert!(e("18", "0", "262144").starts_with("`y`"));
    }
}
