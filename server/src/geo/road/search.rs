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
struct Entry {
    cost: f64,
    node: u32,
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

/// Dijkstra over `rows` from several start nodes, settling nodes until every node in `wanted`
/// is settled or nothing is left. Returns the tentative-or-final cost of each node.
fn dijkstra(rows: &Rows, n: usize, starts: &[(u32, f64)], wanted: &[u32]) -> Vec<f64> {
    let mut dist = vec![f64::INFINITY; n];
    let mut heap = BinaryHeap::new();
    for &(node, cost) in starts {
        if cost < dist[node as usize] {
            dist[node as usize] = cost;
            heap.push(Entry { cost, node });
        }
    }
    let mut settled = vec![false; n];
    let mut remaining: usize = {
        let mut w: Vec<u32> = wanted.to_vec();
        w.sort_unstable();
        w.dedup();
        w.len()
    };
    let mut is_wanted = vec![false; if wanted.is_empty() { 0 } else { n }];
    for &w in wanted {
        is_wanted[w as usize] = true;
    }
    while let Some(Entry { cost, node }) = heap.pop() {
        let v = node as usize;
        if settled[v] || cost > dist[v] {
            continue;
        }
        settled[v] = true;
        if !wanted.is_empty() && is_wanted[v] {
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
        for (u, c) in rows.edges(node) {
            let next = cost + c;
            if next < dist[u as usize] {
                dist[u as usize] = next;
                heap.push(Entry {
                    cost: next,
                    node: u,
                });
            }
        }
    }
    dist
}

/// Where a search from a point on a segment may enter the graph, and at what cost.
fn leave_from(s: &Segment, t: f64) -> Vec<(u32, f64)> {
    let mut out = Vec::with_capacity(2);
    if let Some(ms) = s.forward_ms {
        out.push((s.b, (1.0 - t) * ms));
    }
    if let Some(ms) = s.backward_ms {
        out.push((s.a, t * ms));
    }
    out
}

/// From which nodes a point on a segment can be reached, and at what extra cost.
fn arrive_at(s: &Segment, t: f64) -> Vec<(u32, f64)> {
    let mut out = Vec::with_capacity(2);
    if let Some(ms) = s.forward_ms {
        out.push((s.a, t * ms));
    }
    if let Some(ms) = s.backward_ms {
        out.push((s.b, (1.0 - t) * ms));
    }
    out
}

/// Drive time along one segment when source and target lie on it in a legal order.
fn same_segment(s: &Segment, from_t: f64, to_t: f64) -> f64 {
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

impl RoadGraph {
    /// Drive time in milliseconds from each of `sources` to `target`, `None` where no legal
    /// route exists. One reverse search serves all sources.
    pub fn drive_times_to(&self, target: &Snapped, sources: &[Snapped]) -> Vec<Option<f64>> {
        let ts = &self.segments[target.segment as usize];
        let starts = arrive_at(ts, target.t);
        let wanted: Vec<u32> = sources
            .iter()
            .flat_map(|s| leave_from(&self.segments[s.segment as usize], s.t))
            .map(|(v, _)| v)
            .collect();
        let dist = dijkstra(&self.reverse, self.node_count(), &starts, &wanted);
        sources
            .iter()
            .map(|s| {
                let seg = &self.segments[s.segment as usize];
                let mut best = leave_from(seg, s.t)
                    .into_iter()
                    .map(|(v, c)| c + dist[v as usize])
                    .fold(f64::INFINITY, f64::min);
                if s.segment == target.segment {
                    best = best.min(same_segment(seg, s.t, target.t));
                }
                best.is_finite().then_some(best)
            })
            .collect()
    }

    /// Drive time in milliseconds from `source` to `target` by a forward search: the plain
    /// reference the batched reverse search is checked against.
    pub fn drive_time(&self, source: &Snapped, target: &Snapped) -> Option<f64> {
        let seg = &self.segments[source.segment as usize];
        let dist = dijkstra(
            &self.forward,
            self.node_count(),
            &leave_from(seg, source.t),
            &[],
        );
        let ts = &self.segments[target.segment as usize];
        let mut best = arrive_at(ts, target.t)
            .into_iter()
            .map(|(v, c)| dist[v as usize] + c)
            .fold(f64::INFINITY, f64::min);
        if source.segment == target.segment {
            best = best.min(same_segment(ts, source.t, target.t));
        }
        best.is_finite().then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Direction, RoadGraphBuilder};

    /// A square block: a→b→c→d→a, with a→b one-way.
    fn block() -> super::RoadGraph {
        let mut g = RoadGraphBuilder::new();
        let a = g.add_node(60.0, 24.0);
        let b = g.add_node(60.0, 24.002);
        let c = g.add_node(60.001, 24.002);
        let d = g.add_node(60.001, 24.0);
        g.add_segment(a, b, 10.0, Direction::Forward);
        g.add_segment(b, c, 10.0, Direction::Both);
        g.add_segment(c, d, 10.0, Direction::Both);
        g.add_segment(d, a, 10.0, Direction::Both);
        g.build()
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
        let batched = g.drive_times_to(&target, &[source, target]);
        assert!((batched[0].unwrap() - t).abs() < 1e-6);
        assert_eq!(batched[1], Some(0.0));
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
