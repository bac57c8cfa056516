//! Cutting features into one Mapbox Vector Tile: project into tile units, clip to the tile plus
//! a buffer, simplify at low zoom, round, fix ring winding, and a bounded cache of the results.
//! The encoding itself is geozero's (geo-types geometries into prost messages): our own encoder
//! was no faster on the Helsinki tiles (bench/RESULTS.md), so the maintained one is used.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use geo_types::{Coord, Geometry, LineString, MultiLineString, MultiPolygon, Point, Polygon};
use geozero::mvt::{tile, Message, TagsBuilder, Tile, TileValue};
use geozero::ToMvt;
use lru::LruCache;

use super::clip::{clip_line, clip_ring, simplify, Pt};
use super::extract::Extract;
use super::features::{Feature, Shape};
use super::mercator::TileTransform;
use super::TileId;

/// Tile coordinate units across one tile, as the MVT specification recommends.
pub const EXTENT: u32 = 4096;

/// Tile units drawn beyond each edge, so line caps and fills join across tiles.
pub const BUFFER: f64 = 64.0;
/// Tiles kept in memory; at tens of kB each, this is tens of MB at most.
const CACHE_TILES: NonZeroUsize = NonZeroUsize::new(2048).expect("not zero");
/// Areas smaller than this many tile units across are left out (an eighth of a pixel or less).
const MIN_AREA_SIZE: f64 = 4.0;

/// Features of a map extract, cut into tiles on request.
#[derive(Debug)]
pub struct TileSet {
    extract: Extract,
    /// Least recently used out first: consoles show a few areas, asked again and again.
    cache: Mutex<LruCache<TileId, Arc<[u8]>>>,
}

impl TileSet {
    pub fn new(extract: Extract) -> Self {
        Self {
            extract,
            cache: Mutex::new(LruCache::new(CACHE_TILES)),
        }
    }

    pub fn extract(&self) -> &Extract {
        &self.extract
    }

    /// The encoded tile, from the cache or generated (CPU work: call off the async threads).
    pub fn tile(&self, id: TileId) -> Arc<[u8]> {
        if let Some(t) = self.lock().get(&id) {
            return t.clone();
        }
        let tile: Arc<[u8]> = self.render(id).into();
        self.lock().put(id, tile.clone());
        tile
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<TileId, Arc<[u8]>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes tile `id`; empty layers are left out, so a tile off the data is zero bytes.
    pub fn render(&self, id: TileId) -> Vec<u8> {
        let t = TileTransform::new(id.z, id.x, id.y, EXTENT);
        let window = t.world_box(EXTENT, BUFFER);
        let tolerance = if id.z >= 16 { 0.0 } else { 2.0 };
        let mut tile = Tile::default();
        for (layer, features) in &self.extract.layers {
            let mut tags = TagsBuilder::new();
            let mut encoded = Vec::new();
            for f in features {
                if f.min_zoom > id.z || !f.intersects(&window) {
                    continue;
                }
                // `cut` leaves no line under two points and no ring under three, the only
                // geometries the encoder refuses.
                let Some(Ok(mut feature)) = cut(f, &t, tolerance).map(|g| g.to_mvt_unscaled())
                else {
                    continue;
                };
                for (key, value) in &f.props {
                    let (k, v) = tags.insert_ref(key, TileValue::Str(value.clone()));
                    feature.tags.extend([k, v]);
                }
                encoded.push(feature);
            }
            if !encoded.is_empty() {
                let (keys, values) = tags.into_tags();
                tile.layers.push(tile::Layer {
                    version: 2,
                    name: layer.name().to_owned(),
                    features: encoded,
                    keys,
                    values: values.into_iter().map(Into::into).collect(),
                    extent: Some(EXTENT),
                });
            }
        }
        if tile.layers.is_empty() {
            Vec::new()
        } else {
            tile.encode_to_vec()
        }
    }
}

const LO: f64 = -BUFFER;
const HI: f64 = EXTENT as f64 + BUFFER;

/// A line of whole tile units (a ring is closed by `Polygon::new`).
fn line_of(points: &[[i32; 2]]) -> LineString<f64> {
    points
        .iter()
        .map(|p| Coord {
            x: f64::from(p[0]),
            y: f64::from(p[1]),
        })
        .collect()
}

/// The feature's geometry in this tile, in whole tile units, or `None` when nothing of it
/// shows.
fn cut(f: &Feature, t: &TileTransform, tolerance: f64) -> Option<Geometry<f64>> {
    match &f.shape {
        Shape::Point(p) => {
            let [x, y] = t.apply(*p);
            // Only in the tile proper, so the console does not draw a label twice.
            if !(0.0..EXTENT as f64).contains(&x) || !(0.0..EXTENT as f64).contains(&y) {
                return None;
            }
            Some(Geometry::Point(Point::new(x.floor(), y.floor())))
        }
        Shape::Line(points) => {
            let pts: Vec<Pt> = points.iter().map(|p| t.apply(*p)).collect();
            let mut parts: Vec<LineString<f64>> = clip_line(&pts, LO, HI)
                .iter()
                .map(|part| round(&simplify(part, tolerance)))
                .filter(|part| part.len() >= 2)
                .map(|part| line_of(&part))
                .collect();
            match parts.len() {
                0 => None,
                1 => parts.pop().map(Geometry::LineString),
                _ => Some(Geometry::MultiLineString(MultiLineString(parts))),
            }
        }
        Shape::Area(rings) => {
            let size = (f.bbox[2] - f.bbox[0]).max(f.bbox[3] - f.bbox[1]) / t.world_per_unit();
            if size < MIN_AREA_SIZE {
                return None;
            }
            // Each kept outer ring with the holes that follow it.
            let mut polygons: Vec<(LineString<f64>, Vec<LineString<f64>>)> = Vec::new();
            let mut outer_kept = false;
            for ring in rings {
                if !ring.outer && !outer_kept {
                    continue;
                }
                let pts: Vec<Pt> = ring.points.iter().map(|p| t.apply(*p)).collect();
                let mut pts = round(&simplify(&clip_ring(&pts, LO, HI), tolerance));
                while pts.len() > 1 && pts.first() == pts.last() {
                    pts.pop();
                }
                let area = signed_area(&pts);
                if pts.len() < 3 || area == 0 {
                    if ring.outer {
                        outer_kept = false;
                    }
                    continue;
                }
                // Exterior rings have positive area in tile coordinates (y down), holes negative.
                if (area > 0) != ring.outer {
                    pts.reverse();
                }
                if ring.outer {
                    polygons.push((line_of(&pts), Vec::new()));
                    outer_kept = true;
                } else if let Some((_, holes)) = polygons.last_mut() {
                    holes.push(line_of(&pts));
                }
            }
            let mut polygons: Vec<Polygon<f64>> = polygons
                .into_iter()
                .map(|(outer, holes)| Polygon::new(outer, holes))
                .collect();
            match polygons.len() {
                0 => None,
                1 => polygons.pop().map(Geometry::Polygon),
                _ => Some(Geometry::MultiPolygon(MultiPolygon(polygons))),
            }
        }
    }
}

/// Rounds to whole tile units and drops repeated points.
fn round(points: &[Pt]) -> Vec<[i32; 2]> {
    let mut out: Vec<[i32; 2]> = Vec::with_capacity(points.len());
    for p in points {
        let q = [p[0].round() as i32, p[1].round() as i32];
        if out.last() != Some(&q) {
            out.push(q);
        }
    }
    out
}

/// Twice the signed area by the surveyor's formula.
fn signed_area(ring: &[[i32; 2]]) -> i64 {
    let mut sum = 0i64;
    for (i, a) in ring.iter().enumerate() {
        let b = ring[(i + 1) % ring.len()];
        sum += i64::from(a[0]) * i64::from(b[1]) - i64::from(b[0]) * i64::from(a[1]);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::super::features::{Layer, Ring};
    use super::super::mercator::project;
    use super::*;

    fn set(features: Vec<(Layer, Feature)>) -> TileSet {
        let mut layers: Vec<(Layer, Vec<Feature>)> =
            Layer::ALL.iter().map(|l| (*l, Vec::new())).collect();
        for (l, f) in features {
            layers[l as usize].1.push(f);
        }
        TileSet::new(Extract {
            layers,
            bounds: [0.0; 4],
        })
    }

    #[test]
    fn winding_is_fixed_and_tiles_are_cached() {
        // A counter-clockwise (in y-down terms: negative area) square within tile 0/0/0.
        let ring = vec![[0.25, 0.25], [0.25, 0.75], [0.75, 0.75], [0.75, 0.25]];
        let f = Feature::new(
            Shape::Area(vec![Ring {
                points: ring,
                outer: true,
            }]),
            vec![("class", "water".into())],
            0,
        );
        let tiles = set(vec![(Layer::Water, f)]);
        let id = TileId { z: 0, x: 0, y: 0 };
        let Some(Geometry::Polygon(polygon)) = cut(
            &tiles.extract.layers[0].1[0],
            &TileTransform::new(0, 0, 0, EXTENT),
            0.0,
        ) else {
            panic!("no polygon");
        };
        let exterior: Vec<[i32; 2]> = polygon.exterior().0[1..]
            .iter()
            .map(|c| [c.x as i32, c.y as i32])
            .collect();
        assert!(
            signed_area(&exterior) > 0,
            "{exterior:?} winds as an exterior"
        );
        let a = tiles.tile(id);
        assert!(Arc::ptr_eq(&a, &tiles.tile(id)));
        assert_eq!(signed_area(&[[0, 0], [10, 0], [10, 10], [0, 10]]), 200);
    }

    /// The point example of the MVT 2.1 specification (section 4.3.5): `MoveTo(25, 17)`.
    #[test]
    fn a_point_is_encoded_as_the_specification_shows() {
        let unit = 1.0 / f64::from(EXTENT);
        let p = [25.5 * unit, 17.5 * unit];
        let label = Feature::new(Shape::Point(p), vec![("name", "x".into())], 0);
        let tile =
            Tile::decode(&*set(vec![(Layer::Labels, label)]).render(TileId { z: 0, x: 0, y: 0 }))
                .expect("a tile");
        let layer = &tile.layers[0];
        assert_eq!(
            (layer.name.as_str(), layer.extent),
            ("labels", Some(EXTENT))
        );
        assert_eq!(layer.features[0].geometry, [9, 50, 34]);
        assert_eq!(layer.features[0].r#type, Some(tile::GeomType::Point as i32));
        assert_eq!(layer.keys, ["name"]);
    }

    #[test]
    fn off_data_tiles_are_empty_and_labels_stay_in_their_tile() {
        let p = project(24.9384, 60.1699);
        let label = Feature::new(Shape::Point(p), vec![("name", "x".into())], 0);
        let tiles = set(vec![(Layer::Labels, label)]);
        assert!(tiles.render(TileId { z: 10, x: 0, y: 0 }).is_empty());
        assert!(!tiles
            .render(TileId {
                z: 15,
                x: 18653,
                y: 9484
            })
            .is_empty());
        assert!(tiles
            .render(TileId {
                z: 15,
                x: 18654,
                y: 9484
            })
            .is_empty());
    }
}
