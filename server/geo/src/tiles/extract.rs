//! Basemap features from an OpenStreetMap `.osm.pbf`, in three passes so only the ways and
//! nodes the map draws are held: multipolygon relations, then ways, then node coordinates.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use osmpbf::{Element, ElementReader, RelMemberType};

use super::features::{classify, label, min_zoom, Feature, Layer, Ring, Shape};
use super::mercator::{project, World};

/// Everything the basemap draws, by layer, and the data's bounds.
#[derive(Debug)]
pub struct Extract {
    pub layers: Vec<(Layer, Vec<Feature>)>,
    /// `[west, south, east, north]` in degrees of every node used.
    pub bounds: [f64; 4],
}

/// A drawn way or multipolygon, waiting for its nodes' coordinates.
struct Pending {
    layer: Layer,
    class: String,
    name: Option<String>,
    /// `addr:housenumber`, drawn on buildings close up.
    housenumber: Option<String>,
    /// Node references of each ring (areas) or of the line (roads), with the outer flag.
    rings: Vec<(Vec<i64>, bool)>,
}

type Tags<'a> = Vec<(&'a str, &'a str)>;

/// House numbers are drawn from this zoom on, where buildings are big enough to carry them.
const HOUSENUMBER_ZOOM: u8 = 17;

/// Reads the basemap features of a PBF file.
///
/// # Errors
/// When the file cannot be read or decoded.
pub fn extract_pbf(path: &Path) -> anyhow::Result<Extract> {
    crate::osm_pbf::guarded(path, || extract(path))
}

fn extract(path: &Path) -> anyhow::Result<Extract> {
    let reader =
        || ElementReader::from_path(path).with_context(|| format!("opening {}", path.display()));
    // Pass 1: multipolygons, and the member ways they need.
    let mut relations: Vec<(Pending, Vec<(i64, bool)>)> = Vec::new();
    reader()?
        .for_each(|element| {
            if let Element::Relation(r) = element {
                let tags: Tags = r.tags().collect();
                if !tags.contains(&("type", "multipolygon")) {
                    return;
                }
                let Some((layer @ (Layer::Buildings | Layer::Water | Layer::Green), class)) =
                    classify(&tags)
                else {
                    return;
                };
                let members = r
                    .members()
                    .filter(|m| m.member_type == RelMemberType::Way)
                    .map(|m| (m.member_id, m.role().is_ok_and(|role| role != "inner")))
                    .collect();
                relations.push((pending(layer, class, &tags), members));
            }
        })
        .with_context(|| format!("reading relations of {}", path.display()))?;
    let wanted: HashSet<i64> = relations
        .iter()
        .flat_map(|(_, m)| m.iter().map(|(id, _)| *id))
        .collect();
    // Pass 2: drawn ways, and the node lists of multipolygon members.
    let mut pendings = Vec::new();
    let mut members: HashMap<i64, Vec<i64>> = HashMap::new();
    reader()?
        .for_each(|element| {
            if let Element::Way(w) = element {
                let refs: Vec<i64> = w.refs().collect();
                if wanted.contains(&w.id()) {
                    members.insert(w.id(), refs.clone());
                }
                let tags: Tags = w.tags().collect();
                let Some((layer, class)) = classify(&tags) else {
                    return;
                };
                let closed = refs.len() >= 4 && refs.first() == refs.last();
                if layer == Layer::Roads || closed {
                    let mut p = pending(layer, class, &tags);
                    p.rings.push((refs, true));
                    pendings.push(p);
                }
            }
        })
        .with_context(|| format!("reading ways of {}", path.display()))?;
    for (mut p, refs) in relations {
        // Closed member ways only; rings split over several ways are not stitched.
        p.rings.extend(refs.into_iter().filter_map(|(id, outer)| {
            let nodes = members.get(&id)?;
            (nodes.len() >= 4 && nodes.first() == nodes.last()).then(|| (nodes.clone(), outer))
        }));
        pendings.push(p);
    }
    drop(members);
    // Pass 3: coordinates of the nodes used, and labelled nodes.
    let mut coords: HashMap<i64, World> = pendings
        .iter()
        .flat_map(|p| p.rings.iter().flat_map(|(r, _)| r.iter()))
        .map(|id| (*id, [f64::NAN, f64::NAN]))
        .collect();
    let mut labels = Vec::new();
    let mut bounds = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    let mut node = |id: i64, lon: f64, lat: f64, tags: Tags| {
        let used = coords
            .get_mut(&id)
            .map(|c| *c = project(lon, lat))
            .is_some();
        if let Some((kind, class, name)) = label(&tags) {
            // Place names orient the operator from the city view; amenities only close up.
            let zoom = if kind == "place" { 11 } else { 15 };
            let props = vec![
                ("kind", kind.to_owned()),
                ("class", class.to_owned()),
                ("name", name.to_owned()),
            ];
            labels.push(Feature::new(Shape::Point(project(lon, lat)), props, zoom));
        } else if let Some(number) = tag(&tags, "addr:housenumber") {
            // An entrance or address point: its number, only at street level.
            let props = vec![
                ("kind", "housenumber".to_owned()),
                ("class", String::new()),
                ("name", number),
            ];
            labels.push(Feature::new(
                Shape::Point(project(lon, lat)),
                props,
                HOUSENUMBER_ZOOM,
            ));
        } else if !used {
            return;
        }
        bounds = [
            bounds[0].min(lon),
            bounds[1].min(lat),
            bounds[2].max(lon),
            bounds[3].max(lat),
        ];
    };
    reader()?
        .for_each(|element| match element {
            Element::DenseNode(n) => node(n.id(), n.lon(), n.lat(), n.tags().collect()),
            Element::Node(n) => node(n.id(), n.lon(), n.lat(), n.tags().collect()),
            _ => {}
        })
        .with_context(|| format!("reading nodes of {}", path.display()))?;
    let mut layers: Vec<(Layer, Vec<Feature>)> =
        Layer::ALL.iter().map(|l| (*l, Vec::new())).collect();
    for p in pendings {
        let rings: Vec<(Vec<World>, bool)> = p
            .rings
            .iter()
            .map(|(refs, outer)| {
                let pts = refs
                    .iter()
                    .filter_map(|id| coords.get(id).copied())
                    .filter(|c| !c[0].is_nan())
                    .collect();
                (pts, *outer)
            })
            .collect();
        if p.layer == Layer::Roads {
            let line = rings.into_iter().next().map(|(l, _)| l).unwrap_or_default();
            if line.len() < 2 {
                continue;
            }
            let mut props = vec![("class", p.class.clone())];
            if let Some(name) = &p.name {
                props.push(("name", name.clone()));
                let anchor = midpoint(&line);
                let label = vec![
                    ("kind", "street".to_owned()),
                    ("class", p.class.clone()),
                    ("name", name.clone()),
                ];
                labels.push(Feature::new(Shape::Point(anchor), label, 15));
            }
            let zoom = min_zoom(Layer::Roads, &p.class);
            layers[Layer::Roads as usize]
                .1
                .push(Feature::new(Shape::Line(line), props, zoom));
        } else if let Some(shape) = area(rings) {
            let zoom = min_zoom(p.layer, &p.class);
            let mut props = vec![("class", p.class)];
            if let (Layer::Buildings, Some(number)) = (p.layer, p.housenumber) {
                props.push(("housenumber", number));
            }
            layers[p.layer as usize]
                .1
                .push(Feature::new(shape, props, zoom));
        }
    }
    layers[Layer::Labels as usize].1 = labels;
    Ok(Extract { layers, bounds })
}

fn pending(layer: Layer, class: &str, tags: &Tags) -> Pending {
    Pending {
        layer,
        class: class.to_owned(),
        name: tag(tags, "name"),
        housenumber: tag(tags, "addr:housenumber"),
        rings: Vec::new(),
    }
}

fn tag(tags: &Tags, key: &str) -> Option<String> {
    tags.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| (*v).to_owned())
}

/// The rings as an area: each outer ring followed by the holes inside it; `None` without an
/// outer ring.
fn area(rings: Vec<(Vec<World>, bool)>) -> Option<Shape> {
    let open = |mut r: Vec<World>| {
        r.pop();
        r
    };
    let (outers, inners): (Vec<_>, Vec<_>) = rings
        .into_iter()
        .filter(|(r, _)| r.len() >= 4)
        .partition(|(_, outer)| *outer);
    let mut inners: Vec<Option<Vec<World>>> =
        inners.into_iter().map(|(r, _)| Some(open(r))).collect();
    let mut out = Vec::new();
    for (outer, _) in outers {
        let outer = open(outer);
        let holes: Vec<Ring> = inners
            .iter_mut()
            .filter(|h| h.as_ref().is_some_and(|h| contains(&outer, h[0])))
            .filter_map(|h| {
                h.take().map(|points| Ring {
                    points,
                    outer: false,
                })
            })
            .collect();
        out.push(Ring {
            points: outer,
            outer: true,
        });
        out.extend(holes);
    }
    (!out.is_empty()).then_some(Shape::Area(out))
}

/// Even-odd point-in-ring test.
fn contains(ring: &[World], p: World) -> bool {
    let mut inside = false;
    for (i, a) in ring.iter().enumerate() {
        let b = ring[(i + ring.len() - 1) % ring.len()];
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            inside = !inside;
        }
    }
    inside
}

/// The point halfway along a line, where a street's name is anchored.
fn midpoint(line: &[World]) -> World {
    let len = |w: &[World]| (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]);
    let mut left = line.windows(2).map(len).sum::<f64>() / 2.0;
    for w in line.windows(2) {
        let l = len(w);
        if l >= left && l > 0.0 {
            let t = left / l;
            return [
                w[0][0] + (w[1][0] - w[0][0]) * t,
                w[0][1] + (w[1][1] - w[0][1]) * t,
            ];
        }
        left -= l;
    }
    line[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_go_with_their_outer_ring() {
        let square = |x: f64, s: f64| vec![[x, 0.0], [x + s, 0.0], [x + s, s], [x, s], [x, 0.0]];
        let hole = vec![[1.0, 1.0], [2.0, 1.0], [2.0, 2.0], [1.0, 1.0]];
        let Some(Shape::Area(rings)) = area(vec![
            (hole, false),
            (square(20.0, 5.0), true),
            (square(0.0, 5.0), true),
        ]) else {
            panic!("no area");
        };
        let flags: Vec<bool> = rings.iter().map(|r| r.outer).collect();
        assert_eq!(flags, [true, true, false]);
        assert_eq!(rings[1].points[0], [0.0, 0.0]);
        assert_eq!(rings[2].points.len(), 3);
    }

    #[test]
    fn midpoint_is_half_the_length() {
        assert_eq!(midpoint(&[[0.0, 0.0], [1.0, 0.0], [1.0, 3.0]]), [1.0, 1.0]);
    }

    #[test]
    fn extracts_helsinki() {
        let path = crate::helsinki_pbf();
        let e = extract_pbf(&path).unwrap();
        for (layer, features) in &e.layers {
            assert!(!features.is_empty(), "{} is empty", layer.name());
        }
        let [w, s, east, n] = e.bounds;
        assert!(
            w < 24.94 && east > 24.94 && s < 60.17 && n > 60.17,
            "{:?}",
            e.bounds
        );
        let features = |layer: Layer| &e.layers[layer as usize].1;
        let has = |f: &Feature, key: &str, value: &str| {
            f.props.iter().any(|(k, v)| *k == key && v == value)
        };
        assert!(
            features(Layer::Roads)
                .iter()
                .any(|f| has(f, "name", "Mannerheimintie")),
            "street names ride on the roads"
        );
        let numbered = features(Layer::Buildings)
            .iter()
            .filter(|f| f.props.iter().any(|(k, _)| *k == "housenumber"))
            .count();
        assert!(numbered > 50, "{numbered} buildings carry a house number");
        assert!(features(Layer::Labels)
            .iter()
            .any(|f| has(f, "kind", "place")));
    }
}
