//! PMTiles v3 files, as an agency would supply them for the basemap: opened (header, root
//! directory, metadata), described as `GET /api/map/info` does, and asked for tiles at every
//! zoom the header claims (descending into leaf directories). Property: an error, never a
//! panic, a hang or an allocation the file's size does not justify.

#![no_main]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use dispatch_geo::tiles::{PmTiles, TileId, MAX_ZOOM};
use dispatch_server::geo::basemap::TileSource;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("basemap.pmtiles");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("scratch file written");
    let Ok(pm) = PmTiles::open(path) else {
        return;
    };
    let pm = Arc::new(pm);
    let (min_zoom, max_zoom) = pm.zooms();
    let _ = pm.metadata_text("attribution");
    let _ = TileSource::PmTiles(pm.clone()).info();
    // The corners and the middle of every zoom the file claims, as the server would ask.
    for z in min_zoom..=max_zoom.min(MAX_ZOOM) {
        let last = (1u32 << z) - 1;
        for (x, y) in [(0, 0), (last, last), (last / 2, last / 2), (last, 0)] {
            let _ = pm.tile(TileId { z, x, y });
        }
    }
});
