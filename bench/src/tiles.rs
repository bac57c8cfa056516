//! Basemap tiles from an agency's PMTiles file: our reader (positional reads, in
//! `dispatch-geo`) beside the maintained `pmtiles` crate's reader (async, memory-mapped) on the
//! same file, written by that crate from the Helsinki tiles we generate. Both must return the
//! same bytes for every tile; the rows give the time per tile read.

use std::path::Path;
use std::time::Instant;

use dispatch_geo::tiles::{extract_pbf, PmTiles, TileId, TileSet};
use pmtiles::{AsyncPmTilesReader, PmTilesWriter, TileCoord, TileType};

use crate::stats::{ratio, show, Row, Samples};

/// Zoom levels of the written archive: the city's streets to its house numbers.
const ZOOMS: std::ops::RangeInclusive<u8> = 10..=17;

/// The tiles covering `[west, south, east, north]` at zoom `z` (Web Mercator, y from the north).
fn covering([w, s, e, n]: [f64; 4], z: u8) -> Vec<TileId> {
    let scale = f64::from(1u32 << z);
    let x = |lon: f64| ((lon + 180.0) / 360.0 * scale).floor() as u32;
    let y = |lat: f64| {
        let r = lat.to_radians();
        ((1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * scale).floor() as u32
    };
    (x(w)..=x(e))
        .flat_map(|tx| (y(n)..=y(s)).map(move |ty| TileId { z, x: tx, y: ty }))
        .collect()
}

/// Writes the Helsinki tiles into a PMTiles file with the `pmtiles` crate, then reads every
/// tile `passes` times with each reader.
pub async fn run(pbf: &Path, passes: usize) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("helsinki.pmtiles");
    let set = TileSet::new(extract_pbf(pbf)?);
    let bounds = set.extract().bounds;
    let ids: Vec<TileId> = ZOOMS.flat_map(|z| covering(bounds, z)).collect();
    let mut writer = PmTilesWriter::new(TileType::Mvt)
        .min_zoom(*ZOOMS.start())
        .max_zoom(*ZOOMS.end())
        .bounds(bounds[0], bounds[1], bounds[2], bounds[3])
        .create(std::fs::File::create(&path)?)?;
    let mut written = 0;
    for id in &ids {
        let tile = set.render(*id);
        if !tile.is_empty() {
            writer.add_tile(TileCoord::new(id.z, id.x, id.y)?, &tile)?;
            written += 1;
        }
    }
    writer.finalize()?;

    let ours = PmTiles::open(&path)?;
    let theirs = AsyncPmTilesReader::new_with_path(&path).await?;
    // Same bytes from both for every tile, and a tile wherever one was written.
    let mut found = 0;
    for id in &ids {
        let a = ours.tile(*id)?;
        let b = theirs.get_tile(TileCoord::new(id.z, id.x, id.y)?).await?;
        anyhow::ensure!(
            a == b.as_deref().unwrap_or_default(),
            "the readers disagree on tile {id:?}"
        );
        found += usize::from(!a.is_empty());
    }
    anyhow::ensure!(
        found == written,
        "{written} tiles written, {found} read back"
    );

    let (mut mine, mut crate_reads) = (Samples::default(), Samples::default());
    for _ in 0..passes {
        for id in &ids {
            let t0 = Instant::now();
            std::hint::black_box(ours.tile(*id)?);
            mine.push(t0.elapsed());
            let coord = TileCoord::new(id.z, id.x, id.y)?;
            let t0 = Instant::now();
            std::hint::black_box(theirs.get_tile(coord).await?);
            crate_reads.push(t0.elapsed());
        }
    }
    let bytes = std::fs::metadata(&path)?.len();
    let what = |p: &str| {
        format!(
            "PMTiles tile read {p}, {written} Helsinki tiles z{}–{} ({} kB file), {} reads",
            ZOOMS.start(),
            ZOOMS.end(),
            bytes / 1024,
            mine.len()
        )
    };
    let row = |p: usize| Row {
        what: what(&format!("p{p}")),
        ours: show(mine.percentile(p)),
        peer: format!(
            "{} (`pmtiles` crate, mmap)",
            show(crate_reads.percentile(p))
        ),
        ratio: ratio(crate_reads.percentile(p), mine.percentile(p)),
        target: "same bytes from both (checked)".into(),
    };
    Ok(vec![row(50), row(99)])
}
