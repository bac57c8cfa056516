//! The self-served basemap: vector tiles cut from the agency's OpenStreetMap extract at start
//! (or read from an MBTiles or PMTiles file), a MapLibre style for them and a summary of the
//! map.

mod clip;
mod extract;
mod features;
mod mbtiles;
mod mercator;
mod mvt;
mod pmtiles;
mod render;
mod style;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::domain::Invalid;
pub use extract::{extract_pbf, Extract};
pub use features::Layer;
pub use mbtiles::MbTiles;
pub use pmtiles::PmTiles;
pub use render::TileSet;
pub use style::style;

/// Highest zoom served; MapLibre over-zooms beyond it.
pub const MAX_ZOOM: u8 = 18;
/// The attribution OpenStreetMap's licence (ODbL) requires wherever its data is shown.
pub const OSM_ATTRIBUTION: &str = "© OpenStreetMap contributors";
/// Path of a tile, with `{z}/{x}/{y}` placeholders as MapLibre expects (no file extension).
pub const TILE_PATH: &str = "/api/map/tiles/{z}/{x}/{y}";

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

/// Where tiles come from.
#[derive(Debug)]
pub enum TileSource {
    Generated(Arc<TileSet>),
    MbTiles(MbTiles),
    PmTiles(Arc<PmTiles>),
}

/// What `GET /api/map/info` reports.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MapInfo {
    /// `osm` (generated from the extract), `mbtiles` or `pmtiles`.
    pub source: &'static str,
    /// `[west, south, east, north]`, degrees.
    pub bounds: [f64; 4],
    /// `[lon, lat, zoom]`.
    pub center: [f64; 3],
    pub minzoom: u8,
    pub maxzoom: u8,
    pub attribution: String,
    pub tiles: &'static str,
    /// Features per layer (generated tiles only).
    pub feature_counts: Option<BTreeMap<&'static str, usize>>,
}

impl TileSource {
    /// The encoded tile (an empty body is a valid tile with no layers).
    ///
    /// # Errors
    /// When the MBTiles or PMTiles file cannot be read or the generating task fails.
    pub async fn tile(&self, id: TileId) -> anyhow::Result<Arc<[u8]>> {
        match self {
            Self::Generated(set) => {
                let set = set.clone();
                tokio::task::spawn_blocking(move || set.tile(id))
                    .await
                    .context("tile task")
            }
            Self::MbTiles(m) => Ok(m.tile(id).await.context("reading MBTiles")?.into()),
            Self::PmTiles(p) => {
                let p = p.clone();
                Ok(tokio::task::spawn_blocking(move || p.tile(id))
                    .await
                    .context("tile task")?
                    .context("reading PMTiles")?
                    .into())
            }
        }
    }

    pub fn info(&self) -> MapInfo {
        match self {
            Self::Generated(set) => {
                let e = set.extract();
                let [w, s, east, n] = e.bounds;
                MapInfo {
                    source: "osm",
                    bounds: e.bounds,
                    center: [(w + east) / 2.0, (s + n) / 2.0, 14.0],
                    minzoom: 0,
                    maxzoom: MAX_ZOOM,
                    attribution: OSM_ATTRIBUTION.to_owned(),
                    tiles: TILE_PATH,
                    feature_counts: Some(
                        e.layers.iter().map(|(l, f)| (l.name(), f.len())).collect(),
                    ),
                }
            }
            Self::MbTiles(m) => {
                let bounds = m
                    .numbers::<4>("bounds")
                    .unwrap_or([-180.0, -85.0, 180.0, 85.0]);
                let [w, s, east, n] = bounds;
                MapInfo {
                    source: "mbtiles",
                    bounds,
                    center: m.numbers::<3>("center").unwrap_or([
                        (w + east) / 2.0,
                        (s + n) / 2.0,
                        12.0,
                    ]),
                    minzoom: m.zoom("minzoom").unwrap_or(0),
                    maxzoom: m.zoom("maxzoom").unwrap_or(14).min(MAX_ZOOM),
                    attribution: m
                        .metadata
                        .get("attribution")
                        .cloned()
                        .unwrap_or_else(|| OSM_ATTRIBUTION.to_owned()),
                    tiles: TILE_PATH,
                    feature_counts: None,
                }
            }
            Self::PmTiles(p) => {
                let (minzoom, maxzoom) = p.zooms();
                MapInfo {
                    source: "pmtiles",
                    bounds: p.bounds(),
                    center: p.center(),
                    minzoom,
                    maxzoom: maxzoom.min(MAX_ZOOM),
                    attribution: p
                        .metadata_text("attribution")
                        .unwrap_or_else(|| OSM_ATTRIBUTION.to_owned()),
                    tiles: TILE_PATH,
                    feature_counts: None,
                }
            }
        }
    }
}

/// The tile source the configuration asks for: `tiles_mbtiles` or `tiles_pmtiles` if set (not
/// both), else tiles generated from `map`; `None` when none is set. Generation runs off the
/// async threads.
///
/// # Errors
/// When both files are named or the file cannot be read.
pub async fn load(config: &Config) -> anyhow::Result<Option<Arc<TileSource>>> {
    let started = std::time::Instant::now();
    if let Some(path) = config.tiles_pmtiles.clone() {
        anyhow::ensure!(
            config.tiles_mbtiles.is_none(),
            "both `tiles_mbtiles` and `tiles_pmtiles` are set: name one basemap file"
        );
        let shown = path.display().to_string();
        let p = tokio::task::spawn_blocking(move || PmTiles::open(&path)).await??;
        tracing::info!(pmtiles = %shown, "basemap tiles served from PMTiles");
        return Ok(Some(Arc::new(TileSource::PmTiles(Arc::new(p)))));
    }
    if let Some(path) = &config.tiles_mbtiles {
        let m = MbTiles::open(path).await?;
        tracing::info!(mbtiles = %path.display(), "basemap tiles served from MBTiles");
        return Ok(Some(Arc::new(TileSource::MbTiles(m))));
    }
    let Some(path) = config.map.clone() else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    let extract = tokio::task::spawn_blocking(move || extract_pbf(&path))
        .await?
        .with_context(|| format!("extracting basemap from {shown}"))?;
    let counts: Vec<String> = extract
        .layers
        .iter()
        .map(|(l, f)| format!("{}={}", l.name(), f.len()))
        .collect();
    tracing::info!(
        map = %shown,
        features = %counts.join(" "),
        ms = started.elapsed().as_millis(),
        "basemap features extracted"
    );
    Ok(Some(Arc::new(TileSource::Generated(Arc::new(
        TileSet::new(extract),
    )))))
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
