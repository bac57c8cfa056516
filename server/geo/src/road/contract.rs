//! Contraction hierarchies, preprocessing: nodes are removed one at a time, least important
//! first, and a shortcut replaces every shortest path that ran through the removed node.
//!
//! Importance is the edge difference (shortcuts added minus edges removed), the number of
//! neighbours already contracted and the node's level, weighted 4 : 2 : 1 (the fewest shortcuts
//! on the benchmark grid among the weights tried). It is updated lazily: a node taken from the
//! queue has its shortcuts re-counted and goes back if it is no longer the least important;
//! the neighbours of a contracted node are re-queued with their cheap terms updated. Edges keep
//! their direction, so one-way streets stay exact.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::graph::Rows;
use super::search::{Entry, Scratch};

/// Nodes a witness search may settle while scoring a node, and while contracting it. A search
/// cut short can only add a shortcut that was not needed; it never loses a shortest path.
const WITNESS_SETTLED_SCORING: usize = 50;
const WITNESS_SETTLED_CONTRACTING: usize = 400;

/// The upward edges of a contraction hierarchy: every edge (original or shortcut) leads from
/// the endpoint contracted first to the one contracted later.
#[derive(Debug, Default)]
pub(crate) struct Hierarchy {
    /// `v → w` with `w` contracted after `v`, listed at `v`.
    pub up_out: Rows,
    /// `u → v` with `u` contracted after `v`, listed at `v` with head `u`.
    pub up_in: Rows,
}

impl Hierarchy {
    pub fn edge_count(&self) -> usize {
        self.up_out.head.len() + self.up_in.head.len()
    }

    pub fn memory_bytes(&self) -> usize {
        self.up_out.memory_bytes() + self.up_in.memory_bytes()
    }
}

#[derive(Debug, Clone, Copy)]
struct Arc {
    node: u32,
    cost: f64,
}

/// The remaining graph while contracting: only edges between nodes not yet contracted.
struct Contractor {
    out: Vec<Vec<Arc>>,
    inc: Vec<Vec<Arc>>,
    edge_difference: Vec<i64>,
    deleted_neighbours: Vec<i64>,
    level: Vec<i64>,
    witness: Scratch,
}

/// A shortcut `from → to` needed when a node is contracted.
type Shortcut = (u32, u32, f64);

impl Contractor {
    fn new(forward: &Rows) -> Self {
        let n = forward.first.len().saturating_sub(1);
        let mut out: Vec<Vec<Arc>> = vec![Vec::new(); n];
        let mut inc: Vec<Vec<Arc>> = vec![Vec::new(); n];
        for (v, outs) in out.iter_mut().enumerate() {
            let tail = u32::try_from(v).unwrap_or(u32::MAX);
            for (head, cost) in forward.edges(tail) {
                insert_or_lower(outs, head, cost);
                insert_or_lower(&mut inc[head as usize], tail, cost);
            }
        }
        Self {
            out,
            inc,
            edge_difference: vec![0; n],
            deleted_neighbours: vec![0; n],
            level: vec![0; n],
            witness: Scratch::default(),
        }
    }

    /// Shortcuts that contracting `v` needs: for each way in `u → v` and way out `v → w`, unless
    /// a path `u ⇝ w` avoiding `v` is no longer.
    fn shortcuts(&mut self, v: u32, settled_limit: usize) -> Vec<Shortcut> {
        let (outs, ins) = (&self.out[v as usize], &self.inc[v as usize]);
        let mut needed = Vec::new();
        for &Arc { node: u, cost: cuv } in ins {
            let Some(longest) = outs
                .iter()
                .filter(|a| a.node != u)
                .map(|a| cuv + a.cost)
                .reduce(f64::max)
            else {
                continue;
            };
            let targets = outs.iter().filter(|a| a.node != u).count();
            witness_search(
                &mut self.witness,
                &self.out,
                (u, v),
                outs,
                (longest, settled_limit, targets),
            );
            for &Arc { node: w, cost: cvw } in outs {
                let via = cuv + cvw;
                if w != u && self.witness.dist(w as usize) > via {
                    needed.push((u, w, via));
                }
            }
        }
        needed
    }

    /// Re-counts the shortcuts `v` would need, then scores it.
    fn rescore(&mut self, v: u32) -> i64 {
        let added = i64::try_from(self.shortcuts(v, WITNESS_SETTLED_SCORING).len()).unwrap_or(0);
        let removed =
            i64::try_from(self.out[v as usize].len() + self.inc[v as usize].len()).unwrap_or(0);
        self.edge_difference[v as usize] = added - removed;
        self.priority(v)
    }

    /// The score of `v` with the edge difference last counted.
    fn priority(&self, v: u32) -> i64 {
        let v = v as usize;
        4 * self.edge_difference[v] + 2 * self.deleted_neighbours[v] + self.level[v]
    }

    /// Removes `v` from the remaining graph, adding its shortcuts; returns its upward edges
    /// (out, in) and its neighbours.
    fn contract(&mut self, v: u32) -> (Vec<Arc>, Vec<Arc>, Vec<u32>) {
        for (u, w, cost) in self.shortcuts(v, WITNESS_SETTLED_CONTRACTING) {
            insert_or_lower(&mut self.out[u as usize], w, cost);
            insert_or_lower(&mut self.inc[w as usize], u, cost);
        }
        let outs = std::mem::take(&mut self.out[v as usize]);
        let ins = std::mem::take(&mut self.inc[v as usize]);
        for a in &outs {
            self.inc[a.node as usize].retain(|b| b.node != v);
        }
        for a in &ins {
            self.out[a.node as usize].retain(|b| b.node != v);
        }
        let mut neighbours: Vec<u32> = outs.iter().chain(&ins).map(|a| a.node).collect();
        neighbours.sort_unstable();
        neighbours.dedup();
        for &x in &neighbours {
            self.deleted_neighbours[x as usize] += 1;
            self.level[x as usize] = self.level[x as usize].max(self.level[v as usize] + 1);
        }
        (outs, ins, neighbours)
    }
}

/// Keeps one edge per head: the cheaper.
fn insert_or_lower(arcs: &mut Vec<Arc>, node: u32, cost: f64) {
    match arcs.iter_mut().find(|a| a.node == node) {
        Some(a) => a.cost = a.cost.min(cost),
        None => arcs.push(Arc { node, cost }),
    }
}

/// Dijkstra from `from` in the remaining graph without `avoid`, until every one of the
/// `targets` heads of `to` (those other than `from`) is settled, or up to `max_cost` or
/// `settled_limit` settled nodes; afterwards `scratch.dist(w)` is the cost of some path (the
/// shortest for a settled `w`) or infinity.
fn witness_search(
    scratch: &mut Scratch,
    out: &[Vec<Arc>],
    (from, avoid): (u32, u32),
    to: &[Arc],
    (max_cost, settled_limit, targets): (f64, usize, usize),
) {
    scratch.reset(out.len());
    scratch.improve(from, 0.0);
    let (mut settled, mut targets_settled) = (0, 0);
    while let Some(Entry { cost, node }) = scratch.heap.pop() {
        if cost > max_cost || settled >= settled_limit || targets_settled == targets {
            break;
        }
        if scratch.is_settled(node as usize) || cost > scratch.dist(node as usize) {
            continue;
        }
        scratch.settle(node as usize);
        settled += 1;
        if node != from && to.iter().any(|a| a.node == node) {
            targets_settled += 1;
        }
        for a in out[node as usize].iter().filter(|a| a.node != avoid) {
            scratch.improve(a.node, cost + a.cost);
        }
    }
}

/// Contracts every node of the graph whose edges are `forward`.
pub(crate) fn contract(forward: &Rows) -> Hierarchy {
    let mut c = Contractor::new(forward);
    let n = c.out.len();
    let mut priority = vec![0i64; n];
    let mut queue = BinaryHeap::with_capacity(n);
    for (v, p) in priority.iter_mut().enumerate() {
        let v32 = u32::try_from(v).unwrap_or(u32::MAX);
        *p = c.rescore(v32);
        queue.push(Reverse((*p, v32)));
    }
    let mut contracted = vec![false; n];
    let (mut up_out, mut up_in) = (Vec::new(), Vec::new());
    while let Some(Reverse((p, v))) = queue.pop() {
        if contracted[v as usize] || p != priority[v as usize] {
            continue;
        }
        let fresh = c.rescore(v);
        if queue.peek().is_some_and(|Reverse((top, _))| fresh > *top) {
            priority[v as usize] = fresh;
            queue.push(Reverse((fresh, v)));
            continue;
        }
        contracted[v as usize] = true;
        let (outs, ins, neighbours) = c.contract(v);
        up_out.extend(outs.iter().map(|a| (v, a.node, a.cost)));
        up_in.extend(ins.iter().map(|a| (v, a.node, a.cost)));
        // Neighbours move up by the cheap terms now; their shortcuts are re-counted when they
        // reach the front of the queue.
        for x in neighbours {
            let p = c.priority(x);
            priority[x as usize] = p;
            queue.push(Reverse((p, x)));
        }
    }
    Hierarchy {
        up_out: Rows::build(n, &mut up_out),
        up_in: Rows::build(n, &mut up_in),
    }
}
