//! Whole routes on the road graph, for whatever must follow the roads rather than only time
//! them (the fleet simulator, the route a unit drives drawn on the console's map): legal drives
//! out of a node, the fastest node-by-node path, the fastest drive between two points on the
//! roads, and the largest part of the network in which every node can reach every other.

use super::graph::{RoadGraph, Segment};
use super::search::{arrive_at, dijkstra, leave_from, same_segment, Scratch, Snapped, SCRATCH};

/// A fastest path: the nodes driven through, first to last, and the drive time.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub nodes: Vec<u32>,
    pub drive_ms: f64,
}

/// How far from a road a recorded fix may lie to be drawn along it, metres.
const ALONG_ROADS_SNAP_M: f64 = 40.0;

/// A drive from one point on the roads to another: the points to draw it, first to last (where
/// it starts on its segment, the nodes driven through, where it ends on its segment), and the
/// drive time.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// `(lat, lon)` of each point.
    pub points: Vec<(f64, f64)>,
    pub drive_ms: f64,
}

impl RoadGraph {
    /// The fastest legal drive from `from` to `to` (points snapped onto segments), by the same
    /// rules and times as [`RoadGraph::drive_times_to`], so its time is the ETA's; `None` when
    /// there is none.
    pub fn route(&self, from: &Snapped, to: &Snapped) -> Option<Route> {
        let start = &self.segments[from.segment as usize];
        let end = &self.segments[to.segment as usize];
        let starts = leave_from(start, from.t);
        let arrivals = arrive_at(end, to.t);
        let mut best = if from.segment == to.segment {
            same_segment(start, from.t, to.t)
        } else {
            f64::INFINITY
        };
        let nodes = SCRATCH.with_borrow_mut(|scratch| {
            let mut last_node = None;
            dijkstra(
                scratch,
                &self.forward,
                self.node_count(),
                &starts,
                |node, cost| {
                    for &(v, extra) in &arrivals {
                        if v == node && cost + extra < best {
                            best = cost + extra;
                            last_node = Some(node);
                        }
                    }
                    cost >= best
                },
            );
            last_node.map_or_else(Vec::new, |v| self.path_back(scratch, v, &starts))
        });
        if !best.is_finite() {
            return None;
        }
        let mut points = Vec::with_capacity(nodes.len() + 2);
        points.push(self.point_on(start, from.t));
        points.extend(nodes.iter().map(|&v| self.node_position(v)));
        points.push(self.point_on(end, to.t));
        Some(Route {
            points,
            drive_ms: best,
        })
    }

    /// The nodes of a fastest path the last search in `scratch` found to the settled node `v`,
    /// first to last: walked back from `v` through the settled in-neighbour that reaches it
    /// soonest, until a start reached at its own cost (no predecessor array, so the searches
    /// stay as lean as the ETA's).
    fn path_back(&self, scratch: &Scratch, mut v: u32, starts: &[(u32, f64)]) -> Vec<u32> {
        let mut nodes = vec![v];
        // A path has at most every node once; the bound only guards against zero-cost loops.
        while nodes.len() <= self.node_count() {
            let d = scratch.dist(v as usize);
            if starts.iter().any(|&(s, c)| s == v && c == d) {
                break;
            }
            let Some((u, _)) = self
                .reverse
                .edges(v)
                .filter(|&(u, _)| scratch.is_settled(u as usize))
                .map(|(u, c)| (u, scratch.dist(u as usize) + c))
                .min_by(|a, b| a.1.total_cmp(&b.1))
            else {
                break;
            };
            nodes.push(u);
            v = u;
        }
        nodes.reverse();
        nodes
    }

    /// A recorded track redrawn along the roads: between consecutive fixes, the fastest drive
    /// on the roads when one exists that is not much longer than the straight line (at most
    /// twice as long, or 100 m more); otherwise (off the roads, a gap in the record, a shortcut
    /// the graph does not know) the straight line, as recorded. Points are `(lat, lon)`.
    pub fn along_roads(&self, fixes: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let snapped: Vec<Option<Snapped>> = fixes
            .iter()
            .map(|&(lat, lon)| self.snap(lat, lon, ALONG_ROADS_SNAP_M))
            .collect();
        let mut out: Vec<(f64, f64)> = fixes.first().copied().into_iter().collect();
        for (pair, ends) in fixes.windows(2).zip(snapped.windows(2)) {
            let (a, b) = (pair[0], pair[1]);
            let straight = crate::haversine_m(a.0, a.1, b.0, b.1);
            let driven = ends[0]
                .zip(ends[1])
                .and_then(|(from, to)| self.route(&from, &to))
                .map(|r| r.points)
                .filter(|points| {
                    let length: f64 = points
                        .windows(2)
                        .map(|w| crate::haversine_m(w[0].0, w[0].1, w[1].0, w[1].1))
                        .sum();
                    length <= (2.0 * straight).max(straight + 100.0)
                });
            match driven {
                Some(points) => out.extend(points.into_iter().chain([b])),
                None => out.push(b),
            }
        }
        out
    }

    /// `(lat, lon)` of the point a fraction `t` of the way from `s.a` to `s.b`.
    fn point_on(&self, s: &Segment, t: f64) -> (f64, f64) {
        let (a, b) = (self.node_position(s.a), self.node_position(s.b));
        (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
    }

    /// The nodes one may legally drive to from `v` along one segment, with the drive time in
    /// milliseconds: the same times the ETA search adds up.
    pub fn drives_from(&self, v: u32) -> impl Iterator<Item = (u32, f64)> + '_ {
        self.forward.edges(v)
    }

    /// The fastest legal path from `from` to `to` (Dijkstra over the same edges the ETA search
    /// uses, so its time equals [`RoadGraph::drive_time`] between the two nodes); `None` when
    /// `to` cannot be reached.
    ///
    /// # Panics
    /// When a node is out of range.
    pub fn fastest_path(&self, from: u32, to: u32) -> Option<Path> {
        let n = self.node_count();
        assert!(
            (from as usize) < n && (to as usize) < n,
            "node out of range"
        );
        let starts = [(from, 0.0)];
        SCRATCH.with_borrow_mut(|scratch| {
            let mut reached = false;
            dijkstra(scratch, &self.forward, n, &starts, |node, _| {
                reached = node == to;
                reached
            });
            reached.then(|| Path {
                nodes: self.path_back(scratch, to, &starts),
                drive_ms: scratch.dist(to as usize),
            })
        })
    }

    /// The nodes of the largest strongly connected part of the network (Kosaraju's algorithm,
    /// iterative): from any of them one can legally drive to any other. Isolated fragments of
    /// an extract (a car park, a one-way stub cut at the map's edge) are left out.
    pub fn largest_strongly_connected(&self) -> Vec<u32> {
        let n = self.node_count();
        let node = |i: usize| u32::try_from(i).expect("fewer than 2^32 nodes");
        // Pass 1: nodes in order of finishing a depth-first search of the forward graph.
        let mut finished = Vec::with_capacity(n);
        let mut visited = vec![false; n];
        let mut stack: Vec<(u32, u32)> = Vec::new();
        for root in 0..n {
            if visited[root] {
                continue;
            }
            visited[root] = true;
            stack.push((node(root), self.forward.first[root]));
            while let Some((v, next_edge)) = stack.last_mut() {
                let end = self.forward.first[*v as usize + 1];
                if *next_edge < end {
                    let w = self.forward.head[*next_edge as usize];
                    *next_edge += 1;
                    if !visited[w as usize] {
                        visited[w as usize] = true;
                        stack.push((w, self.forward.first[w as usize]));
                    }
                } else {
                    finished.push(*v);
                    stack.pop();
                }
            }
        }
        // Pass 2: in reverse finishing order, each search of the reverse graph is one
        // component.
        let mut component = vec![u32::MAX; n];
        let (mut best, mut best_size, mut count) = (u32::MAX, 0usize, 0u32);
        let mut pending = Vec::new();
        for &root in finished.iter().rev() {
            if component[root as usize] != u32::MAX {
                continue;
            }
            let mut size = 0;
            component[root as usize] = count;
            pending.push(root);
            while let Some(v) = pending.pop() {
                size += 1;
                for (w, _) in self.reverse.edges(v) {
                    if component[w as usize] == u32::MAX {
                        component[w as usize] = count;
                        pending.push(w);
                    }
                }
            }
            if size > best_size {
                (best, best_size) = (count, size);
            }
            count += 1;
        }
        (0..n).filter(|&i| component[i] == best).map(node).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::tests::block;
    use super::super::{Direction, RoadGraphBuilder};

    #[test]
    fn the_fastest_path_takes_the_fast_way_round() {
        // 0 -> 1 directly on a slow lane (100 m at 1 m/s), or 0 -> 2 -> 1 on faster roads.
        let mut b = RoadGraphBuilder::new();
        let n0 = b.add_node(60.0, 25.0);
        let n1 = b.add_node(60.0, 25.001_8);
        let n2 = b.add_node(60.000_5, 25.000_9);
        b.add_segment(n0, n1, 1.0, Direction::Both);
        b.add_segment(n0, n2, 20.0, Direction::Both);
        b.add_segment(n2, n1, 20.0, Direction::Both);
        let g = b.build();
        let path = g.fastest_path(n0, n1).unwrap();
        assert_eq!(path.nodes, [n0, n2, n1]);
        let legs: f64 = path
            .nodes
            .windows(2)
            .map(|p| g.drives_from(p[0]).find(|e| e.0 == p[1]).unwrap().1)
            .sum();
        assert!((legs - path.drive_ms).abs() < 1e-9);
        assert_eq!(g.fastest_path(n1, n1).unwrap().nodes, [n1]);
    }

    #[test]
    fn a_route_between_two_points_takes_as_long_as_the_eta_says() {
        let g = crate::road::import_pbf(&crate::helsinki_pbf()).unwrap();
        let part = g.largest_strongly_connected();
        let mut seed = 7_u64;
        let mut pick = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let v = part[usize::try_from(seed >> 33).unwrap() % part.len()];
            let (lat, lon) = g.node_position(v);
            // A little off the node, as a GPS fix would be.
            g.snap(lat + 0.000_05, lon - 0.000_04, 150.0).unwrap()
        };
        for _ in 0..40 {
            let (from, to) = (pick(), pick());
            let route = g
                .route(&from, &to)
                .expect("a route inside the connected part");
            let eta = match g.drive_times_to(&to, &[from], 1)[0] {
                crate::road::DriveTime::Route(ms) => ms,
                other => panic!("no ETA: {other:?}"),
            };
            assert!(
                (route.drive_ms - eta).abs() <= 1e-6 * eta.max(1.0),
                "route {} ms, ETA {eta} ms",
                route.drive_ms
            );
            assert!(route.points.len() >= 2);
        }
    }

    #[test]
    fn a_route_starts_and_ends_where_the_points_are_and_follows_one_ways() {
        let mut b = RoadGraphBuilder::new();
        let n0 = b.add_node(60.0, 25.0);
        let n1 = b.add_node(60.0, 25.001);
        let n2 = b.add_node(60.001, 25.001);
        b.add_segment(n0, n1, 10.0, Direction::Forward);
        b.add_segment(n1, n2, 10.0, Direction::Both);
        let g = b.build();
        let from = g.snap(60.0, 25.000_25, 50.0).unwrap();
        let to = g.snap(60.000_5, 25.001, 50.0).unwrap();
        let route = g.route(&from, &to).unwrap();
        assert_eq!(route.points.len(), 3, "{route:?}");
        assert!((route.points[0].1 - 25.000_25).abs() < 1e-9);
        assert_eq!(route.points[1], (60.0, 25.001));
        assert!((route.points[2].0 - 60.000_5).abs() < 1e-9);
        // Against the one-way street there is no way back.
        assert!(g.route(&to, &from).is_none());
        // Along one segment in its direction: only the two ends.
        let ahead = g.snap(60.0, 25.000_75, 50.0).unwrap();
        assert_eq!(g.route(&from, &ahead).unwrap().points.len(), 2);
    }

    #[test]
    fn a_track_is_redrawn_along_the_roads_it_drove_unless_that_is_no_road_drive() {
        // Fixes at the two ends of an L-shaped street: the track turns the corner.
        let mut b = RoadGraphBuilder::new();
        let n0 = b.add_node(60.0, 25.0);
        let n1 = b.add_node(60.0, 25.002);
        let n2 = b.add_node(60.001, 25.002);
        b.add_segment(n0, n1, 10.0, Direction::Both);
        b.add_segment(n1, n2, 10.0, Direction::Both);
        let g = b.build();
        let track = [(60.0, 25.000_2), (60.000_8, 25.002)];
        let drawn = g.along_roads(&track);
        assert!(
            drawn.contains(&(60.0, 25.002)),
            "the corner is driven: {drawn:?}"
        );
        assert_eq!(drawn.first(), Some(&track[0]));
        assert_eq!(drawn.last(), Some(&track[1]));
        // A fix far from any road keeps its straight line.
        let off = [(60.0, 25.000_2), (60.01, 25.0)];
        assert_eq!(g.along_roads(&off), off);
        // A road drive much longer than the straight line (here the only way round is the
        // L, 2.6 times the diagonal's length) is not what was driven.
        let mut b = RoadGraphBuilder::new();
        let n0 = b.add_node(60.0, 25.0);
        let n1 = b.add_node(60.0, 25.01);
        let n2 = b.add_node(60.000_2, 25.01);
        let n3 = b.add_node(60.000_2, 25.0);
        b.add_segment(n0, n1, 10.0, Direction::Both);
        b.add_segment(n1, n2, 10.0, Direction::Both);
        b.add_segment(n2, n3, 10.0, Direction::Both);
        let g = b.build();
        let across = [(60.0, 25.000_1), (60.000_2, 25.000_1)];
        assert_eq!(g.along_roads(&across), across);
        assert!(g.along_roads(&[]).is_empty());
    }

    #[test]
    fn one_way_streets_are_driven_only_their_way() {
        let mut b = RoadGraphBuilder::new();
        let n0 = b.add_node(60.0, 25.0);
        let n1 = b.add_node(60.0, 25.001);
        b.add_segment(n0, n1, 10.0, Direction::Forward);
        let g = b.build();
        assert!(g.fastest_path(n0, n1).is_some());
        assert!(g.fastest_path(n1, n0).is_none());
        assert_eq!(g.drives_from(n1).count(), 0);
    }

    #[test]
    fn the_largest_strongly_connected_part_leaves_out_one_way_stubs() {
        let g = block();
        let all = g.largest_strongly_connected();
        assert_eq!(all.len(), g.node_count(), "the block is one connected part");
        // A stub entered by a one-way street cannot be left: it is not in the part.
        let mut b = RoadGraphBuilder::new();
        let ring: Vec<u32> = (0..4)
            .map(|i| b.add_node(60.0 + f64::from(i) * 1e-3, 25.0))
            .collect();
        for pair in ring.windows(2) {
            b.add_segment(pair[0], pair[1], 10.0, Direction::Both);
        }
        let stub = b.add_node(60.0, 25.01);
        b.add_segment(ring[0], stub, 10.0, Direction::Forward);
        let g = b.build();
        assert_eq!(g.largest_strongly_connected(), ring);
    }
}
