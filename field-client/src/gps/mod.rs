//! Position sources for the tablet: gpsd (its JSON protocol), NMEA 0183 from a serial device or
//! a file, and a simulated route for testing. Each yields protocol [`Location`]s on a channel.

pub mod gpsd;
pub mod nmea;
pub mod route;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use dispatch_protocol::Location;
use tokio::sync::mpsc;

/// Where gpsd listens unless told otherwise.
pub const GPSD_DEFAULT: &str = "127.0.0.1:2947";
/// Pause before reconnecting to gpsd or reopening a serial device after a failure.
const RETRY: Duration = Duration::from_secs(2);

/// A configured position source, from the `--gps` argument.
#[derive(Debug, Clone, PartialEq)]
pub enum GpsSource {
    /// gpsd at `HOST:PORT`.
    Gpsd { addr: String },
    /// NMEA 0183 sentences from a serial device (read as it comes) or a recorded file (replayed
    /// at `file_pace` per fix, then the source ends).
    Nmea { path: PathBuf, file_pace: Duration },
    /// A simulated drive along a polyline, back and forth.
    Route(route::Route),
}

/// Why a position source failed or could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum GpsError {
    #[error("bad --gps value {0:?}: expected gpsd[:HOST:PORT], nmea:PATH or route:LAT,LON;LAT,LON[@KMH]")]
    BadSpec(String),
    #[error("bad route: {0}")]
    BadRoute(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl FromStr for GpsSource {
    type Err = GpsError;

    fn from_str(spec: &str) -> Result<Self, GpsError> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "gpsd" if rest.is_empty() => Ok(Self::Gpsd {
                addr: GPSD_DEFAULT.into(),
            }),
            "gpsd" if rest.contains(':') => Ok(Self::Gpsd { addr: rest.into() }),
            "nmea" if !rest.is_empty() => Ok(Self::Nmea {
                path: rest.into(),
                file_pace: Duration::from_secs(1),
            }),
            "route" => rest.parse().map(Self::Route),
            _ => Err(GpsError::BadSpec(spec.into())),
        }
    }
}

impl GpsSource {
    /// Sends fixes to `fixes` until the source ends (a replayed file, a closed receiver).
    /// gpsd is reconnected and a serial device reopened after failures, forever.
    ///
    /// # Errors
    /// When a file cannot be opened (a missing recording is a configuration mistake).
    pub async fn run(self, fixes: mpsc::Sender<Location>) -> Result<(), GpsError> {
        match self {
            Self::Gpsd { addr } => loop {
                match gpsd::follow(&addr, &fixes).await {
                    Ok(()) if fixes.is_closed() => return Ok(()),
                    Ok(()) => tracing::warn!(%addr, "gpsd closed the connection; reconnecting"),
                    Err(e) => tracing::warn!(%addr, "gpsd: {e}; retrying"),
                }
                tokio::time::sleep(RETRY).await;
            },
            Self::Nmea { path, file_pace } => {
                let regular = std::fs::metadata(&path)
                    .map_err(|source| GpsError::Io {
                        what: path.display().to_string(),
                        source,
                    })?
                    .is_file();
                if regular {
                    return nmea::replay_file(&path, file_pace, &fixes).await;
                }
                loop {
                    match nmea::follow_device(&path, &fixes).await {
                        Ok(()) if fixes.is_closed() => return Ok(()),
                        Ok(()) => {
                            tracing::warn!(path = %path.display(), "NMEA device ended; reopening")
                        }
                        Err(e) => tracing::warn!("NMEA device: {e}; reopening"),
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
            Self::Route(route) => {
                route.drive(&fixes).await;
                Ok(())
            }
        }
    }
}

/// Milliseconds since the Unix epoch of a UTC date and time of day.
pub(crate) fn utc_ms(date: chrono::NaiveDate, time: chrono::NaiveTime) -> i64 {
    date.and_time(time).and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spec_and_names_bad_ones() {
        assert_eq!(
            "gpsd".parse::<GpsSource>().unwrap(),
            GpsSource::Gpsd {
                addr: GPSD_DEFAULT.into()
            }
        );
        assert_eq!(
            "gpsd:10.0.0.2:2947".parse::<GpsSource>().unwrap(),
            GpsSource::Gpsd {
                addr: "10.0.0.2:2947".into()
            }
        );
        assert!(matches!(
            "nmea:/dev/ttyUSB0".parse::<GpsSource>().unwrap(),
            GpsSource::Nmea { path, .. } if path == std::path::Path::new("/dev/ttyUSB0")
        ));
        assert!(matches!(
            "route:60.17,24.94;60.18,24.95@40"
                .parse::<GpsSource>()
                .unwrap(),
            GpsSource::Route(_)
        ));
        for bad in ["", "glonass", "nmea:", "gpsd:host"] {
            let e = bad.parse::<GpsSource>().unwrap_err().to_string();
            assert!(e.contains("bad --gps value"), "{bad}: {e}");
        }
        let e = "route:91,0;60,24"
            .parse::<GpsSource>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("lat"), "{e}");
    }
}
