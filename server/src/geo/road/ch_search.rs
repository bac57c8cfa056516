//! Drive times on the contraction hierarchy, many sources to one target (reverse PHAST
//! restricted to the sources): an upward search from the target over reversed edges labels
//! the nodes above it with their time to the target; then the nodes reachable upward from the
//! sources are swept top-down, each taking the best of its own label and its upward edges. The
//! candidates of one query lie close together, so their upward sets share most nodes and the
//! sweep costs little more than one search.

use super::graph::{RoadGraph, Rows};
use super::search::{arrive_at, leave_from, same_segment, DriveTime, Entry, Scratch, Snapped};

/// Per-thread search state, reused from query to query.
#[derive(Debug, Default)]
struct Sweep {
    /// Labels of the upward search from the target.
    to_target: Scratch,
    /// Exact time to the target of each node reachable upward from a source.
    from_above: Scratch,
    /// Those nodes, each after every node its upward edges lead to.
    order: Vec<u32>,
    /// Depth-first stack: node, and whether its upward neighbours are done.
    stack: Vec<(u32, bool)>,
}

thread_local! {
    static SWEEP: std::cell::RefCell<Sweep> = std::cell::RefCell::default();
}

/// Upward search from `starts` over `up` until nothing is left. A node whose label can be
/// beaten through a node above it (`down` lists those edges) is not expanded: it cannot be the
/// top of a shortest up-down path with that label (stall-on-demand).
fn search_up(scratch: &mut Scratch, up: &Rows, down: &Rows, n: usize, starts: &[(u32, f64)]) {
    scratch.reset(n);
    for &(node, cost) in starts {
        scratch.improve(node, cost);
    }
    while let Some(Entry { cost, node }) = scratch.heap.pop() {
        if scratch.is_settled(node as usize) || cost > scratch.dist(node as usize) {
            continue;
        }
        scratch.settle(node as usize);
        let stalled = down
            .edges(node)
            .any(|(above, c)| scratch.dist(above as usize) + c < cost);
        if !stalled {
            for (u, c) in up.edges(node) {
                scratch.improve(u, cost + c);
            }
        }
    }
}

impl Sweep {
    /// Lists in `order` every node reachable upward from `starts`, each after all nodes its
    /// upward edges lead to (depth-first post-order; the upward graph has no cycle).
    fn collect_upward(&mut self, up: &Rows, n: usize, starts: impl Iterator<Item = u32>) {
        self.from_above.reset(n);
        self.order.clear();
        self.stack.clear();
        self.stack.extend(starts.map(|v| (v, false)));
        while let Some((v, done)) = self.stack.pop() {
            if done {
                self.order.push(v);
            } else if !self.from_above.is_settled(v as usize) {
                self.from_above.settle(v as usize);
                self.stack.push((v, true));
                self.stack.extend(
                    up.edges(v)
                        .filter(|&(w, _)| !self.from_above.is_settled(w as usize))
                        .map(|(w, _)| (w, false)),
                );
            }
        }
    }

    /// Times every node in `order`: the nodes above it are already timed.
    fn sweep_down(&mut self, up: &Rows) {
        for &v in &self.order {
            let through_above = up
                .edges(v)
                .map(|(w, c)| c + self.from_above.dist(w as usize))
                .fold(f64::INFINITY, f64::min);
            let best = self.to_target.dist(v as usize).min(through_above);
            self.from_above.set(v as usize, best);
        }
    }
}

impl RoadGraph {
    /// [`RoadGraph::drive_times_to`] on the contraction hierarchy: every source is timed exactly.
    pub(super) fn drive_times_by_hierarchy(
        &self,
        target: &Snapped,
        sources: &[Snapped],
    ) -> Vec<DriveTime> {
        let h = &self.hierarchy;
        let n = self.node_count();
        let ts = &self.segments[target.segment as usize];
        let exits: Vec<Vec<(u32, f64)>> = sources
            .iter()
            .map(|s| leave_from(&self.segments[s.segment as usize], s.t))
            .collect();
        SWEEP.with_borrow_mut(|sweep| {
            search_up(
                &mut sweep.to_target,
                &h.up_in,
                &h.up_out,
                n,
                &arrive_at(ts, target.t),
            );
            sweep.collect_upward(&h.up_out, n, exits.iter().flatten().map(|&(v, _)| v));
            sweep.sweep_down(&h.up_out);
            sources
                .iter()
                .zip(&exits)
                .map(|(s, exits)| {
                    let along = if s.segment == target.segment {
                        same_segment(ts, s.t, target.t)
                    } else {
                        f64::INFINITY
                    };
                    let best = exits
                        .iter()
                        .map(|&(v, c)| c + sweep.from_above.dist(v as usize))
                        .fold(along, f64::min);
                    if best.is_finite() {
                        DriveTime::Route(best)
                    } else {
                        DriveTime::NoRoute
                    }
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Direction, EtaSearch, RoadGraph, RoadGraphBuilder};
    use super::{DriveTime, Snapped};
    use proptest::prelude::*;

    /// A random directed graph: nodes scattered over about 1 km², segments between random
    /// pairs with random speeds and one-way rules.
    fn random_graph(nodes: &[(f64, f64)], segments: &[(usize, usize, u8, u8)]) -> RoadGraph {
        let mut g = RoadGraphBuilder::new();
        let ids: Vec<u32> = nodes
            .iter()
            .map(|&(y, x)| g.add_node(60.0 + y * 0.01, 24.0 + x * 0.02))
            .collect();
        for &(a, b, speed, dir) in segments {
            let direction = match dir % 3 {
                0 => Direction::Both,
                1 => Direction::Forward,
                _ => Direction::Backward,
            };
            g.add_segment(
                ids[a % ids.len()],
                ids[b % ids.len()],
                f64::from(speed) + 1.0,
                direction,
            );
        }
        g.build()
    }

    fn snap(g: &RoadGraph, (y, x): (f64, f64)) -> Option<Snapped> {
        g.snap(60.0 + y * 0.01, 24.0 + x * 0.02, 10_000.0)
    }

    fn same(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(1.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Every source timed on the hierarchy (and by the bounded Dijkstra) equals a plain
        /// forward Dijkstra; asked for the `k` soonest only, every route given is still exact
        /// and nothing left out is sooner.
        #[test]
        fn hierarchy_times_equal_dijkstra(
            nodes in proptest::collection::vec((0.0..1.0f64, 0.0..1.0f64), 2..40),
            segments in proptest::collection::vec((0usize..40, 0usize..40, 0u8..30, 0u8..3), 1..90),
            points in proptest::collection::vec((0.0..1.0f64, 0.0..1.0f64), 2..12),
            k in 1usize..4,
        ) {
            let mut g = random_graph(&nodes, &segments);
            prop_assume!(g.segment_count() > 0);
            let snapped: Vec<Snapped> = points.iter().filter_map(|&p| snap(&g, p)).collect();
            let (target, sources) = snapped.split_first().unwrap();
            let reference: Vec<Option<f64>> =
                sources.iter().map(|s| g.drive_time(s, target)).collect();
            let mut sorted: Vec<f64> = reference.iter().flatten().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let kth = sorted.get(k - 1).copied().unwrap_or(f64::INFINITY);
            for search in [EtaSearch::Hierarchy, EtaSearch::BoundedDijkstra] {
                g.set_eta_search(search);
                let all = g.drive_times_to(target, sources, sources.len());
                for (got, want) in all.iter().zip(&reference) {
                    match (got, want) {
                        (DriveTime::Route(a), Some(b)) => prop_assert!(same(*a, *b), "{search:?} {a} vs {b}"),
                        (DriveTime::NoRoute, None) => {}
                        _ => prop_assert!(false, "{search:?} {got:?} vs {want:?}"),
                    }
                }
                let some = g.drive_times_to(target, sources, k);
                for (got, want) in some.iter().zip(&reference) {
                    match (got, want) {
                        (DriveTime::Route(a), Some(b)) => prop_assert!(same(*a, *b), "{search:?} {a} vs {b}"),
                        (DriveTime::Beyond, Some(b)) => prop_assert!(*b >= kth, "{search:?} {b} left out, kth {kth}"),
                        (DriveTime::NoRoute | DriveTime::Beyond, None) => {}
                        _ => prop_assert!(false, "{search:?} {got:?} vs {want:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn both_searches_agree_on_a_one_way_block() {
        let mut g = RoadGraphBuilder::new();
        let a = g.add_node(60.0, 24.0);
        let b = g.add_node(60.0, 24.002);
        let c = g.add_node(60.001, 24.002);
        let d = g.add_node(60.001, 24.0);
        g.add_segment(a, b, 10.0, Direction::Forward);
        g.add_segment(b, c, 10.0, Direction::Both);
        g.add_segment(c, d, 10.0, Direction::Both);
        g.add_segment(d, a, 10.0, Direction::Both);
        let mut g = g.build();
        let source = g.snap(60.0, 24.0018, 50.0).unwrap();
        let target = g.snap(60.0, 24.0002, 50.0).unwrap();
        let by_hierarchy = g.drive_times_to(&target, &[source, target], 2);
        g.set_eta_search(EtaSearch::BoundedDijkstra);
        assert_eq!(
            by_hierarchy,
            g.drive_times_to(&target, &[source, target], 2)
        );
    }
}
