//! The fonts map labels are drawn with: Noto Sans, then Noto Sans KR for what it lacks (the
//! repository's `data/fonts/`, built into the binary so a closed network needs no font
//! server), and the glyph ranges rendered from them, kept for the next console that asks.

use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use dispatch_geo::tiles::GlyphStack;
use lru::LruCache;

/// The one font stack the basemap style names (`text-font`).
pub const FONT_STACK: &str = "Noto Sans Regular";
/// Ranges kept rendered: every Latin range and the Hangul ones a city's names use, at up to a
/// few hundred kB each.
const CACHED_RANGES: NonZeroUsize = NonZeroUsize::new(64).expect("not zero");

static STACK: LazyLock<GlyphStack> = LazyLock::new(|| {
    GlyphStack::new(
        FONT_STACK,
        &[
            include_bytes!("../../../data/fonts/NotoSans-Regular.ttf"),
            include_bytes!("../../../data/fonts/NotoSansKR-Regular.otf"),
        ],
    )
    .expect("the fonts built into the binary are readable")
});

static RANGES: LazyLock<Mutex<LruCache<u32, Arc<[u8]>>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(CACHED_RANGES)));

/// The encoded glyph range starting at `start` (checked by `dispatch_geo::tiles::parse_range`).
/// CPU work on a first request: call it off the async threads.
pub fn glyph_range(start: u32) -> Arc<[u8]> {
    let cached = RANGES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&start)
        .cloned();
    if let Some(range) = cached {
        return range;
    }
    let range: Arc<[u8]> = STACK.range(start).into();
    RANGES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .put(start, range.clone());
    range
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_rendered_once_and_then_served_from_the_cache() {
        let first = glyph_range(0xB000);
        assert!(
            first.len() > 10_000,
            "{} bytes for 256 syllables",
            first.len()
        );
        assert!(Arc::ptr_eq(&first, &glyph_range(0xB000)));
    }
}
