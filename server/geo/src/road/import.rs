//! OpenStreetMap import: car roads from a `.osm.pbf` file, with one-way rules and speeds by
//! road class (a `maxspeed` tag wins). Two passes, so only road nodes are held in memory.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use osmpbf::{Element, ElementReader};

use super::graph::{Direction, RoadGraph, RoadGraphBuilder};

/// Default speed of a car road class, km/h; `None` for ways cars do not use.
fn class_speed_kmh(highway: &str) -> Option<f64> {
    Some(match highway {
        "motorway" => 100.0,
        "trunk" => 80.0,
        "motorway_link" | "trunk_link" => 60.0,
        "primary" | "primary_link" => 50.0,
        "secondary" | "secondary_link" => 50.0,
        "tertiary" | "tertiary_link" => 40.0,
        "unclassified" | "residential" | "road" => 30.0,
        "living_street" => 10.0,
        "service" => 15.0,
        _ => return None,
    })
}

/// Parses `maxspeed` values such as `50`, `50 km/h` or `30 mph`.
fn parse_maxspeed(v: &str) -> Option<f64> {
    let v = v.trim();
    let (number, factor) = match v.strip_suffix("mph") {
        Some(n) => (n, 1.609_344),
        None => (v.trim_end_matches("km/h").trim_end_matches("kmh"), 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .map(|s| s * factor)
}

/// Car speed (m/s) and allowed direction of a way from its tags; `None` when cars may not use it.
pub fn way_profile<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> Option<(f64, Direction)> {
    let (mut class, mut highway, mut maxspeed, mut oneway, mut roundabout) =
        (None, "", None, None, false);
    for (key, value) in tags {
        match key {
            "highway" => {
                class = class_speed_kmh(value);
                highway = value;
            }
            "maxspeed" => maxspeed = parse_maxspeed(value),
            "oneway" => oneway = Some(value),
            "junction" => roundabout = matches!(value, "roundabout" | "circular"),
            "area" if value == "yes" => return None,
            "access" | "motor_vehicle" | "motorcar" if matches!(value, "no" | "private") => {
                return None
            }
            _ => {}
        }
    }
    let kmh = maxspeed.or(class)?;
    class?;
    let direction = match oneway {
        Some("yes" | "true" | "1") => Direction::Forward,
        Some("-1" | "reverse") => Direction::Backward,
        Some("no" | "false" | "0") => Direction::Both,
        _ if roundabout || highway == "motorway" => Direction::Forward,
        _ => Direction::Both,
    };
    Some((kmh / 3.6, direction))
}

struct Way {
    nodes: Vec<i64>,
    speed_mps: f64,
    direction: Direction,
}

/// Reads the car road network of a PBF file.
///
/// # Errors
/// When the file cannot be read or holds no drivable road.
pub fn import_pbf(path: &Path) -> anyhow::Result<RoadGraph> {
    let graph = read_pbf(path)?.build();
    anyhow::ensure!(
        graph.segment_count() > 0,
        "{} holds no drivable road",
        path.display()
    );
    Ok(graph)
}

/// Reads the nodes and segments of the car roads, ready to build (or to cache).
///
/// # Errors
/// When the file cannot be read.
pub(super) fn read_pbf(path: &Path) -> anyhow::Result<RoadGraphBuilder> {
    crate::osm_pbf::guarded(path, || read_roads(path))
}

fn read_roads(path: &Path) -> anyhow::Result<RoadGraphBuilder> {
    let mut ways = Vec::new();
    ElementReader::from_path(path)
        .with_context(|| format!("opening {}", path.display()))?
        .for_each(|element| {
            if let Element::Way(w) = element {
                if let Some((speed_mps, direction)) = way_profile(w.tags()) {
                    ways.push(Way {
                        nodes: w.refs().collect(),
                        speed_mps,
                        direction,
                    });
                }
            }
        })
        .with_context(|| format!("reading ways of {}", path.display()))?;
    let mut index: HashMap<i64, u32> = HashMap::new();
    for way in &ways {
        for id in &way.nodes {
            index.insert(*id, u32::MAX);
        }
    }
    let mut builder = RoadGraphBuilder::new();
    let mut place = |id: i64, lat: f64, lon: f64, builder: &mut RoadGraphBuilder| {
        if let Some(slot) = index.get_mut(&id) {
            *slot = builder.add_node(lat, lon);
        }
    };
    ElementReader::from_path(path)?
        .for_each(|element| match element {
            Element::DenseNode(n) => place(n.id(), n.lat(), n.lon(), &mut builder),
            Element::Node(n) => place(n.id(), n.lat(), n.lon(), &mut builder),
            _ => {}
        })
        .with_context(|| format!("reading nodes of {}", path.display()))?;
    for way in &ways {
        let known: Vec<u32> = way
            .nodes
            .iter()
            .filter_map(|id| index.get(id).copied())
            .filter(|v| *v != u32::MAX)
            .collect();
        for pair in known.windows(2) {
            builder.add_segment(pair[0], pair[1], way.speed_mps, way.direction);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(tags: &[(&'static str, &'static str)]) -> Option<(f64, Direction)> {
        way_profile(tags.iter().copied())
    }

    #[test]
    fn tags_to_profile() {
        assert_eq!(
            profile(&[("highway", "residential")]).unwrap().1,
            Direction::Both
        );
        assert_eq!(
            profile(&[("highway", "primary"), ("oneway", "yes")])
                .unwrap()
                .1,
            Direction::Forward
        );
        assert_eq!(
            profile(&[("highway", "primary"), ("oneway", "-1")])
                .unwrap()
                .1,
            Direction::Backward
        );
        assert_eq!(
            profile(&[("highway", "primary"), ("junction", "roundabout")])
                .unwrap()
                .1,
            Direction::Forward
        );
        assert!(
            (profile(&[("highway", "primary"), ("maxspeed", "36")])
                .unwrap()
                .0
                - 10.0)
                .abs()
                < 1e-9
        );
        assert!(profile(&[("highway", "footway")]).is_none());
        assert!(profile(&[("highway", "service"), ("access", "private")]).is_none());
        assert!(profile(&[("building", "yes")]).is_none());
    }

    #[test]
    fn imports_helsinki() {
        let path = crate::helsinki_pbf();
        let g = import_pbf(&path).unwrap();
        assert!(g.node_count() > 1_000, "{} nodes", g.node_count());
        // Senate Square is on the map and near a road.
        let s = g.snap(60.169_52, 24.952_37, 150.0).unwrap();
        assert!(s.distance_m < 150.0);
    }
}
