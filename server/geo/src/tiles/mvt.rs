//! Mapbox Vector Tile 2.1 encoding by hand: protobuf varints and tags, zigzag-delta geometry
//! commands (MoveTo, LineTo, ClosePath) and per-layer key and value tables.

use std::collections::HashMap;

/// Tile coordinate units across one tile, as the spec recommends.
pub const EXTENT: u32 = 4096;

/// Appends `v` as a protobuf base-128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag encoding, so small negative deltas stay small varints.
pub(super) fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

/// Appends a field key (number and wire type).
pub(super) fn put_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from(field << 3 | wire_type));
}

/// Appends a length-delimited field.
pub(super) fn put_len(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_packed(out: &mut Vec<u8>, field: u32, values: &[u32]) {
    let mut packed = Vec::with_capacity(values.len() * 2);
    for v in values {
        put_varint(&mut packed, u64::from(*v));
    }
    put_len(out, field, &packed);
}

/// The geometry type of a feature (spec 4.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeomType {
    Point = 1,
    LineString = 2,
    Polygon = 3,
}

/// The command stream of one feature; the cursor carries over between parts, as the spec says.
#[derive(Debug, Default)]
pub struct Geometry {
    ints: Vec<u32>,
    cursor: [i32; 2],
}

impl Geometry {
    fn command(&mut self, id: u32, count: usize) {
        self.ints.push((id & 0x7) | ((count as u32) << 3));
    }

    fn to(&mut self, p: [i32; 2]) {
        self.ints.push(zigzag(p[0] - self.cursor[0]));
        self.ints.push(zigzag(p[1] - self.cursor[1]));
        self.cursor = p;
    }

    /// One point (a `MoveTo` of one).
    pub fn point(&mut self, p: [i32; 2]) {
        self.command(1, 1);
        self.to(p);
    }

    /// One line string part; `points` has at least two points.
    pub fn line(&mut self, points: &[[i32; 2]]) {
        self.command(1, 1);
        self.to(points[0]);
        self.command(2, points.len() - 1);
        for p in &points[1..] {
            self.to(*p);
        }
    }

    /// One ring given open (without the repeated first point), closed with `ClosePath`.
    pub fn ring(&mut self, points: &[[i32; 2]]) {
        self.line(points);
        self.command(7, 1);
    }

    pub fn is_empty(&self) -> bool {
        self.ints.is_empty()
    }
}

/// One layer being built: encoded features plus the key and value tables they index.
#[derive(Debug)]
pub struct LayerBuilder {
    name: &'static str,
    features: Vec<u8>,
    keys: Vec<String>,
    values: Vec<String>,
    key_index: HashMap<String, u32>,
    value_index: HashMap<String, u32>,
}

fn intern(table: &mut Vec<String>, index: &mut HashMap<String, u32>, s: &str) -> u32 {
    if let Some(i) = index.get(s) {
        return *i;
    }
    let i = table.len() as u32;
    table.push(s.to_owned());
    index.insert(s.to_owned(), i);
    i
}

impl LayerBuilder {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            features: Vec::new(),
            keys: Vec::new(),
            values: Vec::new(),
            key_index: HashMap::new(),
            value_index: HashMap::new(),
        }
    }

    /// Adds a feature with string properties; an empty geometry adds nothing.
    pub fn add(&mut self, kind: GeomType, geometry: &Geometry, props: &[(&str, &str)]) {
        if geometry.is_empty() {
            return;
        }
        let mut tags = Vec::with_capacity(props.len() * 2);
        for (k, v) in props {
            tags.push(intern(&mut self.keys, &mut self.key_index, k));
            tags.push(intern(&mut self.values, &mut self.value_index, v));
        }
        let mut feature = Vec::new();
        if !tags.is_empty() {
            put_packed(&mut feature, 2, &tags);
        }
        put_key(&mut feature, 3, 0);
        put_varint(&mut feature, kind as u64);
        put_packed(&mut feature, 4, &geometry.ints);
        put_len(&mut self.features, 2, &feature);
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Appends the layer to `tile` as a `Tile.layers` entry.
    pub fn finish_into(self, tile: &mut Vec<u8>) {
        let mut layer = Vec::with_capacity(self.features.len() + 64);
        put_len(&mut layer, 1, self.name.as_bytes());
        layer.extend_from_slice(&self.features);
        for k in &self.keys {
            put_len(&mut layer, 3, k.as_bytes());
        }
        for v in &self.values {
            let mut value = Vec::with_capacity(v.len() + 2);
            put_len(&mut value, 1, v.as_bytes());
            put_len(&mut layer, 4, &value);
        }
        put_key(&mut layer, 5, 0);
        put_varint(&mut layer, u64::from(EXTENT));
        put_key(&mut layer, 15, 0);
        put_varint(&mut layer, 2);
        put_len(tile, 3, &layer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn varints_and_zigzag() {
        assert_eq!(varint(0), [0]);
        assert_eq!(varint(1), [1]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(u64::MAX).len(), 10);
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i32::MAX), u32::MAX - 1);
        assert_eq!(zigzag(i32::MIN), u32::MAX);
    }

    /// The worked examples of the MVT 2.1 specification, section 4.3.5.
    #[test]
    fn spec_geometry_examples() {
        let mut g = Geometry::default();
        g.point([25, 17]);
        assert_eq!(g.ints, [9, 50, 34]);

        let mut g = Geometry::default();
        g.line(&[[2, 2], [2, 10], [10, 10]]);
        assert_eq!(g.ints, [9, 4, 4, 18, 0, 16, 16, 0]);

        let mut g = Geometry::default();
        g.line(&[[2, 2], [2, 10], [10, 10]]);
        g.line(&[[1, 1], [3, 5]]);
        assert_eq!(g.ints, [9, 4, 4, 18, 0, 16, 16, 0, 9, 17, 17, 10, 4, 8]);

        let mut g = Geometry::default();
        g.ring(&[[3, 6], [8, 12], [20, 34]]);
        assert_eq!(g.ints, [9, 6, 12, 18, 10, 12, 24, 44, 15]);
    }

    #[test]
    fn tile_bytes_of_one_point() {
        let mut g = Geometry::default();
        g.point([25, 17]);
        let mut layer = LayerBuilder::new("a");
        layer.add(GeomType::Point, &g, &[]);
        let mut tile = Vec::new();
        layer.finish_into(&mut tile);
        #[rustfmt::skip]
        let expected = [
            0x1a, 17, // Tile.layers, 17 bytes
            0x0a, 1, b'a', // name
            0x12, 7, 0x18, 1, 0x22, 3, 9, 50, 34, // feature: type POINT, geometry
            0x28, 0x80, 0x20, // extent 4096
            0x78, 2, // version 2
        ];
        assert_eq!(tile, expected);
    }

    #[test]
    fn tags_index_shared_tables() {
        let mut g = Geometry::default();
        g.point([1, 1]);
        let mut layer = LayerBuilder::new("roads");
        layer.add(GeomType::Point, &g, &[("class", "primary"), ("name", "A")]);
        layer.add(GeomType::Point, &g, &[("class", "primary")]);
        assert_eq!(layer.keys, ["class", "name"]);
        assert_eq!(layer.values, ["primary", "A"]);
        // The second feature's tags: packed [0, 0].
        assert!(layer.features.windows(4).any(|w| w == [0x12, 2, 0, 0]));
    }
}
