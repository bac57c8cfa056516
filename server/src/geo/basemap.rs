//! The basemap the server serves: where its tiles come from (generated from the extract, an
//! MBTiles or a PMTiles file, as configured), read off the async threads, and the summary
//! `GET /api/map/info` reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use dispatch_geo::tiles::{
    extract_pbf, MbTiles, PmTiles, TileId, TileSet, MAX_ZOOM, OSM_ATTRIBUTION,
};
use serde::Serialize;

use crate::config::Config;

/// Path of a tile, with `{z}/{x}/{y}` placeholders as MapLibre expects (no file extension).
pub const TILE_PATH: &str = "/api/map/tiles/{z}/{x}/{y}";

/// Where tiles come from.
#[derive(Debug)]
pub enum TileSource {
    Generated(Arc<TileSet>),
    MbTiles(Arc<MbTiles>),
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
            Self::MbTiles(m) => {
                let m = m.clone();
                Ok(tokio::task::spawn_blocking(move || m.tile(id))
                    .await
                    .context("tile task")?
                    .context("reading MBTiles")?
                    .into())
            }
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
        let shown = path.display().to_string();
        let path = path.clone();
        let m = tokio::task::spawn_blocking(move || MbTiles::open(&path)).await??;
        tracing::info!(mbtiles = %shown, "basemap tiles served from MBTiles");
        return Ok(Some(Arc::new(TileSource::MbTiles(Arc::new(m)))));
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
