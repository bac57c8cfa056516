//! MBTiles files (SQLite) as an agency would supply them for the basemap: opened read-only
//! (the `tiles` table checked, `metadata` read), described as `GET /api/map/info` does, and
//! asked for a few tiles. Property: an error, never a panic or a hang. SQLite itself is C and
//! not instrumented here; what is fuzzed is the server's handling of whatever it answers.

#![no_main]

use std::sync::{Arc, OnceLock};

use dispatch_geo::tiles::{MbTiles, TileId};
use dispatch_server::geo::basemap::TileSource;
use libfuzzer_sys::fuzz_target;

struct Scratch {
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| Scratch {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime"),
        dir: tempfile::tempdir().expect("temporary directory"),
    })
}

fuzz_target!(|data: &[u8]| {
    let scratch = scratch();
    // A new name each time: the previous file's connection may still be closing.
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = scratch.dir.path().join(format!("{run}.mbtiles"));
    std::fs::write(&path, data).expect("scratch file written");
    if let Ok(m) = MbTiles::open(&path) {
        for (z, x, y) in [(0, 0, 0), (1, 1, 0), (14, 9326, 4739), (14, 0, 16383)] {
            let _ = m.tile(TileId { z, x, y });
        }
        let _ = m.numbers::<4>("bounds");
        let source = TileSource::MbTiles(Arc::new(m));
        let _ = source.info();
        let _ = scratch
            .runtime
            .block_on(source.tile(TileId { z: 0, x: 0, y: 0 }));
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
});
