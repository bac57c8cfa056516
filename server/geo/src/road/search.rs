//! Drive-time search. One Dijkstra over the reverse graph from the target gives the travel
//! time from every settled node to it, so many candidate units are timed in one search.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::graph::{RoadGraph, Rows, Segment};

/// A point placed on a road segment: `t` is the fraction of the way from `a` to `b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapped {
    pub segment: u32,
    pub t: f64,
    /// Distance from the original point to the road, metres.
    pub distance_m: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Entry {
    pub cost: f64,
    pub node: u32,
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        // Min-heap on cost; ties by node for determinism.
        other
            .cost
            .total_cmp(&self.cost)
            .then_with(|| other.node.cmp(&self.node))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Per-thread search state reused from query to query: clearing half a million entries per
/// query cost more than the search itself. An entry is valid only when its stamp equals the
/// current generation, so a reset is O(1).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    slots: Vec<Slot>,
    generation: u32,
    pub heap: BinaryHeap<Entry>,
}

/// One node's search state, kept together so that a visit touches one cache line.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    dist: f64,
    reached: u32,
    settled: u32,
}

impl Scratch {
    pub fn reset(&mut self, n: usize) {
        if self.slots.len() != n || self.generation == u32::MAX {
            self.slots = vec![Slot::default(); n];
            self.generation = 0;
        }
        self.generation += 1;
        self.heap.clear();
    }

    pub fn dist(&self, v: usize) -> f64 {
        let slot = &self.slots[v];
        if slot.reached == self.generation {
            slot.dist
        } else {
            f64::INFINITY
        }
    }

    pub fn set(&mut self, v: usize, cost: f64) {
        self.slots[v].reached = self.generation;
        self.slots[v].dist = cost;
    }

    pub fn is_settled(&self, v: usize) -> bool {
        self.slots[v].settled == self.generation
    }

    pub fn settle(&mut self, v: usize) {
        self.slots[v].settled = self.generation;
    }

    /// Sets the cost of `v` and queues it when `cost` improves on what is known.
    pub fn improve(&mut self, v: u32, cost: f64) {
        if cost < self.dist(v as usize) {
            self.set(v as usize, cost);
            self.heap.push(Entry { cost, node: v });
        }
    }
}

thread_local! {
    pub(super) static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Dijkstra over `rows` from several start nodes. After each node is settled, `settled` is
/// told its cost and may stop the search by returning `true`. Returns whether the search ran
/// until nothing was left; `scratch` then holds the tentative-or-final cost of each node.
pub(super) fn dijkstra(
    scratch: &mut Scratch,
    rows: &Rows,
    n: usize,
    starts: &[(u32, f64)],
    mut settled: impl FnMut(u32, f64) -> bool,
) -> bool {
    scratch.reset(n);
    for &(node, cost) in starts {
        scratch.improve(node, cost);
    }
    while let Some(Entry { cost, node }) = scratch.heap.pop() {
        let v = node as usize;
        if scratch.is_settled(v) || cost > scratch.dist(v) {
            continue;
        }
        scratch.settle(v);
        if settled(node, cost) {
            return false;
        }
        for (u, c) in rows.edges(node) {
            scratch.improve(u, cost + c);
        }
    }
    true
}

/// The node a point at an end of its segment stands on (`t` is clamped to the segment when
/// snapping, so a fix at a junction or past a dead end lands exactly there): from there any
/// road out of that node may be taken, and it is reached from any road in, whatever the
/// directions of the segment it was snapped to.
fn standing_on(s: &Segment, t: f64) -> Option<u32> {
    if t <= 0.0 {
        Some(s.a)
    } else if t >= 1.0 {
        Some(s.b)
    } else {
        None
    }
}

/// Where a search from a point on a segment may enter the graph, and at what cost.
pub(super) fn leave_from(s: &Segment, t: f64) -> Vec<(u32, f64)> {
    let mut out = Vec::with_capacity(3);
    out.extend(standing_on(s, t).map(|node| (node, 0.0)));
    if let Some(ms) = s.forward_ms {
        out.push((s.b, (1.0 - t) * ms));
    }
    if let Some(ms) = s.backward_ms {
        out.push((s.a, t * ms));
    }
    out
}

/// From which nodes a point on a segment can be reached, and at what extra cost.
pub(super) fn arrive_at(s: &Segment, t: f64) -> Vec<(u32, f64)> {
    let mut out = Vec::with_capacity(3);
    out.extend(standing_on(s, t).map(|node| (node, 0.0)));
    if let Some(ms) = s.forward_ms {
        out.push((s.a, t * ms));
    }
    if let Some(ms) = s.backward_ms {
        out.push((s.b, (1.0 - t) * ms));
    }
    out
}

/// Drive time along one segment when source and target lie on it in a legal order.
pub(super) fn same_segment(s: &Segment, from_t: f64, to_t: f64) -> f64 {
    let mut best = f64::INFINITY;
    if let Some(ms) = s.forward_ms {
        if from_t <= to_t {
            best = best.min((to_t - from_t) * ms);
        }
    }
    if let Some(ms) = s.backward_ms {
        if from_t >= to_t {
            best = best.min((from_t - to_t) * ms);
        }
    }
    best
}

/// The drive time of one source found by [`RoadGraph::drive_times_to`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DriveTime {
    /// Fastest legal route, milliseconds.
    Route(f64),
    /// No legal route exists.
    NoRoute,
    /// Not timed: the search stopped once `k` sources were timed, and this one would arrive
    /// after all of them.
    Beyond,
}

/// How [`RoadGraph::drive_times_to`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtaSearch {
    /// The contraction hierarchy: one upward search from the target, then one upward search
    /// per source, cut off once the source provably arrives after the `k` soonest so far.
    Hierarchy,
    /// One Dijkstra over the reversed graph from the target, until the `k` soonest are known.
    BoundedDijkstra,
}

impl RoadGraph {
    /// Drive times from `sources` to `target`, exact for the `k` soonest sources; a source
    /// that provably arrives after `k` others may be left [`DriveTime::Beyond`]. Sources listed
    /// nearest first are timed fastest.
    pub fn drive_times_to(
        &self,
        target: &Snapped,
        sources: &[Snapped],
        k: usize,
    ) -> Vec<DriveTime> {
        match self.eta_search {
            EtaSearch::Hierarchy => self.drive_times_by_hierarchy(target, sources, k),
            EtaSearch::BoundedDijkstra => self.drive_times_by_dijkstra(target, sources, k),
        }
    }

    /// One search over the reversed graph, which stops as soon as the `k` soonest sources are
    /// known.
    fn drive_times_by_dijkstra(
        &self,
        target: &Snapped,
        sources: &[Snapped],
        k: usize,
    ) -> Vec<DriveTime> {
        let ts = &self.segments[target.segment as usize];
        // Per source: the best time known so far, starting with a route along the target's own
        // segment; per graph node: the sources that leave through it and at what extra cost.
        let mut best: Vec<f64> = sources
            .iter()
            .map(|s| {
                if s.segment == target.segment {
                    same_segment(ts, s.t, target.t)
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        let mut exits: std::collections::HashMap<u32, Vec<(usize, f64)>> =
            std::collections::HashMap::new();
        for (i, s) in sources.iter().enumerate() {
            for (v, c) in leave_from(&self.segments[s.segment as usize], s.t) {
                exits.entry(v).or_default().push((i, c));
            }
        }
        let kth = |best: &[f64]| {
            let mut sorted = best.to_vec();
            sorted.sort_by(f64::total_cmp);
            sorted.get(k.max(1) - 1).copied().unwrap_or(f64::INFINITY)
        };
        let mut kth_best = kth(&best);
        let mut radius = 0.0;
        let mut exits_left = exits.len();
        let exhausted = SCRATCH.with_borrow_mut(|scratch| {
            dijkstra(
                scratch,
                &self.reverse,
                self.node_count(),
                &arrive_at(ts, target.t),
                |node, cost| {
                    radius = cost;
                    if let Some(list) = exits.get(&node) {
                        for &(i, c) in list {
                            best[i] = best[i].min(cost + c);
                        }
                        kth_best = kth(&best);
                        exits_left -= 1;
                    }
                    // Every source not yet timed leaves through a node costing at least `cost`.
                    kth_best <= cost || exits_left == 0
                },
            )
        });
        let all_final = exhausted || exits_left == 0;
        best.into_iter()
            .map(|b| {
                if b.is_finite() && (all_final || b <= radius) {
                    DriveTime::Route(b)
                } else if all_final {
                    DriveTime::NoRoute
                } else {
                    DriveTime::Beyond
                }
            })
            .collect()
    }

    /// Drive time in milliseconds from `source` to `target` by a forward search: the plain
    /// reference the batched reverse search is checked against.
    pub fn drive_time(&self, source: &Snapped, target: &Snapped) -> Option<f64> {
        let seg = &self.segments[source.segment as usize];
        let ts = &self.segments[target.segment as usize];
        let mut best = SCRATCH.with_borrow_mut(|scratch| {
            dijkstra(
                scratch,
                &self.forward,
                self.node_count(),
                &leave_from(seg, source.t),
                |_, _| false,
            );
            arrive_at(ts, target.t)
                .into_iter()
                .map(|(v, c)| scratch.dist(v as usize) + c)
                .fold(f64::INFINITY, f64::min)
        });
        if source.segment == target.segment {
            best = best.min(same_segment(ts, source.t, target.t));
        }
        best.is_finite().then_some(best)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{Direction, RoadGraphBuilder};
    use super::DriveTime;

    /// A graph of `nodes` (lat, lon), numbered in order, and `segments` at 10 m/s.
    fn graph(nodes: &[(f64, f64)], segments: &[(u32, u32, Direction)]) -> super::RoadGraph {
        let mut g = RoadGraphBuilder::new();
        for &(lat, lon) in nodes {
            g.add_node(lat, lon);
        }
        for &(a, b, direction) in segments {
            g.add_segment(a, b, 10.0, direction);
        }
        g.build()
    }

    /// A square block: a→b→c→d→a, with a→b one-way.
    pub(crate) fn block() -> super::RoadGraph {
        graph(
            &[
                (60.0, 24.0),
                (60.0, 24.002),
                (60.001, 24.002),
                (60.001, 24.0),
            ],
            &[
                (0, 1, Direction::Forward),
                (1, 2, Direction::Both),
                (2, 3, Direction::Both),
                (3, 0, Direction::Both),
            ],
        )
    }

    #[test]
    fn one_way_forces_the_long_way_round() {
        let g = block();
        // A point 90 % along a→b, and a target 10 % along it: going back is illegal.
        let source = g.snap(60.0, 24.0018, 50.0).unwrap();
        let target = g.snap(60.0, 24.0002, 50.0).unwrap();
        assert_eq!(source.segment, target.segment);
        let t = g.drive_time(&source, &target).unwrap();
        let forward = g.drive_time(&target, &source).unwrap();
        assert!(
            t > 3.0 * forward,
            "legal route {t} ms vs direct {forward} ms"
        );
        let batched = g.drive_times_to(&target, &[source, target], 2);
        assert!(
            matches!(batched[0], DriveTime::Route(ms) if (ms - t).abs() < 1e-6),
            "{batched:?}"
        );
        assert_eq!(batched[1], DriveTime::Route(0.0));
        // Asked for the soonest one only, the bounded Dijkstra stops before timing the far
        // source; the hierarchy, taking the sources in the order given, times it first.
        let mut g = g;
        g.set_eta_search(super::EtaSearch::BoundedDijkstra);
        assert_eq!(
            g.drive_times_to(&target, &[source, target], 1)[0],
            DriveTime::Beyond
        );
    }

    /// A point exactly on a junction, snapped to a one-way stub that leads from it into a dead
    /// end (or out of one into it), still drives on from the junction and is reached through it.
    #[test]
    fn a_point_on_a_junction_is_not_trapped_on_a_one_way_stub() {
        // Junction 0, a street 0–1–2, a one-way stub from 0 into dead end 3 and one from
        // dead end 4 into 0.
        let mut g = graph(
            &[
                (60.0, 24.0),
                (60.0, 24.002),
                (60.0, 24.004),
                (60.001, 24.0),
                (59.999, 24.0),
            ],
            &[
                (0, 1, Direction::Both),
                (1, 2, Direction::Both),
                (0, 3, Direction::Forward),
                (4, 0, Direction::Forward),
            ],
        );
        let at = |segment: u32, t: f64| super::Snapped {
            segment,
            t,
            distance_m: 0.0,
        };
        let (into_dead_end, out_of_blind) = (at(2, 0.0), at(3, 1.0));
        let far = at(1, 0.5);
        let via_junction = g.drive_time(&at(0, 0.0), &far).unwrap();
        assert_eq!(g.drive_time(&into_dead_end, &far), Some(via_junction));
        assert_eq!(g.drive_time(&out_of_blind, &far), Some(via_junction));
        let back = g.drive_time(&far, &at(0, 0.0)).unwrap();
        assert_eq!(g.drive_time(&far, &into_dead_end), Some(back));
        assert_eq!(g.drive_time(&far, &out_of_blind), Some(back));
        for search in [
            super::EtaSearch::Hierarchy,
            super::EtaSearch::BoundedDijkstra,
        ] {
            g.set_eta_search(search);
            assert_eq!(
                g.drive_times_to(&far, &[into_dead_end, out_of_blind], 2),
                [
                    DriveTime::Route(via_junction),
                    DriveTime::Route(via_junction)
                ],
                "{search:?}"
            );
            assert_eq!(
                g.drive_times_to(&into_dead_end, &[far], 1),
                [DriveTime::Route(back)],
                "{search:?}"
            );
        }
    }

    #[test]
    fn snapping_respects_the_bound() {
        let g = block();
        assert!(g.snap(60.0005, 24.001, 10.0).is_none());
        let s = g.snap(60.00001, 24.001, 10.0).unwrap();
        assert!(s.distance_m < 2.0);
        assert!((s.t - 0.5).abs() < 0.01);
    }
}
