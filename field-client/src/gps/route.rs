//! A simulated drive for testing the tablet without a receiver: along a polyline at a steady
//! speed, back and forth, one fix a second.

use std::str::FromStr;
use std::time::Duration;

use dispatch_protocol::{validate_coordinates, Location};
use tokio::sync::mpsc;

use super::GpsError;

const DEFAULT_KMH: f64 = 40.0;
const TICK: Duration = Duration::from_secs(1);

/// Waypoints as `(lat, lon)` and a speed.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub points: Vec<(f64, f64)>,
    pub speed_mps: f64,
}

impl FromStr for Route {
    type Err = GpsError;

    /// `LAT,LON;LAT,LON[;…][@KMH]`.
    fn from_str(text: &str) -> Result<Self, GpsError> {
        let bad = |what: String| GpsError::BadRoute(what);
        let (list, kmh) = match text.split_once('@') {
            Some((list, kmh)) => {
                let kmh: f64 = kmh
                    .parse()
                    .ok()
                    .filter(|k: &f64| k.is_finite() && *k > 0.0)
                    .ok_or_else(|| bad(format!("speed {kmh:?} is not a positive number")))?;
                (list, kmh)
            }
            None => (text, DEFAULT_KMH),
        };
        let points = list
            .split(';')
            .map(|pair| {
                let (lat, lon) = pair
                    .split_once(',')
                    .ok_or_else(|| bad(format!("{pair:?} is not LAT,LON")))?;
                let lat: f64 = lat
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{lat:?} is not a number")))?;
                let lon: f64 = lon
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{lon:?} is not a number")))?;
                validate_coordinates(lat, lon).map_err(|e| bad(e.to_string()))?;
                Ok((lat, lon))
            })
            .collect::<Result<Vec<_>, GpsError>>()?;
        if points.len() < 2 {
            return Err(bad("a route needs at least two points".into()));
        }
        Ok(Self {
            points,
            speed_mps: kmh / 3.6,
        })
    }
}

fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    dispatch_geo::haversine_m(a.0, a.1, b.0, b.1)
}

fn bearing_deg(a: (f64, f64), b: (f64, f64)) -> f64 {
    dispatch_geo::bearing_deg(a.0, a.1, b.0, b.1)
}

impl Route {
    /// The position `travelled_m` metres along the route driven there and back repeatedly,
    /// with the heading at that point.
    pub fn position(&self, travelled_m: f64) -> ((f64, f64), f64) {
        let legs: Vec<((f64, f64), (f64, f64))> = self
            .points
            .windows(2)
            .map(|w| (w[0], w[1]))
            .chain(self.points.windows(2).rev().map(|w| (w[1], w[0])))
            .collect();
        let round: f64 = legs.iter().map(|(a, b)| distance_m(*a, *b)).sum();
        let mut left = if round > 0.0 {
            travelled_m % round
        } else {
            0.0
        };
        for (a, b) in &legs {
            let d = distance_m(*a, *b);
            if left <= d && d > 0.0 {
                let f = left / d;
                let p = (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
                return (p, bearing_deg(*a, *b));
            }
            left -= d;
        }
        (self.points[0], 0.0)
    }

    /// Sends a fix every second until the receiver is dropped.
    pub async fn drive(&self, fixes: &mpsc::Sender<Location>) {
        let start = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval(TICK);
        loop {
            ticks.tick().await;
            let travelled = start.elapsed().as_secs_f64() * self.speed_mps;
            let ((lat, lon), heading) = self.position(travelled);
            let fix = Location {
                lat,
                lon,
                accuracy_m: Some(5.0),
                heading_deg: Some(heading),
                speed_mps: Some(self.speed_mps),
                fix_time_ms: crate::unix_ms(),
            };
            if fixes.send(fix).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_there_and_back() {
        let route: Route = "60.0,24.0;60.001,24.0@36".parse().unwrap();
        assert!((route.speed_mps - 10.0).abs() < 1e-9);
        let leg = distance_m((60.0, 24.0), (60.001, 24.0));
        let (p, heading) = route.position(leg / 2.0);
        assert!((p.0 - 60.0005).abs() < 1e-6 && heading < 1.0);
        let (p, heading) = route.position(leg * 1.5);
        assert!((p.0 - 60.0005).abs() < 1e-6 && (heading - 180.0).abs() < 1.0);
        assert!(route.position(leg * 2.0).0 .0 - 60.0 < 1e-6);
        let e = "60,24".parse::<Route>().unwrap_err().to_string();
        assert!(e.contains("two points"), "{e}");
        let e = "60,24;61,x".parse::<Route>().unwrap_err().to_string();
        assert!(e.contains("\"x\""), "{e}");
        let e = "60,24;61,25@-3".parse::<Route>().unwrap_err().to_string();
        assert!(e.contains("speed"), "{e}");
    }
}
