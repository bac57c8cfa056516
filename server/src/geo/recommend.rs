//! Ranking units for an incident by drive time. Straight-line candidates are timed on the road
//! graph and the candidate set widens until no unit outside it could arrive sooner, so the
//! ranking is exact; without a graph, a snap or a route, a flagged straight-line estimate is
//! used, ranked after every unit that has a route.

use serde::Serialize;

use super::LiveUnits;
use dispatch_geo::road::{DriveTime, RoadGraph, Snapped};

/// Farthest a unit or incident may be from a road to be routed, metres.
pub const SNAP_MAX_M: f64 = 150.0;
/// Speed assumed by straight-line estimates (40 km/h)…
const ESTIMATE_SPEED_MPS: f64 = 11.1;
/// …over a distance stretched by a common urban detour factor.
const ESTIMATE_DETOUR: f64 = 1.4;
/// Straight-line candidates timed in the first round, at least.
const FIRST_ROUND: usize = 16;

/// How an ETA was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EtaSource {
    /// Fastest legal route on the road graph.
    Road,
    /// Straight-line distance at an assumed speed: no graph, no snap or no route.
    StraightLineEstimate,
}

/// One ranked unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub unit_id: i64,
    pub distance_m: f64,
    pub eta_s: f64,
    pub source: EtaSource,
    pub fix_received_ms: i64,
    /// Reported accuracy of the unit's fix, metres.
    pub accuracy_m: Option<f64>,
}

/// Units with a road route come first, by ETA; then units with only an estimate, by estimate:
/// an optimistic straight line must not outrank a real route.
fn by_trust_then_eta(a: &Ranked, b: &Ranked) -> std::cmp::Ordering {
    (a.source != EtaSource::Road)
        .cmp(&(b.source != EtaSource::Road))
        .then(a.eta_s.total_cmp(&b.eta_s))
        .then(a.unit_id.cmp(&b.unit_id))
}

fn estimate_s(distance_m: f64) -> f64 {
    distance_m * ESTIMATE_DETOUR / ESTIMATE_SPEED_MPS
}

/// The `k` available units with every `required` capability and a fix received at or after
/// `fresh_after_ms` that would reach (`lat`, `lon`) first, soonest first (ties by unit id).
pub fn rank(
    roads: Option<&RoadGraph>,
    live: &LiveUnits,
    (lat, lon): (f64, f64),
    k: usize,
    required: &[String],
    fresh_after_ms: i64,
) -> Vec<Ranked> {
    let target = roads.and_then(|g| g.snap(lat, lon, SNAP_MAX_M).map(|s| (g, s)));
    // Without a target every candidate keeps its straight-line estimate, which orders them as
    // their distances do: the k nearest are the answer, found in one round.
    let mut m = if target.is_some() {
        (4 * k).max(FIRST_ROUND)
    } else {
        k
    };
    // Snaps of the previous round's candidates, which lead the next round's.
    let mut snaps: Vec<(i64, Option<Snapped>)> = Vec::new();
    loop {
        let Some(candidates) = live.nearest(lat, lon, m, required, fresh_after_ms) else {
            return Vec::new();
        };
        let exhausted = candidates.len() < m;
        let mut ranked: Vec<Ranked> = candidates
            .iter()
            .map(|c| Ranked {
                unit_id: c.unit_id,
                distance_m: c.distance_m,
                eta_s: estimate_s(c.distance_m),
                source: EtaSource::StraightLineEstimate,
                fix_received_ms: c.snapshot.fix_received_ms,
                accuracy_m: c.snapshot.accuracy_m,
            })
            .collect();
        let mut slowest_bound = ESTIMATE_SPEED_MPS / ESTIMATE_DETOUR;
        if let Some((graph, target)) = &target {
            slowest_bound = slowest_bound.max(graph.max_speed_mps());
            snaps = candidates
                .iter()
                .enumerate()
                .map(|(i, c)| match snaps.get(i) {
                    Some(&(id, snap)) if id == c.unit_id => (id, snap),
                    _ => (
                        c.unit_id,
                        graph.snap(c.snapshot.lat, c.snapshot.lon, SNAP_MAX_M),
                    ),
                })
                .collect();
            let snapped: Vec<(usize, Snapped)> = snaps
                .iter()
                .enumerate()
                .filter_map(|(i, (_, s))| s.map(|s| (i, s)))
                .collect();
            let sources: Vec<_> = snapped.iter().map(|(_, s)| *s).collect();
            let mut beyond = vec![false; ranked.len()];
            for ((i, _), time) in snapped
                .iter()
                .zip(graph.drive_times_to(target, &sources, k))
            {
                match time {
                    DriveTime::Route(ms) => {
                        ranked[*i].eta_s = ms / 1000.0;
                        ranked[*i].source = EtaSource::Road;
                    }
                    DriveTime::Beyond => beyond[*i] = true,
                    DriveTime::NoRoute => {}
                }
            }
            // Units the search did not need to time arrive after k timed ones: not in the top k.
            let mut keep = beyond.iter().map(|b| !b);
            ranked.retain(|_| keep.next().unwrap_or(true));
        }
        ranked.sort_by(by_trust_then_eta);
        let farthest = candidates.last().map_or(0.0, |c| c.distance_m);
        // A unit outside this set is at least `farthest` away in a straight line; its route
        // starts and ends at most SNAP_MAX_M from its fix and the incident.
        let lower_bound_s = ((farthest - 2.0 * SNAP_MAX_M).max(0.0) / slowest_bound) * 0.99;
        // Units outside the set with a road route would rank before an estimate, so the k-th must
        // itself be routed unless nothing can be routed to this incident.
        let proven = ranked.len() >= k
            && (target.is_none()
                || (ranked[k - 1].source == EtaSource::Road
                    && ranked[k - 1].eta_s <= lower_bound_s));
        if exhausted || proven {
            ranked.truncate(k);
            return ranked;
        }
        m *= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Position, Unit, UnitStatus};
    use dispatch_geo::haversine_m;
    use dispatch_geo::road::import_pbf;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn helsinki() -> &'static RoadGraph {
        static GRAPH: OnceLock<RoadGraph> = OnceLock::new();
        GRAPH.get_or_init(|| {
            import_pbf(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/helsinki.osm.pbf"),
            )
            .unwrap()
        })
    }

    fn unit(id: i64, (lat, lon): (f64, f64)) -> Unit {
        Unit {
            id,
            call_sign: format!("U{id}"),
            kind: "patrol_car".into(),
            capabilities: vec!["patrol".into()],
            home_station: None,
            status: UnitStatus::Available,
            device_id: None,
            position: Some(Position {
                lat,
                lon,
                accuracy_m: None,
                fix_time_ms: 0,
                received_ms: 1_000,
            }),
            link_lost_at_ms: None,
            disabled_at_ms: None,
        }
    }

    /// Every unit timed with a separate forward Dijkstra (a unit with no legal route gets the
    /// straight-line estimate and ranks after routed units), sorted: the reference answer.
    fn reference(
        graph: &RoadGraph,
        units: &[(f64, f64)],
        at: (f64, f64),
        k: usize,
    ) -> Vec<(i64, f64, EtaSource)> {
        let target = graph.snap(at.0, at.1, SNAP_MAX_M).unwrap();
        let mut all: Vec<(i64, f64, EtaSource)> = units
            .iter()
            .enumerate()
            .map(|(i, &(lat, lon))| {
                let source = graph.snap(lat, lon, SNAP_MAX_M).unwrap();
                let id = i64::try_from(i).unwrap();
                match graph.drive_time(&source, &target) {
                    Some(ms) => (id, ms / 1000.0, EtaSource::Road),
                    None => {
                        let (x, y) = (graph.project(lat, lon), graph.project(at.0, at.1));
                        (
                            id,
                            estimate_s((x.0 - y.0).hypot(x.1 - y.1)),
                            EtaSource::StraightLineEstimate,
                        )
                    }
                }
            })
            .collect();
        all.sort_by(|a, b| {
            (a.2 != EtaSource::Road)
                .cmp(&(b.2 != EtaSource::Road))
                .then(a.1.total_cmp(&b.1))
                .then(a.0.cmp(&b.0))
        });
        all.truncate(k);
        all
    }

    /// A point near node `i`, a few metres off it.
    fn near_node(graph: &RoadGraph, i: usize, jitter: (f64, f64)) -> (f64, f64) {
        let (lat, lon) = graph.node_position(u32::try_from(i % graph.node_count()).unwrap());
        (lat + jitter.0 * 1e-4, lon + jitter.1 * 1e-4)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn eta_ranking_equals_dijkstra_reference(
            nodes in proptest::collection::vec((0usize..100_000, -1.0..1.0f64, -1.0..1.0f64), 1..60),
            at in (0usize..100_000, -1.0..1.0f64, -1.0..1.0f64),
            k in 1usize..6,
        ) {
            let graph = helsinki();
            let live = LiveUnits::default();
            let units: Vec<(f64, f64)> = nodes.iter().map(|&(i, a, b)| near_node(graph, i, (a, b))).collect();
            for (i, &p) in units.iter().enumerate() {
                live.load(&unit(i64::try_from(i).unwrap(), p));
            }
            let incident = near_node(graph, at.0, (at.1, at.2));
            let got = rank(Some(graph), &live, incident, k, &["patrol".into()], 0);
            let want = reference(graph, &units, incident, k);
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(g.source, w.2);
                // Estimates differ by the two projections' rounding; routes must agree exactly.
                let tolerance = if w.2 == EtaSource::Road { 1e-6 } else { 0.5 };
                prop_assert!((g.eta_s - w.1).abs() < tolerance, "eta {} vs reference {}", g.eta_s, w.1);
                if w.2 == EtaSource::Road {
                    prop_assert_eq!(g.unit_id, w.0);
                }
            }
        }
    }

    #[test]
    fn unit_on_one_way_street_is_ranked_by_its_legal_route() {
        let graph = helsinki();
        // Find a one-way segment at least 40 m long.
        let seg = graph
            .segments()
            .iter()
            .find(|s| {
                let (a, b) = (graph.node_position(s.a), graph.node_position(s.b));
                s.backward_ms.is_none() && haversine_m(a.0, a.1, b.0, b.1) > 40.0
            })
            .expect("the extract has one-way streets");
        let (a, b) = (graph.node_position(seg.a), graph.node_position(seg.b));
        let along = |t: f64| (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        // The incident is just behind the unit on the one-way street: a few metres in a straight
        // line, but the unit must go round the block.
        let incident = along(0.2);
        let on_one_way = along(0.8);
        let live = LiveUnits::default();
        live.load(&unit(1, on_one_way));
        let alone = rank(Some(graph), &live, incident, 1, &[], 0);
        assert_eq!(alone[0].source, EtaSource::Road);
        let straight = alone[0].distance_m;
        let road_eta = alone[0].eta_s;
        assert!(
            road_eta > 2.0 * estimate_s(straight),
            "one-way unit eta {road_eta} s for {straight} m"
        );
        // A unit upstream, farther in a straight line but with a legal short route, wins.
        let upstream = along(0.0);
        live.load(&unit(2, upstream));
        let ranked = rank(Some(graph), &live, incident, 2, &[], 0);
        assert!(ranked[1].distance_m < ranked[0].distance_m || ranked[0].unit_id == 2);
        assert_eq!(ranked.iter().map(|r| r.unit_id).collect::<Vec<_>>(), [2, 1]);
    }

    #[test]
    fn without_a_graph_the_estimate_is_flagged() {
        let live = LiveUnits::default();
        live.load(&unit(1, (60.17, 24.94)));
        let r = rank(None, &live, (60.171, 24.94), 3, &[], 0);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].source, EtaSource::StraightLineEstimate);
        assert!((r[0].eta_s - estimate_s(r[0].distance_m)).abs() < 1e-9);
    }
}
