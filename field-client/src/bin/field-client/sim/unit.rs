//! One simulated unit: drives around, reports its position, and works the orders it gets
//! through the library's `Client` exactly as a tablet would.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dispatch_protocol::{IncidentBrief, Location, Message, OrderMessage, ReportedStatus};
use field_client::{Client, Event};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::geo::{bearing_deg, distance_m, towards, Point};
use super::world::{Leg, Trip, World};

const TICK: Duration = Duration::from_secs(1);

/// Why a unit stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The server closed the channel for good with this code.
    Fatal(u16),
    /// The event loop ended.
    LoopEnded,
}

/// Position and the driving still to do.
#[derive(Debug)]
struct Mover {
    at: Point,
    legs: VecDeque<Leg>,
    /// Road node where the current legs end, and the one before it (to avoid U-turns).
    end_node: Option<usize>,
    last_node: Option<usize>,
    heading_deg: f64,
    speed_mps: f64,
}

impl Mover {
    fn start(&mut self, trip: Trip) {
        self.last_node = self.end_node;
        self.legs = trip.legs.into();
        self.end_node = trip.end_node;
    }

    /// Drives for `dt`; returns true when there is nothing left to drive.
    fn advance(&mut self, dt: Duration) -> bool {
        let mut budget = dt.as_secs_f64();
        self.speed_mps = 0.0;
        while let Some(leg) = self.legs.front().copied() {
            let remaining = distance_m(self.at, leg.to);
            if remaining > 0.5 {
                self.heading_deg = bearing_deg(self.at, leg.to);
            }
            self.speed_mps = leg.speed_mps;
            let reach = leg.speed_mps * budget;
            if reach < remaining {
                self.at = towards(self.at, leg.to, reach / remaining);
                return false;
            }
            self.at = leg.to;
            budget -= remaining / leg.speed_mps.max(0.1);
            self.legs.pop_front();
        }
        self.speed_mps = 0.0;
        true
    }

    fn idle(&self) -> bool {
        self.legs.is_empty()
    }
}

#[derive(Debug)]
enum Phase {
    Patrol,
    /// An order arrived; the officer reads it before deciding.
    Considering {
        order: OrderMessage,
        message_id: String,
        decide_at: Instant,
    },
    Responding {
        order_id: i64,
        incident: IncidentBrief,
        accept_id: String,
    },
    OnScene {
        order_id: i64,
        incident_id: i64,
        until: Instant,
    },
}

pub struct SimUnit {
    call_sign: String,
    client: Client,
    world: Arc<World>,
    decline_rate: f64,
    fix_every: f64,
    rng: StdRng,
    mover: Mover,
    phase: Phase,
    next_fix: Instant,
}

impl SimUnit {
    pub fn new(
        call_sign: String,
        client: Client,
        world: Arc<World>,
        decline_rate: f64,
        fix_every: f64,
    ) -> Self {
        let mut rng = StdRng::from_entropy();
        let (at, node) = world.random_place(&mut rng);
        Self {
            call_sign,
            client,
            world,
            decline_rate,
            fix_every,
            rng,
            mover: Mover {
                at,
                legs: VecDeque::new(),
                end_node: node,
                last_node: None,
                heading_deg: 0.0,
                speed_mps: 0.0,
            },
            phase: Phase::Patrol,
            next_fix: Instant::now(),
        }
    }

    /// Lives until the event loop stops or the server refuses the device.
    pub async fn drive(mut self, mut events: mpsc::Receiver<Event>) -> Stop {
        // A restarted simulator begins on patrol, so tell the server the unit is free.
        self.report(ReportedStatus::Available, None).await;
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(Event::Fatal { code, .. }) => return Stop::Fatal(code),
                    Some(event) => self.on_event(event).await,
                    None => return Stop::LoopEnded,
                },
                now = ticks.tick() => {
                    self.on_tick(now - last).await;
                    last = now;
                }
            }
        }
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected(_) => tracing::info!("{} is online", self.call_sign),
            Event::Order(order) => {
                // The tablet shows the alert at once; the officer taps it after a moment.
                self.seen(&order.message_id, false).await;
                self.on_order(order.order, order.message_id).await;
            }
            Event::Message(message) => {
                self.seen(&message.message_id, false).await;
                self.seen(&message.message_id, true).await;
                if let Message::Cancel(cancel) = &message.body {
                    self.on_cancel(cancel.order_id, &cancel.reason);
                }
            }
            Event::ActionRejected {
                action_id,
                code,
                message,
            } => {
                tracing::warn!(
                    "{}: action {action_id} rejected: {code}: {message}",
                    self.call_sign
                );
                if let Phase::Responding {
                    order_id,
                    accept_id,
                    ..
                } = &self.phase
                {
                    if *accept_id == action_id {
                        tracing::info!(
                            "{}: order {order_id} no longer stands; back on patrol",
                            self.call_sign
                        );
                        self.patrol();
                    }
                }
            }
            Event::ActionDone { .. } | Event::Disconnected { .. } | Event::Fatal { .. } => {}
        }
    }

    /// An order withdrawn by the control room: drop it if it is the one being worked.
    fn on_cancel(&mut self, cancelled: i64, reason: &str) {
        let current = match &self.phase {
            Phase::Considering { order, .. } => Some(order.order_id),
            Phase::Responding { order_id, .. } | Phase::OnScene { order_id, .. } => Some(*order_id),
            Phase::Patrol => None,
        };
        if current == Some(cancelled) {
            tracing::info!(
                "{}: order {cancelled} withdrawn ({reason}); back on patrol",
                self.call_sign
            );
            self.patrol();
        }
    }

    async fn seen(&mut self, message_id: &str, acknowledge: bool) {
        let result = if acknowledge {
            self.client.acknowledge(message_id).await
        } else {
            self.client.displayed(message_id).await
        };
        if let Err(e) = result {
            tracing::error!("{}: cannot mark {message_id} seen: {e}", self.call_sign);
        }
    }

    async fn on_order(&mut self, order: OrderMessage, message_id: String) {
        let incident = &order.incident;
        if !matches!(self.phase, Phase::Patrol) {
            tracing::info!(
                "{}: order {} for incident {} arrives while busy; declining",
                self.call_sign,
                order.order_id,
                incident.id
            );
            self.decline(order.order_id).await;
            return;
        }
        tracing::info!(
            "{}: order {} received: {} (priority {}) at {}; reading it",
            self.call_sign,
            order.order_id,
            incident.kind,
            incident.priority,
            incident
                .address
                .clone()
                .unwrap_or_else(|| format!("{:.5},{:.5}", incident.lat, incident.lon))
        );
        let think = Duration::from_secs_f64(self.rng.gen_range(2.0..6.0));
        self.phase = Phase::Considering {
            order,
            message_id,
            decide_at: Instant::now() + think,
        };
    }

    async fn on_tick(&mut self, dt: Duration) {
        let now = Instant::now();
        if !matches!(self.phase, Phase::OnScene { .. }) {
            self.mover.advance(dt);
        }
        match &self.phase {
            Phase::Patrol => {}
            Phase::Considering { decide_at, .. } if now >= *decide_at => self.decide().await,
            Phase::Considering { .. } => {}
            Phase::Responding {
                order_id, incident, ..
            } if self.mover.idle() => {
                let (order_id, incident_id) = (*order_id, incident.id);
                let stay = Duration::from_secs(self.rng.gen_range(30..=90));
                tracing::info!(
                    "{}: on scene at incident {incident_id}; staying {} s",
                    self.call_sign,
                    stay.as_secs()
                );
                self.report(ReportedStatus::OnScene, Some(order_id)).await;
                self.phase = Phase::OnScene {
                    order_id,
                    incident_id,
                    until: now + stay,
                };
            }
            Phase::Responding { .. } => {}
            Phase::OnScene {
                order_id,
                incident_id,
                until,
            } if now >= *until => {
                tracing::info!(
                    "{}: incident {incident_id} cleared; back on patrol",
                    self.call_sign
                );
                let order_id = *order_id;
                self.report(ReportedStatus::Cleared, Some(order_id)).await;
                self.patrol();
            }
            Phase::OnScene { .. } => {}
        }
        if matches!(self.phase, Phase::Patrol | Phase::Considering { .. }) && self.mover.idle() {
            let trip = self.world.wander(
                self.mover.at,
                self.mover.end_node,
                self.mover.last_node,
                &mut self.rng,
            );
            self.mover.start(trip);
        }
        if now >= self.next_fix {
            self.send_fix().await;
            let every = self.fix_every;
            self.next_fix =
                now + Duration::from_secs_f64(self.rng.gen_range(every * 0.6..=every * 1.4));
        }
    }

    async fn decide(&mut self) {
        let Phase::Considering {
            order, message_id, ..
        } = std::mem::replace(&mut self.phase, Phase::Patrol)
        else {
            return;
        };
        self.seen(&message_id, true).await;
        if self.rng.gen_bool(self.decline_rate) {
            tracing::info!("{}: declining order {}", self.call_sign, order.order_id);
            self.decline(order.order_id).await;
            return;
        }
        let accept_id = match self.client.accept(order.order_id).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(
                    "{}: cannot accept order {}: {e}",
                    self.call_sign,
                    order.order_id
                );
                return;
            }
        };
        self.report(ReportedStatus::EnRoute, Some(order.order_id))
            .await;
        let target = Point {
            lat: order.incident.lat,
            lon: order.incident.lon,
        };
        let trip = self.world.route(self.mover.at, self.mover.end_node, target);
        tracing::info!(
            "{}: accepted order {}; en route to incident {}, {:.0} m away",
            self.call_sign,
            order.order_id,
            order.incident.id,
            trip.length_m(self.mover.at)
        );
        self.mover.start(trip);
        self.phase = Phase::Responding {
            order_id: order.order_id,
            incident: order.incident,
            accept_id,
        };
    }

    fn patrol(&mut self) {
        self.phase = Phase::Patrol;
        // Whatever was being driven is abandoned; wander picks a new stretch on the next tick.
        self.mover.legs.clear();
        self.mover.end_node = None;
    }

    async fn decline(&mut self, order_id: i64) {
        if let Err(e) = self.client.decline(order_id, "busy", None).await {
            tracing::error!("{}: cannot decline order {order_id}: {e}", self.call_sign);
        }
    }

    async fn report(&mut self, status: ReportedStatus, order_id: Option<i64>) {
        if let Err(e) = self.client.status(status, order_id).await {
            tracing::error!("{}: cannot report {}: {e}", self.call_sign, status.as_str());
        }
    }

    async fn send_fix(&mut self) {
        let location = Location {
            lat: self.mover.at.lat,
            lon: self.mover.at.lon,
            accuracy_m: Some(self.rng.gen_range(4.0..12.0)),
            heading_deg: Some(self.mover.heading_deg),
            speed_mps: Some(self.mover.speed_mps),
            fix_time_ms: field_client::unix_ms(),
        };
        if let Err(e) = self.client.location(location).await {
            tracing::warn!("{}: bad simulated fix: {e}", self.call_sign);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mover_follows_legs_at_their_speed() {
        let start = Point {
            lat: 60.0,
            lon: 24.0,
        };
        let north = Point {
            lat: 60.001,
            lon: 24.0,
        }; // about 111 m
        let mut mover = Mover {
            at: start,
            legs: VecDeque::from([
                Leg {
                    to: north,
                    speed_mps: 10.0,
                },
                Leg {
                    to: start,
                    speed_mps: 10.0,
                },
            ]),
            end_node: None,
            last_node: None,
            heading_deg: 0.0,
            speed_mps: 0.0,
        };
        assert!(!mover.advance(Duration::from_secs(10)));
        assert!((distance_m(start, mover.at) - 100.0).abs() < 1.0);
        assert!(mover.heading_deg < 1.0);
        // Past the corner: 11 m north, then 9 m back south.
        assert!(!mover.advance(Duration::from_secs(2)));
        assert!((distance_m(start, mover.at) - 102.0).abs() < 1.5);
        assert!((mover.heading_deg - 180.0).abs() < 1.0);
        assert!(mover.advance(Duration::from_secs(60)));
        assert_eq!(mover.at, start);
        assert_eq!(mover.speed_mps, 0.0);
    }
}
