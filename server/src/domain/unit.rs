//! Field units (a patrol car and its crew): call sign, capabilities and operational status.

use serde::{Deserialize, Serialize};

use super::{code, optional_text, Invalid};

/// A unit's radio call sign, e.g. `P-12`: 1–20 characters of letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSign(String);

impl CallSign {
    /// # Errors
    /// When empty, longer than 20 characters or with other characters.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.chars().count() <= 20
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Invalid::field(
                "call_sign",
                format_args!("must be 1-20 letters, digits, - or _ (got {s:?})"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The set of things a unit can do (`patrol`, `k9`, `first_aid`…), at most 32 distinct codes.
/// Each code maps to a bit so the live index filters with one AND.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities(Vec<String>);

impl Capabilities {
    /// # Errors
    /// When a code is malformed or there are more than 32.
    pub fn parse(field: &str, codes: &[String]) -> Result<Self, Invalid> {
        let mut out: Vec<String> = Vec::with_capacity(codes.len());
        for c in codes {
            let c = code(field, c)?;
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.len() > 32 {
            return Err(Invalid::field(field, "has more than 32 entries"));
        }
        out.sort();
        Ok(Self(out))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Operational status of a unit as the dispatcher sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnitStatus {
    Available,
    /// An order is out to the unit and not yet cleared.
    Assigned,
    EnRoute,
    OnScene,
    OutOfService,
}

impl UnitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Assigned => "assigned",
            Self::EnRoute => "en_route",
            Self::OnScene => "on_scene",
            Self::OutOfService => "out_of_service",
        }
    }

    /// # Errors
    /// When the text is not a known status.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Ok(match s {
            "available" => Self::Available,
            "assigned" => Self::Assigned,
            "en_route" => Self::EnRoute,
            "on_scene" => Self::OnScene,
            "out_of_service" => Self::OutOfService,
            _ => return Err(Invalid::field("status", format_args!("is unknown: {s:?}"))),
        })
    }
}

/// A validated request to create a unit.
#[derive(Debug, Clone)]
pub struct NewUnit {
    pub call_sign: CallSign,
    pub kind: String,
    pub capabilities: Capabilities,
    pub home_station: Option<String>,
}

impl NewUnit {
    /// # Errors
    /// The first field that fails validation.
    pub fn parse(
        call_sign: &str,
        kind: &str,
        capabilities: &[String],
        home_station: Option<String>,
        kinds: &[String],
    ) -> Result<Self, Invalid> {
        let call_sign = CallSign::parse(call_sign)?;
        if !kinds.iter().any(|k| k == kind) {
            return Err(Invalid::field(
                "kind",
                format_args!(
                    "must be one of {} (`unit_kinds` in the configuration), not {kind:?}",
                    kinds.join(", ")
                ),
            ));
        }
        Ok(Self {
            call_sign,
            kind: kind.to_owned(),
            capabilities: Capabilities::parse("capabilities", capabilities)?,
            home_station: optional_text("home_station", home_station, 100)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_signs() {
        assert_eq!(CallSign::parse(" P-12 ").unwrap().as_str(), "P-12");
        assert!(CallSign::parse("").is_err());
        assert!(CallSign::parse("P 12").is_err());
        assert!(CallSign::parse("순찰-1").is_ok());
    }

    #[test]
    fn capabilities_dedupe_and_sort() {
        let c = Capabilities::parse("c", &["k9".into(), "patrol".into(), "k9".into()]).unwrap();
        assert_eq!(c.as_slice(), ["k9", "patrol"]);
        assert!(Capabilities::parse("c", &["K9".into()]).is_err());
    }
}

/// The last GPS fix of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    /// When the device took the fix (device clock).
    pub fix_time_ms: i64,
    /// When the server received it (server clock); staleness is judged by this.
    pub received_ms: i64,
}

/// A unit as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unit {
    pub id: i64,
    pub call_sign: String,
    pub kind: String,
    pub capabilities: Vec<String>,
    pub home_station: Option<String>,
    pub status: UnitStatus,
    /// The unit's active (not revoked) device, if one is enrolled.
    pub device_id: Option<i64>,
    pub position: Option<Position>,
    /// Since when its tablet has had no live connection, once that lasted past the configured
    /// `link_lost_secs`; such a unit is not recommended.
    #[schema(value_type = Option<i64>)]
    pub link_lost_at_ms: Option<super::Millis>,
    /// Since when an administrator has taken the unit out of the fleet: it has no device, is
    /// out of service, and is not recommended, dispatched or enrolled until enabled again.
    #[schema(value_type = Option<i64>)]
    pub disabled_at_ms: Option<super::Millis>,
}
