//! OpenStreetMap PBF extracts through the three readers the server runs on its `map`: the road
//! graph import (with its contraction), the geocoder import and the basemap feature extraction,
//! plus one generated tile over what was extracted. Property: an error or a result, never a
//! panic or a hang. The readers take paths, so each input is written to a scratch file first.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use dispatch_geo::{geocode, road, tiles};
use libfuzzer_sys::fuzz_target;

/// The scratch file, in a directory that lives as long as the process.
fn scratch() -> &'static PathBuf {
    static FILE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("input.osm.pbf");
        (dir, path)
    });
    path
}

/// Known upstream bugs, found here: osmpbf 0.3.8 unwraps a relation member's type
/// (`Relation::members()` panics on a code it does not know) and multiplies dense node
/// coordinates unchecked (an overflow panic in a debug build, a wrapped coordinate in release).
/// Panics raised inside osmpbf or its protobuf runtime are let through (the server's start-up
/// then fails with the panic as its error); a panic anywhere else still aborts as libFuzzer
/// wants, and so fails the run.
fn allow_upstream_decoder_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let upstream = info
                .location()
                .is_some_and(|l| l.file().contains("/osmpbf-") || l.file().contains("/protobuf-"));
            if !upstream {
                abort(info);
            }
        }));
    });
}

/// Runs one reader; `None` when the decoder panicked (see above).
fn read<T>(reader: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(reader)).ok()
}

fuzz_target!(|data: &[u8]| {
    allow_upstream_decoder_panics();
    let path = scratch();
    std::fs::write(path, data).expect("scratch file written");
    if let Some(Ok(graph)) = read(|| road::import_pbf(path)) {
        assert!(graph.segment_count() > 0, "an imported graph has a road");
        for v in 0..u32::try_from(graph.node_count()).unwrap().min(64) {
            let (lat, lon) = graph.node_position(v);
            assert!(
                lat.is_finite() && lon.is_finite(),
                "node {v} at {lat}, {lon}"
            );
        }
    }
    let _ = read(|| geocode::import_pbf(path));
    if let Some(Ok(extract)) = read(|| tiles::extract_pbf(path)) {
        let [west, south, east, north] = extract.bounds;
        let set = tiles::TileSet::new(extract);
        // The tile at zoom 14 holding the middle of the data, when the bounds are a place.
        let (lat, lon) = ((south + north) / 2.0, (west + east) / 2.0);
        if (-85.0..=85.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
            let z = 14u8;
            let n = f64::from(1u32 << z);
            let x = ((lon + 180.0) / 360.0 * n).floor().clamp(0.0, n - 1.0);
            let y = ((1.0 - lat.to_radians().tan().asinh() / std::f64::consts::PI) / 2.0 * n)
                .floor()
                .clamp(0.0, n - 1.0);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let id = tiles::TileId {
                z,
                x: x as u32,
                y: y as u32,
            };
            let _ = set.render(id);
        }
    }
});
