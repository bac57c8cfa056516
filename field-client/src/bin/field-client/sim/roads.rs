//! A small drivable road graph from an OpenStreetMap PBF, with fastest-path search.
//!
//! Enough for simulated cars to follow streets legally: one-way streets (and roundabouts and
//! motorways, one-way by default) are driven only their way. The server has its own routing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use anyhow::Context;
use osmpbf::{Element, ElementReader};
use rand::Rng;

use super::geo::{distance_m, Point};

/// A directed half of a road segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    pub to: usize,
    pub length_m: f64,
    /// Legal speed on this road, metres per second.
    pub speed_mps: f64,
}

/// Road graph: nodes with positions and, per node, the segments leaving it. Only the largest
/// strongly connected part is kept so that every node can reach every other by legal driving.
#[derive(Debug, Clone)]
pub struct Roads {
    points: Vec<Point>,
    edges: Vec<Vec<Edge>>,
}

/// Which way traffic may drive along a way's node list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oneway {
    Both,
    /// Only in the order of the way's nodes.
    Forward,
    /// Only against it (`oneway=-1`).
    Backward,
}

/// A way worth driving on: its node ids, speed and direction.
pub struct Way {
    pub nodes: Vec<i64>,
    pub speed_mps: f64,
    pub oneway: Oneway,
}

/// Direction of travel from a way's tags, following OSM's defaults (roundabouts and motorways
/// are one-way unless tagged otherwise).
fn way_oneway<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> Oneway {
    let mut implied = false;
    let mut explicit = None;
    for (key, value) in tags {
        match (key, value) {
            ("oneway", "yes" | "true" | "1") => explicit = Some(Oneway::Forward),
            ("oneway", "-1" | "reverse") => explicit = Some(Oneway::Backward),
            ("oneway", "no" | "false" | "0") => explicit = Some(Oneway::Both),
            ("junction", "roundabout" | "circular") | ("highway", "motorway") => implied = true,
            _ => {}
        }
    }
    explicit.unwrap_or(if implied {
        Oneway::Forward
    } else {
        Oneway::Both
    })
}

/// Speed of a car road class in km/h; `None` for ways cars do not use.
fn class_speed_kmh(highway: &str) -> Option<f64> {
    Some(match highway {
        "motorway" | "motorway_link" => 80.0,
        "trunk" | "trunk_link" => 60.0,
        "primary" | "primary_link" | "secondary" | "secondary_link" => 50.0,
        "tertiary" | "tertiary_link" => 40.0,
        "unclassified" | "residential" | "road" => 30.0,
        "living_street" | "service" => 15.0,
        _ => return None,
    })
}

/// Speed of a way from its tags, or `None` when cars do not drive on it.
fn way_speed_mps<'a>(tags: impl Iterator<Item = (&'a str, &'a str)>) -> Option<f64> {
    let (mut class, mut maxspeed, mut excluded) = (None, None, false);
    for (key, value) in tags {
        match (key, value) {
            ("highway", v) => class = class_speed_kmh(v),
            ("maxspeed", v) => maxspeed = v.trim().parse::<f64>().ok().filter(|s| *s > 0.0),
            ("area", "yes") | ("access", "no" | "private") | ("service", "parking_aisle") => {
                excluded = true;
            }
            _ => {}
        }
    }
    if excluded {
        return None;
    }
    class.map(|kmh| maxspeed.unwrap_or(kmh) / 3.6)
}

impl Roads {
    /// Reads car roads (highway ways) from a `.osm.pbf` file.
    ///
    /// # Errors
    /// When the file cannot be read or holds no connected roads.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let mut coords = HashMap::new();
        let mut ways = Vec::new();
        ElementReader::from_path(path)
            .with_context(|| format!("opening {}", path.display()))?
            .for_each(|element| match element {
                Element::DenseNode(n) => {
                    coords.insert(
                        n.id(),
                        Point {
                            lat: n.lat(),
                            lon: n.lon(),
                        },
                    );
                }
                Element::Node(n) => {
                    coords.insert(
                        n.id(),
                        Point {
                            lat: n.lat(),
                            lon: n.lon(),
                        },
                    );
                }
                Element::Way(w) => {
                    if let Some(speed_mps) = way_speed_mps(w.tags()) {
                        ways.push(Way {
                            nodes: w.refs().collect(),
                            speed_mps,
                            oneway: way_oneway(w.tags()),
                        });
                    }
                }
                Element::Relation(_) => {}
            })
            .with_context(|| format!("reading {}", path.display()))?;
        let roads = Self::from_ways(&coords, &ways);
        anyhow::ensure!(
            roads.len() >= 2,
            "{} holds no drivable roads",
            path.display()
        );
        Ok(roads)
    }

    /// Builds the graph from ways whose nodes have known positions, with one-way ways as
    /// single directed edges, and keeps the largest strongly connected component.
    pub fn from_ways(coords: &HashMap<i64, Point>, ways: &[Way]) -> Self {
        let mut index: HashMap<i64, usize> = HashMap::new();
        let mut points = Vec::new();
        let mut edges: Vec<Vec<Edge>> = Vec::new();
        for way in ways {
            let known: Vec<(i64, Point)> = way
                .nodes
                .iter()
                .filter_map(|id| coords.get(id).map(|p| (*id, *p)))
                .collect();
            for pair in known.windows(2) {
                let [(a_id, a), (b_id, b)] = [pair[0], pair[1]];
                if a_id == b_id {
                    continue;
                }
                let mut slot = |id: i64, p: Point| {
                    *index.entry(id).or_insert_with(|| {
                        points.push(p);
                        edges.push(Vec::new());
                        points.len() - 1
                    })
                };
                let (ai, bi) = (slot(a_id, a), slot(b_id, b));
                let length_m = distance_m(a, b);
                if way.oneway != Oneway::Backward {
                    edges[ai].push(Edge {
                        to: bi,
                        length_m,
                        speed_mps: way.speed_mps,
                    });
                }
                if way.oneway != Oneway::Forward {
                    edges[bi].push(Edge {
                        to: ai,
                        length_m,
                        speed_mps: way.speed_mps,
                    });
                }
            }
        }
        Self { points, edges }.largest_component()
    }

    /// Strongly connected components by Kosaraju's algorithm (iterative: road graphs are deep).
    fn components(&self) -> (Vec<usize>, Vec<usize>) {
        let n = self.points.len();
        // First pass: nodes in order of finishing a depth-first search on the edges.
        let mut visited = vec![false; n];
        let mut finished = Vec::with_capacity(n);
        for root in 0..n {
            if visited[root] {
                continue;
            }
            visited[root] = true;
            let mut stack = vec![(root, 0usize)];
            while let Some((node, next)) = stack.pop() {
                if let Some(edge) = self.edges[node].get(next) {
                    stack.push((node, next + 1));
                    if !visited[edge.to] {
                        visited[edge.to] = true;
                        stack.push((edge.to, 0));
                    }
                } else {
                    finished.push(node);
                }
            }
        }
        // Second pass on the reversed edges, latest finisher first.
        let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (from, edges) in self.edges.iter().enumerate() {
            for edge in edges {
                reverse[edge.to].push(from);
            }
        }
        let mut component = vec![usize::MAX; n];
        let mut sizes = Vec::new();
        for &root in finished.iter().rev() {
            if component[root] != usize::MAX {
                continue;
            }
            let id = sizes.len();
            let mut size = 0;
            component[root] = id;
            let mut stack = vec![root];
            while let Some(node) = stack.pop() {
                size += 1;
                for &from in &reverse[node] {
                    if component[from] == usize::MAX {
                        component[from] = id;
                        stack.push(from);
                    }
                }
            }
            sizes.push(size);
        }
        (component, sizes)
    }

    fn largest_component(self) -> Self {
        let n = self.points.len();
        let (component, sizes) = self.components();
        let Some(keep) = (0..sizes.len()).max_by_key(|c| sizes[*c]) else {
            return self;
        };
        let mut renumber = vec![usize::MAX; n];
        let mut points = Vec::new();
        for node in (0..n).filter(|v| component[*v] == keep) {
            renumber[node] = points.len();
            points.push(self.points[node]);
        }
        let edges = (0..n)
            .filter(|v| component[*v] == keep)
            .map(|node| {
                self.edges[node]
                    .iter()
                    // An edge leaving the component could strand a car.
                    .filter(|e| component[e.to] == keep)
                    .map(|e| Edge {
                        to: renumber[e.to],
                        ..*e
                    })
                    .collect()
            })
            .collect();
        Self { points, edges }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Directed edges: a two-way segment counts twice, a one-way segment once.
    pub fn edge_count(&self) -> usize {
        self.edges.iter().map(Vec::len).sum::<usize>()
    }

    pub fn point(&self, node: usize) -> Point {
        self.points[node]
    }

    pub fn edges(&self, node: usize) -> &[Edge] {
        &self.edges[node]
    }

    pub fn random_node(&self, rng: &mut impl Rng) -> usize {
        rng.gen_range(0..self.points.len())
    }

    /// The node closest to `p` (a linear scan: the graph is small).
    pub fn nearest(&self, p: Point) -> usize {
        (0..self.points.len())
            .min_by(|a, b| {
                distance_m(p, self.points[*a]).total_cmp(&distance_m(p, self.points[*b]))
            })
            .unwrap_or(0)
    }

    /// The fastest path from `from` to `to` as a list of nodes (both ends included), by
    /// Dijkstra on travel time in milliseconds.
    pub fn fastest_path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let mut best = vec![u64::MAX; self.points.len()];
        let mut previous = vec![usize::MAX; self.points.len()];
        let mut heap = BinaryHeap::from([Reverse((0u64, from))]);
        best[from] = 0;
        while let Some(Reverse((time, node))) = heap.pop() {
            if node == to {
                let mut path = vec![to];
                while let Some(&last) = path.last() {
                    if last == from {
                        break;
                    }
                    path.push(previous[last]);
                }
                path.reverse();
                return Some(path);
            }
            if time > best[node] {
                continue;
            }
            for edge in &self.edges[node] {
                // Whole milliseconds keep the heap on integers.
                let step = (edge.length_m / edge.speed_mps * 1000.0).ceil() as u64;
                let next = time + step.max(1);
                if next < best[edge.to] {
                    best[edge.to] = next;
                    previous[edge.to] = node;
                    heap.push(Reverse((next, edge.to)));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A square a-b-c-d with a slow direct road a-c and a separate island e-f.
    fn sample() -> Roads {
        let p = |lat: f64, lon: f64| Point { lat, lon };
        let coords = HashMap::from([
            (1, p(60.0, 24.0)),
            (2, p(60.0, 24.01)),
            (3, p(60.005, 24.01)),
            (4, p(60.005, 24.0)),
            (5, p(61.0, 25.0)),
            (6, p(61.0, 25.01)),
        ]);
        let way = |nodes: Vec<i64>, kmh: f64| Way {
            nodes,
            speed_mps: kmh / 3.6,
            oneway: Oneway::Both,
        };
        Roads::from_ways(
            &coords,
            &[
                way(vec![1, 2, 3], 80.0),
                way(vec![3, 4, 1], 80.0),
                way(vec![1, 3], 5.0),
                way(vec![5, 6], 50.0),
                way(vec![7, 8], 50.0), // unknown nodes are skipped
            ],
        )
    }

    #[test]
    fn keeps_only_the_largest_component() {
        let roads = sample();
        assert_eq!(roads.len(), 4);
        assert_eq!(roads.edge_count(), 10);
    }

    /// A one-way ring 1→2→3→4→1 with a two-way spur 4–5 and a one-way dead end 2→6.
    fn ring() -> Roads {
        let p = |lat: f64, lon: f64| Point { lat, lon };
        let coords = HashMap::from([
            (1, p(60.0, 24.0)),
            (2, p(60.0, 24.01)),
            (3, p(60.005, 24.01)),
            (4, p(60.005, 24.0)),
            (5, p(60.006, 24.0)),
            (6, p(59.99, 24.01)),
        ]);
        let way = |nodes: Vec<i64>, oneway| Way {
            nodes,
            speed_mps: 10.0,
            oneway,
        };
        Roads::from_ways(
            &coords,
            &[
                way(vec![1, 2, 3], Oneway::Forward),
                way(vec![1, 4, 3], Oneway::Backward),
                way(vec![4, 5], Oneway::Both),
                way(vec![2, 6], Oneway::Forward),
            ],
        )
    }

    #[test]
    fn one_way_streets_are_driven_only_their_way() {
        let roads = ring();
        // Node 6 can be entered but never left: dropped with its edge.
        assert_eq!(roads.len(), 5);
        assert_eq!(roads.edge_count(), 6);
        let at = |lat: f64, lon: f64| roads.nearest(Point { lat, lon });
        let (n1, n2) = (at(60.0, 24.0), at(60.0, 24.01));
        // 1 → 2 directly, but 2 → 1 only the long way round.
        assert_eq!(roads.fastest_path(n1, n2).unwrap().len(), 2);
        assert_eq!(roads.fastest_path(n2, n1).unwrap().len(), 4);
        for node in 0..roads.len() {
            for edge in roads.edges(node) {
                let back = roads.edges(edge.to).iter().any(|e| e.to == node);
                let two_way = [node, edge.to].contains(&at(60.006, 24.0));
                assert_eq!(back, two_way, "{node} -> {}", edge.to);
            }
        }
    }

    #[test]
    fn oneway_tags_follow_osm_defaults() {
        let dir = |tags: &[(&'static str, &'static str)]| way_oneway(tags.iter().copied());
        assert_eq!(dir(&[("highway", "residential")]), Oneway::Both);
        assert_eq!(dir(&[("oneway", "yes")]), Oneway::Forward);
        assert_eq!(dir(&[("oneway", "-1")]), Oneway::Backward);
        assert_eq!(dir(&[("junction", "roundabout")]), Oneway::Forward);
        assert_eq!(
            dir(&[("highway", "motorway"), ("oneway", "no")]),
            Oneway::Both
        );
    }

    #[test]
    fn fastest_path_avoids_the_slow_shortcut() {
        let roads = sample();
        let a = roads.nearest(Point {
            lat: 60.0,
            lon: 24.0,
        });
        let c = roads.nearest(Point {
            lat: 60.005,
            lon: 24.01,
        });
        let path = roads.fastest_path(a, c).unwrap();
        assert_eq!(path.len(), 3, "{path:?}");
        assert_eq!((path[0], path[2]), (a, c));
        assert_eq!(roads.fastest_path(a, a).unwrap(), [a]);
    }

    #[test]
    fn tags_decide_what_is_drivable() {
        let speed = |tags: &[(&'static str, &'static str)]| way_speed_mps(tags.iter().copied());
        assert!(speed(&[("highway", "footway")]).is_none());
        assert!(speed(&[("highway", "residential"), ("access", "private")]).is_none());
        let primary = speed(&[("highway", "primary")]).unwrap();
        assert!((primary - 50.0 / 3.6).abs() < 1e-9);
        let limited = speed(&[("highway", "primary"), ("maxspeed", "30")]).unwrap();
        assert!((limited - 30.0 / 3.6).abs() < 1e-9);
    }
}
