//! Vector-tile encoding: our encoder (`dispatch_geo::tiles::mvt`, protobuf written by hand)
//! beside geozero's (`ToMvt` into prost messages) on the same features: the Helsinki tiles we
//! generate, decoded into geometries and tags, then encoded again by each. The two results
//! must decode to the same features; the rows give the time to encode a tile and its size.

use std::collections::HashMap;
use std::time::Instant;

use dispatch_geo::tiles::mvt::{GeomType, Geometry, LayerBuilder};
use dispatch_geo::tiles::{TileId, TileSet};
use geo_types::Geometry as Geo;
use geozero::mvt::{tile, Message, TagsBuilder, Tile, TileValue};
use geozero::{ToGeo, ToMvt};

use crate::stats::{ratio, show, Row, Samples};

/// One feature as both encoders take it: tile-unit geometry and string tags.
struct Feature {
    geometry: Geo<f64>,
    /// Our encoder's input: the geometry type and its parts as integer points.
    parts: (GeomType, Vec<Vec<[i32; 2]>>),
    tags: Vec<(String, String)>,
}

/// The layers of one tile, by name.
type Layers = Vec<(&'static str, Vec<Feature>)>;

/// Integer tile-unit points of a ring or line.
fn points(line: &geo_types::LineString<f64>) -> Vec<[i32; 2]> {
    #[allow(clippy::cast_possible_truncation)]
    line.0.iter().map(|c| [c.x as i32, c.y as i32]).collect()
}

/// A ring without its repeated closing point, as our encoder takes it.
fn open_ring(ring: &geo_types::LineString<f64>) -> Vec<[i32; 2]> {
    let mut p = points(ring);
    p.pop();
    p
}

fn our_parts(geometry: &Geo<f64>) -> anyhow::Result<(GeomType, Vec<Vec<[i32; 2]>>)> {
    let polygon = |p: &geo_types::Polygon<f64>| {
        std::iter::once(open_ring(p.exterior()))
            .chain(p.interiors().iter().map(open_ring))
            .collect::<Vec<_>>()
    };
    Ok(match geometry {
        #[allow(clippy::cast_possible_truncation)]
        Geo::Point(p) => (GeomType::Point, vec![vec![[p.x() as i32, p.y() as i32]]]),
        Geo::LineString(l) => (GeomType::LineString, vec![points(l)]),
        Geo::MultiLineString(m) => (GeomType::LineString, m.0.iter().map(points).collect()),
        Geo::Polygon(p) => (GeomType::Polygon, polygon(p)),
        Geo::MultiPolygon(m) => (GeomType::Polygon, m.0.iter().flat_map(polygon).collect()),
        other => anyhow::bail!("a tile feature of unexpected type: {other:?}"),
    })
}

/// Decodes a tile into layers of features (layer names interned in `names`).
fn decode(bytes: &[u8], names: &mut HashMap<String, &'static str>) -> anyhow::Result<Layers> {
    let tile = Tile::decode(bytes)?;
    let mut layers = Vec::new();
    for mut layer in tile.layers {
        let name = *names
            .entry(layer.name.clone())
            .or_insert_with(|| Box::leak(layer.name.clone().into_boxed_str()));
        let mut features = Vec::new();
        for feature in &mut layer.features {
            let tags = feature
                .tags
                .chunks(2)
                .map(|kv| {
                    let key = layer.keys[kv[0] as usize].clone();
                    let value = layer.values[kv[1] as usize].string_value.clone();
                    (key, value.unwrap_or_default())
                })
                .collect();
            let geometry = feature.to_geo()?;
            features.push(Feature {
                parts: our_parts(&geometry)?,
                geometry,
                tags,
            });
        }
        layers.push((name, features));
    }
    Ok(layers)
}

fn encode_ours(layers: &Layers) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, features) in layers {
        let mut layer = LayerBuilder::new(name);
        for f in features {
            let mut g = Geometry::default();
            let (kind, parts) = &f.parts;
            for part in parts {
                match kind {
                    GeomType::Point => g.point(part[0]),
                    GeomType::LineString => g.line(part),
                    GeomType::Polygon => g.ring(part),
                }
            }
            let tags: Vec<(&str, &str)> = f
                .tags
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            layer.add(*kind, &g, &tags);
        }
        layer.finish_into(&mut out);
    }
    out
}

fn encode_geozero(layers: &Layers) -> anyhow::Result<Vec<u8>> {
    let mut tile = Tile::default();
    for (name, features) in layers {
        let mut tags = TagsBuilder::new();
        let mut encoded = Vec::with_capacity(features.len());
        for f in features {
            let mut feature = f.geometry.to_mvt_unscaled()?;
            for (k, v) in &f.tags {
                let (key, value) = tags.insert_ref(k, TileValue::Str(v.clone()));
                feature.tags.extend([key, value]);
            }
            encoded.push(feature);
        }
        let (keys, values) = tags.into_tags();
        tile.layers.push(tile::Layer {
            version: 2,
            name: (*name).to_owned(),
            features: encoded,
            keys,
            values: values.into_iter().map(Into::into).collect(),
            extent: Some(dispatch_geo::tiles::mvt::EXTENT),
        });
    }
    Ok(tile.encode_to_vec())
}

/// Encodes every tile `passes` times with each encoder.
pub fn compare(set: &TileSet, ids: &[TileId], passes: usize) -> anyhow::Result<Vec<Row>> {
    let mut names = HashMap::new();
    let mut tiles = Vec::new();
    for id in ids {
        let bytes = set.render(*id);
        if !bytes.is_empty() {
            tiles.push(decode(&bytes, &mut names)?);
        }
    }
    // Both encodings decode to the same layers, features, geometries and tags.
    let (mut our_bytes, mut their_bytes) = (0, 0);
    for layers in &tiles {
        let (ours, theirs) = (encode_ours(layers), encode_geozero(layers)?);
        our_bytes += ours.len();
        their_bytes += theirs.len();
        let (a, b) = (decode(&ours, &mut names)?, decode(&theirs, &mut names)?);
        anyhow::ensure!(
            a.len() == b.len()
                && a.iter().zip(&b).all(|((na, fa), (nb, fb))| {
                    na == nb
                        && fa.len() == fb.len()
                        && fa
                            .iter()
                            .zip(fb)
                            .all(|(x, y)| x.geometry == y.geometry && x.tags == y.tags)
                }),
            "the encoders disagree on a tile"
        );
    }
    let (mut mine, mut theirs) = (Samples::default(), Samples::default());
    for _ in 0..passes {
        for layers in &tiles {
            let t0 = Instant::now();
            std::hint::black_box(encode_ours(layers));
            mine.push(t0.elapsed());
            let t0 = Instant::now();
            std::hint::black_box(encode_geozero(layers)?);
            theirs.push(t0.elapsed());
        }
    }
    let features: usize = tiles
        .iter()
        .flat_map(|layers| layers.iter().map(|(_, f)| f.len()))
        .sum();
    let row = |p: usize| Row {
        what: format!(
            "MVT encode p{p}, {} Helsinki tiles ({features} features), {} encodings",
            tiles.len(),
            mine.len()
        ),
        ours: format!("{} ({} kB)", show(mine.percentile(p)), our_bytes / 1024),
        peer: format!(
            "{} (`geozero` {}, {} kB)",
            show(theirs.percentile(p)),
            "0.15",
            their_bytes / 1024
        ),
        ratio: ratio(theirs.percentile(p), mine.percentile(p)),
        target: "same features from both (checked)".into(),
    };
    Ok(vec![row(50), row(99)])
}
