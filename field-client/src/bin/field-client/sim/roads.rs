//! The roads simulated cars drive on: the server's own road graph (`dispatch_geo::road`), so
//! the same import, speed profile and one-way rules the ETAs are computed with, kept to its
//! largest strongly connected part so that a car can always drive on and get anywhere.

use std::path::Path;

use dispatch_geo::haversine_m;
use dispatch_geo::road::{import_pbf, RoadGraph};
use rand::Rng;

use super::geo::{distance_m, Point};

/// One legal drive from a node to a neighbour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drive {
    pub to: usize,
    /// The speed that covers the great-circle length of the segment in exactly the graph's
    /// drive time (so a simulated car takes the time an ETA assumes).
    pub speed_mps: f64,
}

/// The road graph and the nodes of its largest strongly connected part.
pub struct Roads {
    graph: RoadGraph,
    nodes: Vec<u32>,
    in_part: Vec<bool>,
}

impl Roads {
    /// Reads the car roads of a `.osm.pbf` file, as the server does.
    ///
    /// # Errors
    /// When the file cannot be read or holds no connected roads.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let roads = Self::new(import_pbf(path)?);
        anyhow::ensure!(
            roads.len() >= 2,
            "{} holds no connected drivable roads",
            path.display()
        );
        Ok(roads)
    }

    pub fn new(graph: RoadGraph) -> Self {
        let nodes = graph.largest_strongly_connected();
        let mut in_part = vec![false; graph.node_count()];
        for &v in &nodes {
            in_part[v as usize] = true;
        }
        Self {
            graph,
            nodes,
            in_part,
        }
    }

    /// The graph itself, for checking drives against the server's ETA search.
    #[cfg(test)]
    pub fn graph(&self) -> &RoadGraph {
        &self.graph
    }

    /// Nodes a car may be on.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Directed drives between those nodes: a two-way segment counts twice.
    pub fn edge_count(&self) -> usize {
        self.nodes
            .iter()
            .map(|&v| self.drives(v as usize).len())
            .sum()
    }

    pub fn point(&self, node: usize) -> Point {
        let (lat, lon) = self.graph.node_position(node_id(node));
        Point { lat, lon }
    }

    /// The legal drives out of `node` that stay in the connected part.
    pub fn drives(&self, node: usize) -> Vec<Drive> {
        let here = self.point(node);
        self.graph
            .drives_from(node_id(node))
            .filter(|(to, _)| self.in_part[*to as usize])
            .map(|(to, ms)| {
                let there = self.point(to as usize);
                let length_m = haversine_m(here.lat, here.lon, there.lat, there.lon);
                Drive {
                    to: to as usize,
                    speed_mps: if ms > 0.0 {
                        length_m / (ms / 1000.0)
                    } else {
                        self.graph.max_speed_mps()
                    },
                }
            })
            .collect()
    }

    pub fn random_node(&self, rng: &mut impl Rng) -> usize {
        self.nodes[rng.gen_range(0..self.nodes.len())] as usize
    }

    /// The node of the connected part closest to `p` (a linear scan: called once per trip).
    pub fn nearest(&self, p: Point) -> usize {
        self.nodes
            .iter()
            .map(|&v| v as usize)
            .min_by(|&a, &b| distance_m(p, self.point(a)).total_cmp(&distance_m(p, self.point(b))))
            .unwrap_or(0)
    }

    /// The fastest path from `from` to `to` as a list of nodes, both ends included.
    pub fn fastest_path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let path = self.graph.fastest_path(node_id(from), node_id(to))?;
        Some(path.nodes.into_iter().map(|v| v as usize).collect())
    }
}

fn node_id(node: usize) -> u32 {
    u32::try_from(node).expect("a node of the graph")
}
