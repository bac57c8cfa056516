//! NMEA 0183: `RMC` sentences give the fix (position, speed, course, date and time), `GGA`
//! the horizontal dilution of precision used to estimate accuracy. Any talker (GP, GN, GL, …).
//! Sentences with a wrong checksum, a void fix or unparsable fields are skipped.

use std::path::Path;
use std::time::Duration;

use dispatch_protocol::Location;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::GpsError;

/// Metres of horizontal error per unit of HDOP, a common rule of thumb for consumer receivers.
const METRES_PER_HDOP: f64 = 5.0;
const KNOTS_TO_MPS: f64 = 1852.0 / 3600.0;

/// Turns a stream of sentences into fixes, remembering the last HDOP.
#[derive(Debug, Default)]
pub struct Decoder {
    hdop: Option<f64>,
}

impl Decoder {
    /// Feeds one line; returns a fix when the line is a valid `RMC` with an active fix.
    pub fn line(&mut self, line: &str) -> Option<Location> {
        let body = checked_body(line.trim())?;
        let fields: Vec<&str> = body.split(',').collect();
        let kind = fields.first()?.get(2..)?;
        match kind {
            "GGA" => {
                // Quality 0 means no fix; then HDOP means nothing either.
                if fields.get(6).is_some_and(|q| *q != "0" && !q.is_empty()) {
                    self.hdop = fields.get(8).and_then(|h| h.parse().ok());
                }
                None
            }
            "RMC" => self.rmc(&fields),
            _ => None,
        }
    }

    fn rmc(&self, f: &[&str]) -> Option<Location> {
        if f.get(2)? != &"A" {
            return None;
        }
        let lat = coordinate(f.get(3)?, f.get(4)?, 2)?;
        let lon = coordinate(f.get(5)?, f.get(6)?, 3)?;
        let speed_mps = f
            .get(7)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|k| k * KNOTS_TO_MPS);
        let heading_deg = f
            .get(8)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|h| (0.0..=360.0).contains(h));
        let time = chrono::NaiveTime::parse_from_str(f.get(1)?, "%H%M%S%.f").ok()?;
        let date = chrono::NaiveDate::parse_from_str(f.get(9)?, "%d%m%y").ok()?;
        let location = Location {
            lat,
            lon,
            accuracy_m: self.hdop.map(|h| h * METRES_PER_HDOP),
            heading_deg,
            speed_mps,
            fix_time_ms: super::utc_ms(date, time),
        };
        location.validate().ok().map(|()| location)
    }
}

/// The part between `$` and `*` when the checksum (if any) matches.
fn checked_body(line: &str) -> Option<&str> {
    let line = line.strip_prefix('$')?;
    match line.split_once('*') {
        Some((body, sum)) => {
            let expected = u8::from_str_radix(sum.get(..2)?, 16).ok()?;
            let actual = body.bytes().fold(0u8, |acc, b| acc ^ b);
            (actual == expected).then_some(body)
        }
        None => Some(line),
    }
}

/// `ddmm.mmmm` (or `dddmm.mmmm`) and a hemisphere letter to signed degrees.
fn coordinate(value: &str, hemisphere: &str, degree_digits: usize) -> Option<f64> {
    let degrees: f64 = value.get(..degree_digits)?.parse().ok()?;
    let minutes: f64 = value.get(degree_digits..)?.parse().ok()?;
    if !(0.0..60.0).contains(&minutes) {
        return None;
    }
    let v = degrees + minutes / 60.0;
    match hemisphere {
        "N" | "E" => Some(v),
        "S" | "W" => Some(-v),
        _ => None,
    }
}

/// Replays a recorded file, one fix every `pace`.
///
/// # Errors
/// When the file cannot be opened or read.
pub async fn replay_file(
    path: &Path,
    pace: Duration,
    fixes: &mpsc::Sender<Location>,
) -> Result<(), GpsError> {
    let io = |source| GpsError::Io {
        what: path.display().to_string(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut lines = BufReader::new(file).lines();
    let mut decoder = Decoder::default();
    let mut first = true;
    while let Some(line) = lines.next_line().await.map_err(io)? {
        if let Some(fix) = decoder.line(&line) {
            if !first {
                tokio::time::sleep(pace).await;
            }
            first = false;
            if fixes.send(fix).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// Reads a serial device (already configured for the receiver's baud rate, for example with
/// `stty`) until it ends or fails.
///
/// # Errors
/// When the device cannot be opened or read.
pub async fn follow_device(path: &Path, fixes: &mpsc::Sender<Location>) -> Result<(), GpsError> {
    let io = |source| GpsError::Io {
        what: path.display().to_string(),
        source,
    };
    let device = tokio::fs::File::open(path).await.map_err(io)?;
    let mut lines = BufReader::new(device).lines();
    let mut decoder = Decoder::default();
    while let Some(line) = lines.next_line().await.map_err(io)? {
        if let Some(fix) = decoder.line(&line) {
            if fixes.send(fix).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rmc_with_gga_accuracy_and_skips_bad_sentences() {
        let mut d = Decoder::default();
        assert_eq!(
            d.line("$GPGGA,123519,6010.194,N,02456.304,E,1,08,0.9,545.4,M,46.9,M,,*4C"),
            None
        );
        let fix = d
            .line("$GPRMC,123519,A,6010.194,N,02456.304,E,022.4,084.4,230394,003.1,W*61")
            .unwrap();
        assert!((fix.lat - 60.169_9).abs() < 1e-4, "{fix:?}");
        assert!((fix.lon - 24.938_4).abs() < 1e-4, "{fix:?}");
        assert!((fix.speed_mps.unwrap() - 22.4 * KNOTS_TO_MPS).abs() < 1e-9);
        assert_eq!(fix.heading_deg, Some(84.4));
        assert!((fix.accuracy_m.unwrap() - 4.5).abs() < 1e-9);
        assert_eq!(fix.fix_time_ms, 764_426_119_000); // 1994-03-23T12:35:19Z
                                                      // Wrong checksum, void fix, southern/western hemispheres.
        assert_eq!(
            d.line("$GPRMC,123519,A,6010.194,N,02456.304,E,022.4,084.4,230394,003.1,W*00"),
            None
        );
        assert_eq!(d.line("$GPRMC,123519,V,,,,,,,230394,,*00"), None);
        let south = d
            .line("$GNRMC,000000.00,A,3351.000,S,15112.000,W,0,,010120,,")
            .unwrap();
        assert!(south.lat < -33.8 && south.lon < -151.1, "{south:?}");
        assert_eq!(south.heading_deg, None);
        assert_eq!(d.line("garbage"), None);
    }
}
