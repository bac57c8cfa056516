//! The one guard around every read of an OpenStreetMap PBF extract: the decoder (osmpbf 0.3.8)
//! panics on some malformed files — it unwraps a relation member type it does not know, and
//! multiplies dense node coordinates unchecked (an overflow panic in a debug build). Such a
//! file is an error naming it, like any other unreadable file, not a crash of whoever reads it.

use std::any::Any;
use std::path::Path;

/// Runs `read` over the extract at `path`; a panic inside it becomes an error.
pub(crate) fn guarded<T>(
    path: &Path,
    read: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)).unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "{} is not a readable OpenStreetMap extract: its decoder failed ({})",
            path.display(),
            message(&*panic)
        ))
    })
}

fn message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::{geocode, road, tiles};

    /// The reproducers the fuzzer found (tests/fuzz/corpus/pbf).
    fn reproducer(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fuzz/corpus/pbf")
            .join(name)
    }

    #[test]
    fn an_unknown_relation_member_type_is_an_error_naming_the_file() {
        let path = reproducer("osmpbf-unknown-member-type.osm.pbf");
        let e = tiles::extract_pbf(&path).expect_err("an unreadable extract");
        let text = format!("{e:#}");
        assert!(
            text.contains("osmpbf-unknown-member-type.osm.pbf")
                && text.contains("not a readable OpenStreetMap extract"),
            "{text}"
        );
    }

    #[test]
    fn every_reader_answers_the_reproducers_without_a_panic() {
        for name in [
            "osmpbf-unknown-member-type.osm.pbf",
            "osmpbf-dense-overflow.osm.pbf",
        ] {
            let path = reproducer(name);
            // An answer, either way: the test fails only if a panic escapes.
            let _ = road::import_pbf(&path);
            let _ = geocode::import_pbf(&path);
            let _ = tiles::extract_pbf(&path);
        }
    }
}
