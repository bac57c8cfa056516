//! Glyphs for map labels, in the format MapLibre asks a style's `glyphs` URL for: signed
//! distance fields of 256 code points at a time, 24 px em, 3 px buffer, encoded as the
//! `llmr.glyphs` protobuf. Rendered from the fonts the product ships (a stack of faces: the
//! first that has a character draws it), never fetched from anywhere.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use sdf_glyph_renderer::{clamp_to_u8, BitmapGlyph};

use super::pbf::{put_key, put_len, put_varint, zigzag};
use crate::Invalid;

/// Em size the distance fields are drawn at, as MapLibre expects.
const EM_PX: f32 = 24.0;
/// Pixels of field around each glyph.
const BUFFER: usize = 3;
/// How far out from the outline distances are recorded, pixels.
const RADIUS: usize = 8;
/// Where the outline sits in the 0–255 range (0.25: at 191).
const CUTOFF: f64 = 0.25;
/// Code points in one range, and the highest range start (the Basic Multilingual Plane).
pub const RANGE_SIZE: u32 = 256;
const LAST_RANGE_START: u32 = 0xFF00;

/// An ordered stack of font faces.
#[derive(Debug)]
pub struct GlyphStack {
    name: &'static str,
    faces: Vec<FontRef<'static>>,
}

impl GlyphStack {
    /// The stack called `name` (as a style's `text-font` names it) of `faces`, first first.
    ///
    /// # Errors
    /// When a face is not a font ab_glyph can read (TrueType or CFF OpenType).
    pub fn new(name: &'static str, faces: &[&'static [u8]]) -> anyhow::Result<Self> {
        let faces = faces
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                FontRef::try_from_slice(bytes)
                    .map_err(|e| anyhow::anyhow!("face {i} of the {name} glyph stack: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { name, faces })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The encoded range of 256 code points from `start` (a multiple of 256); characters no
    /// face has are left out, as MapLibre expects.
    pub fn range(&self, start: u32) -> Vec<u8> {
        let end = start + RANGE_SIZE - 1;
        let mut stack = Vec::new();
        put_len(&mut stack, 1, self.name.as_bytes());
        put_len(&mut stack, 2, format!("{start}-{end}").as_bytes());
        for code in start..=end {
            if let Some(glyph) = char::from_u32(code).and_then(|c| self.glyph(c)) {
                put_len(&mut stack, 3, &glyph);
            }
        }
        let mut out = Vec::with_capacity(stack.len() + 8);
        put_len(&mut out, 1, &stack);
        out
    }

    /// One encoded `glyph` message, from the first face that has `c`.
    fn glyph(&self, c: char) -> Option<Vec<u8>> {
        let face = self.faces.iter().find(|f| f.glyph_id(c).0 != 0)?;
        let units_per_em = face.units_per_em()?;
        // ab_glyph scales by ascent minus descent; MapLibre's 24 px is the em.
        let scale = PxScale::from(EM_PX * face.height_unscaled() / units_per_em);
        let scaled = face.as_scaled(scale);
        let id = face.glyph_id(c);
        let ascender = scaled.ascent().round() as i32;
        let advance = scaled.h_advance(id).round().max(0.0) as u32;
        let (mut width, mut height, mut left, mut top, mut bitmap) = (0u32, 0u32, 0, 0, Vec::new());
        if let Some(outline) = face.outline_glyph(id.with_scale(scale)) {
            let bounds = outline.px_bounds();
            let (w, h) = (bounds.width() as usize, bounds.height() as usize);
            if w > 0 && h > 0 {
                let mut coverage = vec![0u8; w * h];
                outline.draw(|x, y, c| {
                    coverage[y as usize * w + x as usize] = (c.clamp(0.0, 1.0) * 255.0) as u8;
                });
                let field = BitmapGlyph::from_unbuffered(&coverage, w, h, BUFFER)
                    .ok()?
                    .render_sdf(RADIUS);
                bitmap = clamp_to_u8(&field, CUTOFF).ok()?;
                (width, height) = (u32::try_from(w).ok()?, u32::try_from(h).ok()?);
                left = bounds.min.x as i32;
                // Pixels from the baseline up to the glyph's top (y grows down here).
                top = -(bounds.min.y as i32);
            }
        }
        let mut out = Vec::with_capacity(bitmap.len() + 24);
        put_key(&mut out, 1, 0);
        put_varint(&mut out, u64::from(u32::from(c)));
        if !bitmap.is_empty() {
            put_len(&mut out, 2, &bitmap);
        }
        for (field, value) in [(3, width), (4, height)] {
            put_key(&mut out, field, 0);
            put_varint(&mut out, u64::from(value));
        }
        for (field, value) in [(5, left), (6, top - ascender)] {
            put_key(&mut out, field, 0);
            put_varint(&mut out, u64::from(zigzag(value)));
        }
        put_key(&mut out, 7, 0);
        put_varint(&mut out, u64::from(advance));
        Some(out)
    }
}

/// The start of a range written `START-END` as MapLibre asks for it (`0-255`, `44032-44287`).
///
/// # Errors
/// Unless START is a multiple of 256 up to 65280 and END is START + 255.
pub fn parse_range(text: &str) -> Result<u32, Invalid> {
    let bad = || {
        Invalid::field(
            "range",
            format!("must be START-END with START a multiple of 256 up to {LAST_RANGE_START} and END = START + 255, not {text:?}"),
        )
    };
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let (start, end): (u32, u32) = (
        start.parse().map_err(|_| bad())?,
        end.parse().map_err(|_| bad())?,
    );
    if !start.is_multiple_of(RANGE_SIZE)
        || start > LAST_RANGE_START
        || end != start + RANGE_SIZE - 1
    {
        return Err(bad());
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTO_SANS: &[u8] = include_bytes!("../../../../data/fonts/NotoSans-Regular.ttf");
    const NOTO_SANS_KR: &[u8] = include_bytes!("../../../../data/fonts/NotoSansKR-Regular.otf");

    /// A decoded message: each field's number and its varint or bytes.
    type Message = Vec<(u32, Result<u64, Vec<u8>>)>;

    /// Reads a protobuf message's fields.
    fn fields(mut b: &[u8]) -> Message {
        let varint = |b: &mut &[u8]| {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return v;
                }
            }
        };
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let field = u32::try_from(key >> 3).unwrap();
            if key & 7 == 2 {
                let len = usize::try_from(varint(&mut b)).unwrap();
                out.push((field, Err(b[..len].to_vec())));
                b = &b[len..];
            } else {
                out.push((field, Ok(varint(&mut b))));
            }
        }
        out
    }

    fn glyphs_of(range: &[u8]) -> (String, Vec<Message>) {
        let [(1, Err(stack))] = &fields(range)[..] else {
            panic!("one stack")
        };
        let stack = fields(stack);
        let text = |f: u32| match &stack.iter().find(|(n, _)| *n == f).unwrap().1 {
            Err(b) => String::from_utf8(b.clone()).unwrap(),
            Ok(_) => panic!("a string"),
        };
        assert_eq!(text(1), "Dispatch");
        let glyphs = stack
            .iter()
            .filter(|(n, _)| *n == 3)
            .map(|(_, g)| fields(g.as_ref().unwrap_err()))
            .collect();
        (text(2), glyphs)
    }

    fn value(glyph: &Message, field: u32) -> u64 {
        *glyph
            .iter()
            .find(|(n, _)| *n == field)
            .unwrap()
            .1
            .as_ref()
            .unwrap()
    }

    #[test]
    fn latin_and_hangul_come_from_the_face_that_has_them() {
        let stack = GlyphStack::new("Dispatch", &[NOTO_SANS, NOTO_SANS_KR]).unwrap();
        let (range, latin) = glyphs_of(&stack.range(0));
        assert_eq!(range, "0-255");
        let a = latin
            .iter()
            .find(|g| value(g, 1) == u64::from('A'))
            .expect("A is drawn");
        let (width, height) = (value(a, 3), value(a, 4));
        assert!(
            (10..=20).contains(&width) && (14..=20).contains(&height),
            "{width}x{height}"
        );
        let bitmap = a
            .iter()
            .find(|(n, _)| *n == 2)
            .unwrap()
            .1
            .as_ref()
            .unwrap_err();
        assert_eq!(
            bitmap.len() as u64,
            (width + 6) * (height + 6),
            "buffered by 3 px"
        );
        assert!(
            bitmap.iter().any(|&v| v > 191) && bitmap.iter().any(|&v| v < 191),
            "a field"
        );
        let space = latin
            .iter()
            .find(|g| value(g, 1) == u64::from(' '))
            .expect("space");
        assert!(
            value(space, 7) > 0 && !space.iter().any(|(n, _)| *n == 2),
            "advance only"
        );

        let (range, hangul) = glyphs_of(&stack.range(0xAC00));
        assert_eq!(range, "44032-44287");
        assert_eq!(hangul.len(), 256, "every syllable of the range");
        assert!(
            hangul.iter().all(|g| value(g, 7) >= 20),
            "full-width advances"
        );
        // A range no face covers is an empty stack, not an error.
        assert!(glyphs_of(&stack.range(0x0E00)).1.is_empty());
    }

    #[test]
    fn ranges_are_checked() {
        assert_eq!(parse_range("0-255"), Ok(0));
        assert_eq!(parse_range("65280-65535"), Ok(65280));
        for bad in [
            "",
            "0",
            "1-256",
            "256-255",
            "65536-65791",
            "a-b",
            "0-255.pbf",
        ] {
            assert!(
                parse_range(bad).unwrap_err().0.starts_with("`range`"),
                "{bad}"
            );
        }
    }
}
