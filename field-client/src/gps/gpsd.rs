//! gpsd's JSON protocol on TCP (normally 127.0.0.1:2947): ask for `WATCH` reports and turn
//! each `TPV` report with a 2D or 3D fix into a [`Location`].

use dispatch_protocol::Location;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::GpsError;

/// The command that starts JSON reports.
pub const WATCH: &str = "?WATCH={\"enable\":true,\"json\":true};\n";

/// The fields of a `TPV` report this client uses.
#[derive(Debug, Deserialize)]
struct Tpv {
    class: String,
    #[serde(default)]
    mode: u8,
    time: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    /// Metres per second over ground.
    speed: Option<f64>,
    /// Course over ground, degrees from true north.
    track: Option<f64>,
    /// Estimated horizontal error (gpsd ≥ 3.20), else the larger of `epx`/`epy`.
    eph: Option<f64>,
    epx: Option<f64>,
    epy: Option<f64>,
}

/// Turns one line from gpsd into a fix, when it is a `TPV` report with a position.
pub fn parse_report(line: &str) -> Option<Location> {
    let tpv: Tpv = serde_json::from_str(line).ok()?;
    if tpv.class != "TPV" || tpv.mode < 2 {
        return None;
    }
    let fix_time_ms = tpv
        .time
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(crate::unix_ms, |t| t.timestamp_millis());
    let accuracy_m = tpv.eph.or(match (tpv.epx, tpv.epy) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    });
    let location = Location {
        lat: tpv.lat?,
        lon: tpv.lon?,
        accuracy_m: accuracy_m.filter(|a| a.is_finite() && *a >= 0.0),
        heading_deg: tpv.track.filter(|h| (0.0..=360.0).contains(h)),
        speed_mps: tpv.speed.filter(|s| s.is_finite() && *s >= 0.0),
        fix_time_ms,
    };
    location.validate().ok().map(|()| location)
}

/// Connects to gpsd at `addr`, asks for reports and forwards fixes until gpsd closes the
/// connection or the receiver is dropped.
///
/// # Errors
/// When gpsd cannot be reached or the connection fails.
pub async fn follow(addr: &str, fixes: &mpsc::Sender<Location>) -> Result<(), GpsError> {
    let io = |source| GpsError::Io {
        what: format!("gpsd at {addr}"),
        source,
    };
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    stream.write_all(WATCH.as_bytes()).await.map_err(io)?;
    let mut lines = BufReader::new(stream).lines();
    tracing::info!(%addr, "reading positions from gpsd");
    while let Some(line) = lines.next_line().await.map_err(io)? {
        if let Some(fix) = parse_report(&line) {
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
    fn reads_tpv_with_a_fix_only() {
        let fix = parse_report(
            r#"{"class":"TPV","device":"/dev/ttyUSB0","mode":3,"time":"2026-11-22T05:00:01.000Z","lat":60.1699,"lon":24.9384,"speed":12.5,"track":271.0,"epx":3.1,"epy":4.2}"#,
        )
        .unwrap();
        assert_eq!((fix.lat, fix.lon), (60.1699, 24.9384));
        assert_eq!(fix.accuracy_m, Some(4.2));
        assert_eq!(fix.heading_deg, Some(271.0));
        assert_eq!(fix.fix_time_ms, 1_795_323_601_000);
        assert!(parse_report(r#"{"class":"TPV","mode":1}"#).is_none());
        assert!(parse_report(r#"{"class":"SKY","satellites":[]}"#).is_none());
        assert!(parse_report(r#"{"class":"TPV","mode":2,"lat":95,"lon":0}"#).is_none());
        assert!(parse_report("not json").is_none());
    }
}
