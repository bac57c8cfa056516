//! Drive times on the contraction hierarchy, many sources to one target, for ranking the `k`
//! soonest: an upward search from the target over reversed edges labels the nodes above it
//! with their time to the target; then each source, in the order given (nearest first), runs
//! its own upward search and meets those labels. A source's search stops when its next node
//! costs at least its best meeting (its time is then exact), or more than the `k`-th soonest
//! time already known (it then arrives after `k` others), so the bound tightens with the
//! nearest sources and the later searches stay small. A source that is farther in a straight
//! line than the `k`-th soonest time can cover at the highest speed is not searched at all.
//! The target's search goes only as far as the answers need: a time or a bound no greater
//! than the cost it has reached is final, else it goes further and the source is searched again.

use super::graph::{RoadGraph, Rows};
use super::search::{arrive_at, leave_from, same_segment, DriveTime, Entry, Scratch, Snapped};

/// Per-thread search state, reused from query to query.
#[derive(Debug, Default)]
struct Query {
    /// Labels of the upward search from the target.
    to_target: Scratch,
    /// The graph and target those labels belong to: the rounds of one ranking, which widen
    /// the candidates, ask again for the same target.
    labelled: Option<(u64, u32, u64)>,
    /// How far the upward search from the target has gone: only as far as the sources need.
    reached: f64,
    /// The upward search of the current source.
    from_source: Scratch,
    /// The `k` soonest times found so far, ascending.
    soonest: Vec<f64>,
}

thread_local! {
    static QUERY: std::cell::RefCell<Query> = std::cell::RefCell::default();
}

/// Whether a node of an upward search, at `cost`, can be reached more cheaply through a node
/// above it (`down` lists those edges): it is then not the top of a shortest up-down path with
/// that label and need not be expanded (stall-on-demand).
fn stalled(scratch: &Scratch, down: &Rows, node: u32, cost: f64) -> bool {
    down.edges(node)
        .any(|(above, c)| scratch.dist(above as usize) + c < cost)
}

/// Continues the upward search in `scratch` over `up` until the next node costs more than
/// `limit`. Every node it has not settled then costs more than `limit`; the labels of the
/// nodes it has are exact unless stalled, and every label is the cost of some path.
fn search_up_to(scratch: &mut Scratch, up: &Rows, down: &Rows, limit: f64) {
    while let Some(&Entry { cost, node }) = scratch.heap.peek() {
        if cost > limit {
            break;
        }
        scratch.heap.pop();
        if scratch.is_settled(node as usize) || cost > scratch.dist(node as usize) {
            continue;
        }
        scratch.settle(node as usize);
        if !stalled(scratch, down, node, cost) {
            for (u, c) in up.edges(node) {
                scratch.improve(u, cost + c);
            }
        }
    }
}

impl Query {
    /// Times one source: its upward search from `starts` meets the target's labels. `best`
    /// is a route already known (along the target's own segment); `bound` the `k`-th soonest
    /// time so far.
    fn time_source(
        &mut self,
        h: &Rows,
        down: &Rows,
        n: usize,
        starts: &[(u32, f64)],
        mut best: f64,
        bound: f64,
    ) -> DriveTime {
        let scratch = &mut self.from_source;
        scratch.reset(n);
        for &(node, cost) in starts {
            scratch.improve(node, cost);
        }
        while let Some(Entry { cost, node }) = scratch.heap.pop() {
            if cost >= best {
                break;
            }
            if cost > bound {
                // Every route not yet found costs at least `cost`.
                return DriveTime::Beyond;
            }
            if scratch.is_settled(node as usize) || cost > scratch.dist(node as usize) {
                continue;
            }
            scratch.settle(node as usize);
            best = best.min(cost + self.to_target.dist(node as usize));
            if !stalled(scratch, down, node, cost) {
                for (u, c) in h.edges(node) {
                    scratch.improve(u, cost + c);
                }
            }
        }
        if best.is_finite() {
            DriveTime::Route(best)
        } else {
            DriveTime::NoRoute
        }
    }

    /// Records a source's time among the `k` soonest.
    fn record(&mut self, k: usize, time: DriveTime) {
        if let DriveTime::Route(ms) = time {
            let at = self.soonest.partition_point(|&t| t <= ms);
            if at < k {
                self.soonest.insert(at, ms);
                self.soonest.truncate(k);
            }
        }
    }

    /// Takes the upward search from the target at least as far as `limit`.
    fn reach(&mut self, h: &Rows, down: &Rows, limit: f64) {
        if limit > self.reached {
            search_up_to(&mut self.to_target, h, down, limit);
            self.reached = if self.to_target.heap.is_empty() {
                f64::INFINITY
            } else {
                limit
            };
        }
    }

    /// Times one source exactly against the target's labels, taking the target's upward search
    /// further while the answer depends on nodes it has not settled yet.
    fn time_exactly(
        &mut self,
        h: &super::contract::Hierarchy,
        n: usize,
        starts: &[(u32, f64)],
        along: f64,
        bound: f64,
        guess: f64,
    ) -> DriveTime {
        self.reach(&h.up_in, &h.up_out, bound.min(guess));
        loop {
            let time = self.time_source(&h.up_out, &h.up_in, n, starts, along, bound);
            // A route through a node the target's search has not settled costs more than
            // `reached`: a route or a bound within it is final.
            let needed = match time {
                DriveTime::Route(ms) => ms,
                DriveTime::Beyond => bound,
                DriveTime::NoRoute => f64::INFINITY,
            };
            if needed <= self.reached {
                return time;
            }
            self.reach(&h.up_in, &h.up_out, needed);
        }
    }

    /// The `k`-th soonest time so far, or infinity.
    fn bound(&self, k: usize) -> f64 {
        self.soonest.get(k - 1).copied().unwrap_or(f64::INFINITY)
    }
}

impl RoadGraph {
    /// [`RoadGraph::drive_times_to`] on the contraction hierarchy.
    pub(super) fn drive_times_by_hierarchy(
        &self,
        target: &Snapped,
        sources: &[Snapped],
        k: usize,
    ) -> Vec<DriveTime> {
        let h = &self.hierarchy;
        let n = self.node_count();
        let k = k.max(1);
        let ts = &self.segments[target.segment as usize];
        let target_xy = self.snapped_xy(target);
        // Travel times are lengths over speeds, so no route is faster than the straight line
        // at the top speed; the margin covers rounding.
        let ms_per_m = 1000.0 / self.max_speed_mps() * (1.0 - 1e-9);
        QUERY.with_borrow_mut(|q| {
            q.soonest.clear();
            let labels = Some((self.id, target.segment, target.t.to_bits()));
            if q.labelled != labels {
                q.to_target.reset(n);
                for (node, cost) in arrive_at(ts, target.t) {
                    q.to_target.improve(node, cost);
                }
                q.reached = f64::NEG_INFINITY;
                q.labelled = labels;
            }
            sources
                .iter()
                .map(|s| {
                    let along = if s.segment == target.segment {
                        same_segment(ts, s.t, target.t)
                    } else {
                        f64::INFINITY
                    };
                    let bound = q.bound(k);
                    let xy = self.snapped_xy(s);
                    let straight = (xy.0 - target_xy.0).hypot(xy.1 - target_xy.1) * ms_per_m;
                    let time = if straight > bound {
                        DriveTime::Beyond
                    } else {
                        let starts = leave_from(&self.segments[s.segment as usize], s.t);
                        // Routes are seldom three times the straight line at the top speed.
                        q.time_exactly(h, n, &starts, along, bound, 3.0 * straight)
                    };
                    q.record(k, time);
                    time
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::tests::block;
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
        let mut g = block();
        let source = g.snap(60.0, 24.0018, 50.0).unwrap();
        let target = g.snap(60.0, 24.0002, 50.0).unwrap();
        let by_hierarchy = g.drive_times_to(&target, &[source, target], 2);
        g.set_eta_search(EtaSearch::BoundedDijkstra);
        assert_eq!(
            by_hierarchy,
            g.drive_times_to(&target, &[source, target], 2)
        );
    }

    #[test]
    fn a_source_behind_the_k_soonest_is_not_timed() {
        let mut g = block();
        g.set_eta_search(EtaSearch::Hierarchy);
        // The target 10 % along the one-way a→b, a source 90 % along it, which must go round.
        let source = g.snap(60.0, 24.0018, 50.0).unwrap();
        let target = g.snap(60.0, 24.0002, 50.0).unwrap();
        let all = g.drive_times_to(&target, &[target, source], 2);
        assert_eq!(all[0], DriveTime::Route(0.0));
        assert!(
            matches!(all[1], DriveTime::Route(ms) if ms > 0.0),
            "{all:?}"
        );
        // Asked for the soonest only, the source on the target itself bounds the other.
        assert_eq!(
            g.drive_times_to(&target, &[target, source], 1),
            [DriveTime::Route(0.0), DriveTime::Beyond]
        );
    }
}
