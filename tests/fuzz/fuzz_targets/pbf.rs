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

/// libFuzzer's panic hook aborts at once, before a panic can unwind. A panic raised inside
/// osmpbf or its protobuf runtime (osmpbf 0.3.8 unwraps a relation member type it does not
/// know, and multiplies dense node coordinates unchecked) must unwind instead, to the guard
/// every reader runs in (`dispatch-geo`'s `osm_pbf.rs`), which answers the file with an error:
/// the readers are then checked to answer, not to crash. A panic anywhere else still aborts.
fn let_decoder_panics_reach_the_guard() {
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

fuzz_target!(|data: &[u8]| {
    let_decoder_panics_reach_the_guard();
    let path = scratch();
    std::fs::write(path, data).expect("scratch file written");
    if let Ok(graph) = road::import_pbf(path) {
        assert!(graph.segment_count() > 0, "an imported graph has a road");
        for v in 0..u32::try_from(graph.node_count()).unwrap().min(64) {
            let (lat, lon) = graph.node_position(v);
            assert!(
                lat.is_finite() && lon.is_finite(),
                "node {v} at {lat}, {lon}"
            );
        }
    }
    let _ = geocode::import_pbf(path);
    if let Ok(extract) = tiles::extract_pbf(path) {
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
