//! Where simulated units can be and how they get around: on a road graph when a map is given,
//! otherwise in straight lines inside a box around central Helsinki.

use rand::Rng;

use super::geo::{distance_m, Area, Point};
use super::roads::Roads;

/// Central Helsinki (Rautatientori), the default centre of the simulation.
pub const HELSINKI: Point = Point {
    lat: 60.1699,
    lon: 24.9384,
};

/// Patrol drives a little under the limit. A response drives at the speeds of the road graph's
/// profile, the ones the server's ETAs assume, so that recommendations can be checked against
/// the drive that follows.
const PATROL_FACTOR: f64 = 0.8;
/// Speeds used without a map, metres per second.
const OFF_MAP_PATROL_MPS: f64 = 8.0;
const OFF_MAP_RESPONSE_MPS: f64 = 14.0;
/// The last stretch from the road to the incident itself.
const CURB_MPS: f64 = 5.0;

/// One straight stretch of driving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Leg {
    pub to: Point,
    pub speed_mps: f64,
}

/// Legs to drive and the road node (if any) where they end.
#[derive(Debug, Clone, PartialEq)]
pub struct Trip {
    pub legs: Vec<Leg>,
    pub end_node: Option<usize>,
}

impl Trip {
    pub fn length_m(&self, from: Point) -> f64 {
        let mut at = from;
        self.legs
            .iter()
            .map(|leg| {
                let d = distance_m(at, leg.to);
                at = leg.to;
                d
            })
            .sum()
    }
}

pub enum World {
    Roads(Box<Roads>),
    Area(Area),
}

impl World {
    /// The map-less world: a 2 km square around central Helsinki.
    pub fn default_area() -> Self {
        Self::Area(Area::around(HELSINKI, 1000.0))
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Roads(r) => format!(
                "the server's road graph: {} connected nodes, {} directed drives (one-way streets respected)",
                r.len(),
                r.edge_count()
            ),
            Self::Area(a) => format!(
                "an open area {:.4},{:.4} – {:.4},{:.4} (no map)",
                a.south_west.lat, a.south_west.lon, a.north_east.lat, a.north_east.lon
            ),
        }
    }

    /// A random place on a road (or in the area), with its road node.
    pub fn random_place(&self, rng: &mut impl Rng) -> (Point, Option<usize>) {
        match self {
            Self::Roads(r) => {
                let node = r.random_node(rng);
                (r.point(node), Some(node))
            }
            Self::Area(a) => (a.random_point(rng), None),
        }
    }

    /// The next stretch of an idle patrol: one road segment at random, not straight back
    /// unless it is a dead end.
    pub fn wander(
        &self,
        from: Point,
        here: Option<usize>,
        came_from: Option<usize>,
        rng: &mut impl Rng,
    ) -> Trip {
        match self {
            Self::Roads(r) => {
                let Some(here) = here else {
                    // Off the road (after an incident): drive to the nearest road first.
                    let node = r.nearest(from);
                    return Trip {
                        legs: vec![Leg {
                            to: r.point(node),
                            speed_mps: CURB_MPS,
                        }],
                        end_node: Some(node),
                    };
                };
                let drives = r.drives(here);
                let onward: Vec<_> = drives.iter().filter(|e| Some(e.to) != came_from).collect();
                let choices = if onward.is_empty() {
                    drives.iter().collect()
                } else {
                    onward
                };
                match choices.get(rng.gen_range(0..choices.len().max(1))) {
                    Some(edge) => Trip {
                        legs: vec![Leg {
                            to: r.point(edge.to),
                            speed_mps: edge.speed_mps * PATROL_FACTOR,
                        }],
                        end_node: Some(edge.to),
                    },
                    None => Trip {
                        legs: Vec::new(),
                        end_node: Some(here),
                    },
                }
            }
            Self::Area(a) => Trip {
                legs: vec![Leg {
                    to: a.random_point(rng),
                    speed_mps: OFF_MAP_PATROL_MPS,
                }],
                end_node: None,
            },
        }
    }

    /// The fastest way to `to` (an incident), ending exactly there.
    pub fn route(&self, from: Point, here: Option<usize>, to: Point) -> Trip {
        let direct = |speed_mps| Trip {
            legs: vec![Leg { to, speed_mps }],
            end_node: None,
        };
        let Self::Roads(r) = self else {
            return direct(OFF_MAP_RESPONSE_MPS);
        };
        let start = here.unwrap_or_else(|| r.nearest(from));
        let goal = r.nearest(to);
        let Some(path) = r.fastest_path(start, goal) else {
            return direct(OFF_MAP_RESPONSE_MPS);
        };
        let mut legs = Vec::with_capacity(path.len() + 1);
        if here.is_none() {
            legs.push(Leg {
                to: r.point(start),
                speed_mps: CURB_MPS,
            });
        }
        for pair in path.windows(2) {
            let speed_mps = r
                .drives(pair[0])
                .iter()
                .find(|e| e.to == pair[1])
                .map_or(OFF_MAP_PATROL_MPS, |e| e.speed_mps);
            legs.push(Leg {
                to: r.point(pair[1]),
                speed_mps,
            });
        }
        legs.push(Leg {
            to,
            speed_mps: CURB_MPS,
        });
        Trip {
            legs,
            end_node: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use dispatch_geo::road::DriveTime;
    use rand::SeedableRng;

    use super::*;

    fn helsinki() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            let pbf =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/helsinki.osm.pbf");
            World::Roads(Box::new(Roads::load(&pbf).expect("the demo map loads")))
        })
    }

    /// The time a simulated car takes for a trip starting at `from`.
    fn drive_s(trip: &Trip, from: Point) -> f64 {
        let mut at = from;
        trip.legs
            .iter()
            .map(|leg| {
                let s = distance_m(at, leg.to) / leg.speed_mps;
                at = leg.to;
                s
            })
            .sum()
    }

    #[test]
    fn a_simulated_response_takes_the_time_the_server_s_eta_gives() {
        let World::Roads(roads) = helsinki() else {
            unreachable!("loaded with roads")
        };
        let graph = roads.graph();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..40 {
            let (from, to) = (roads.random_node(&mut rng), roads.random_node(&mut rng));
            let (a, b) = (roads.point(from), roads.point(to));
            let trip = helsinki().route(a, Some(from), b);
            // The ETA exactly as the server's recommendation computes it.
            let snap = |p: Point| graph.snap(p.lat, p.lon, 1.0).expect("a node is on a road");
            let [DriveTime::Route(eta_ms)] = graph.drive_times_to(&snap(b), &[snap(a)], 1)[..]
            else {
                panic!("{from} -> {to} has a route in the connected part")
            };
            let simulated = drive_s(&trip, a);
            assert!(
                (simulated - eta_ms / 1000.0).abs() < 1e-6 * eta_ms.max(1000.0),
                "{from} -> {to}: simulated {simulated} s, ETA {} s",
                eta_ms / 1000.0
            );
        }
    }

    #[test]
    fn every_patrol_drive_stays_on_the_connected_roads() {
        let World::Roads(roads) = helsinki() else {
            unreachable!("loaded with roads")
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (mut at, mut here) = helsinki().random_place(&mut rng);
        let mut came_from = None;
        for _ in 0..2_000 {
            let trip = helsinki().wander(at, here, came_from, &mut rng);
            let end = trip.end_node.expect("a patrol ends on a node");
            assert!(roads
                .fastest_path(end, roads.random_node(&mut rng))
                .is_some());
            (came_from, here) = (here, Some(end));
            at = trip.legs.last().map_or(at, |leg| leg.to);
        }
    }
}
