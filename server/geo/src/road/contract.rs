//! Contraction hierarchies, preprocessing: nodes are removed one at a time, least important
//! first, and a shortcut replaces every shortest path that ran through the removed node.
//!
//! Importance is the edge difference (shortcuts added minus edges removed), the number of
//! neighbours already contracted and the node's level, weighted 4 : 2 : 1 (the fewest shortcuts
//! on the benchmark grid among the weights tried). It is updated lazily: a node taken from the
//! queue has its shortcuts re-counted and goes back if it is no longer the least important;
//! the neighbours of a contracted node are re-queued with their cheap terms updated. Edges keep
//! their direction, so one-way streets stay exact.
//!
//! The first scoring of every node reads the graph only, so it runs on every core. A node's
//! edges left when it is contracted are its upward edges: they stay where they are and become
//! the hierarchy's rows at the end, so no second copy of the hierarchy is held while it is built.

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

/// An edge of the remaining graph, packed to 12 bytes: tens of millions are held at once.
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Arc {
    node: u32,
    cost: f64,
}

/// The remaining graph while contracting: a node not yet contracted has only edges to other
/// such nodes; a contracted one keeps the edges it had when it was contracted.
struct Contractor {
    out: Vec<Vec<Arc>>,
    inc: Vec<Vec<Arc>>,
    edge_difference: Vec<i32>,
    deleted_neighbours: Vec<i32>,
    level: Vec<i32>,
    witness: Scratch,
    /// The node last re-scored and its shortcuts, when they are exact.
    scored: Option<(u32, Vec<Shortcut>)>,
}

/// A shortcut `from → to` needed when a node is contracted.
type Shortcut = (u32, u32, f64);

/// The shortcuts a node needs, as far as witness searches cut short could tell.
struct Needed {
    shortcuts: Vec<Shortcut>,
    /// Whether a witness search stopped at its limit of settled nodes.
    cut_short: bool,
}

/// A queued node: its score in the high half, the node in the low half, so that the queue
/// orders by score, then node, in 8 bytes.
fn queued(priority: i32, v: u32) -> Reverse<u64> {
    let biased = u64::try_from(i64::from(priority) - i64::from(i32::MIN)).unwrap_or(0);
    Reverse(biased << 32 | u64::from(v))
}

fn unqueued(Reverse(key): Reverse<u64>) -> (i32, u32) {
    let priority = i64::try_from(key >> 32).unwrap_or(0) + i64::from(i32::MIN);
    let node = u32::try_from(key & u64::from(u32::MAX)).unwrap_or(u32::MAX);
    (i32::try_from(priority).unwrap_or(i32::MAX), node)
}

/// Shortcuts that contracting `v` needs in the remaining graph `(out, inc)`: for each way in
/// `u → v` and way out `v → w`, unless a path `u ⇝ w` avoiding `v` is no longer.
fn shortcuts(
    (out, inc): (&[Vec<Arc>], &[Vec<Arc>]),
    witness: &mut Scratch,
    v: u32,
    settled_limit: usize,
) -> Needed {
    let (outs, ins) = (&out[v as usize], &inc[v as usize]);
    let mut needed = Needed {
        shortcuts: Vec::new(),
        cut_short: false,
    };
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
        needed.cut_short |= witness_search(
            witness,
            out,
            (u, v),
            outs,
            (longest, settled_limit, targets),
        );
        for &Arc { node: w, cost: cvw } in outs {
            let via = cuv + cvw;
            if w != u && witness.dist(w as usize) > via {
                needed.shortcuts.push((u, w, via));
            }
        }
    }
    needed
}

/// Shortcuts added minus edges removed by contracting `v`: its edge difference, and the
/// shortcuts counted.
fn edge_difference(
    graph: (&[Vec<Arc>], &[Vec<Arc>]),
    witness: &mut Scratch,
    v: u32,
) -> (i32, Needed) {
    let needed = shortcuts(graph, witness, v, WITNESS_SETTLED_SCORING);
    let added = i32::try_from(needed.shortcuts.len()).unwrap_or(i32::MAX);
    let removed = graph.0[v as usize].len() + graph.1[v as usize].len();
    (added - i32::try_from(removed).unwrap_or(i32::MAX), needed)
}

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
            scored: None,
        }
    }

    /// Scores every node, the nodes split among the machine's cores.
    fn score_all(&mut self) -> Vec<i32> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let chunk = self.out.len().div_ceil(threads).max(1);
        let graph = (self.out.as_slice(), self.inc.as_slice());
        std::thread::scope(|scope| {
            for (i, differences) in self.edge_difference.chunks_mut(chunk).enumerate() {
                scope.spawn(move || {
                    let mut witness = Scratch::default();
                    for (j, difference) in differences.iter_mut().enumerate() {
                        let v = u32::try_from(i * chunk + j).unwrap_or(u32::MAX);
                        *difference = edge_difference(graph, &mut witness, v).0;
                    }
                });
            }
        });
        (0..self.out.len())
            .map(|v| self.priority(u32::try_from(v).unwrap_or(u32::MAX)))
            .collect()
    }

    /// Re-counts the shortcuts `v` would need, then scores it. When no witness search was cut
    /// short, the shortcuts are exactly those contracting it now would add: they are kept.
    fn rescore(&mut self, v: u32) -> i32 {
        let graph = (self.out.as_slice(), self.inc.as_slice());
        let (difference, needed) = edge_difference(graph, &mut self.witness, v);
        self.edge_difference[v as usize] = difference;
        self.scored = (!needed.cut_short).then_some((v, needed.shortcuts));
        self.priority(v)
    }

    /// The score of `v` with the edge difference last counted.
    fn priority(&self, v: u32) -> i32 {
        let v = v as usize;
        4 * self.edge_difference[v] + 2 * self.deleted_neighbours[v] + self.level[v]
    }

    /// Removes `v` from the remaining graph, adding its shortcuts; its edges left are its
    /// upward edges. Returns its neighbours.
    fn contract(&mut self, v: u32) -> Vec<u32> {
        let needed = match self.scored.take() {
            Some((scored, shortcuts)) if scored == v => shortcuts,
            _ => {
                let graph = (self.out.as_slice(), self.inc.as_slice());
                shortcuts(graph, &mut self.witness, v, WITNESS_SETTLED_CONTRACTING).shortcuts
            }
        };
        for (u, w, cost) in needed {
            insert_or_lower(&mut self.out[u as usize], w, cost);
            insert_or_lower(&mut self.inc[w as usize], u, cost);
        }
        for a in &self.out[v as usize] {
            self.inc[a.node as usize].retain(|b| b.node != v);
        }
        for a in &self.inc[v as usize] {
            self.out[a.node as usize].retain(|b| b.node != v);
        }
        let (outs, ins) = (&self.out[v as usize], &self.inc[v as usize]);
        let mut neighbours: Vec<u32> = outs.iter().chain(ins).map(|a| a.node).collect();
        neighbours.sort_unstable();
        neighbours.dedup();
        for &x in &neighbours {
            self.deleted_neighbours[x as usize] += 1;
            self.level[x as usize] = self.level[x as usize].max(self.level[v as usize] + 1);
        }
        neighbours
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
/// shortest for a settled `w`) or infinity. Returns whether the limit on settled nodes ended
/// it: a larger limit could then find more witnesses.
fn witness_search(
    scratch: &mut Scratch,
    out: &[Vec<Arc>],
    (from, avoid): (u32, u32),
    to: &[Arc],
    (max_cost, settled_limit, targets): (f64, usize, usize),
) -> bool {
    scratch.reset(out.len());
    scratch.improve(from, 0.0);
    let (mut settled, mut targets_settled) = (0, 0);
    while let Some(Entry { cost, node }) = scratch.heap.pop() {
        if cost > max_cost || targets_settled == targets {
            return false;
        }
        if settled >= settled_limit {
            return true;
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
            // A path dearer than the way through `avoid` is no witness: not worth queueing.
            if cost + a.cost <= max_cost {
                scratch.improve(a.node, cost + a.cost);
            }
        }
    }
    false
}

/// Compressed rows from per-node edge lists, each list freed as soon as it is copied.
fn rows_from(lists: Vec<Vec<Arc>>) -> Rows {
    let total = lists.iter().map(Vec::len).sum();
    let mut rows = Rows {
        first: Vec::with_capacity(lists.len() + 1),
        head: Vec::with_capacity(total),
        cost_ms: Vec::with_capacity(total),
    };
    rows.first.push(0);
    for mut list in lists {
        list.sort_unstable_by_key(|a| a.node);
        rows.head.extend(list.iter().map(|a| a.node));
        rows.cost_ms.extend(list.iter().map(|a| a.cost));
        rows.first
            .push(u32::try_from(rows.head.len()).unwrap_or(u32::MAX));
    }
    rows
}

/// Contracts every node of the graph whose edges are `forward`.
pub(crate) fn contract(forward: &Rows) -> Hierarchy {
    let mut c = Contractor::new(forward);
    let n = c.out.len();
    let mut priority = c.score_all();
    let mut queue: BinaryHeap<Reverse<u64>> = priority
        .iter()
        .enumerate()
        .map(|(v, &p)| queued(p, u32::try_from(v).unwrap_or(u32::MAX)))
        .collect();
    let mut contracted = vec![false; n];
    while let Some(entry) = queue.pop() {
        let (p, v) = unqueued(entry);
        if contracted[v as usize] || p != priority[v as usize] {
            continue;
        }
        let fresh = c.rescore(v);
        if queue.peek().is_some_and(|&top| fresh > unqueued(top).0) {
            priority[v as usize] = fresh;
            queue.push(queued(fresh, v));
            continue;
        }
        contracted[v as usize] = true;
        // Neighbours move up by the cheap terms now; their shortcuts are re-counted when they
        // reach the front of the queue.
        for x in c.contract(v) {
            let p = c.priority(x);
            priority[x as usize] = p;
            queue.push(queued(p, x));
        }
    }
    drop((queue, priority, contracted));
    Hierarchy {
        up_out: rows_from(c.out),
        up_in: rows_from(c.inc),
    }
}
