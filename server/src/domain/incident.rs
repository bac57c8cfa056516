//! Incidents: what was reported, where, how urgent, and whether it is still open.

use serde::{Deserialize, Serialize};

use super::{code, coordinates, optional_text, Capabilities, Invalid};

/// Urgency from 0 (most urgent) to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority(u8);

impl Priority {
    /// # Errors
    /// When outside 0..=4.
    pub fn parse(p: i64) -> Result<Self, Invalid> {
        u8::try_from(p)
            .ok()
            .filter(|p| *p <= 4)
            .map(Self)
            .ok_or_else(|| Invalid::field("priority", format_args!("must be 0 to 4 (got {p})")))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    /// At least one order has been issued.
    Dispatched,
    Closed,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Dispatched => "dispatched",
            Self::Closed => "closed",
        }
    }

    /// # Errors
    /// When the text is not a known status.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "open" => Ok(Self::Open),
            "dispatched" => Ok(Self::Dispatched),
            "closed" => Ok(Self::Closed),
            _ => Err(Invalid::field("status", format_args!("is unknown: {s:?}"))),
        }
    }
}

/// A validated incident report.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub kind: String,
    pub priority: Priority,
    pub lat: f64,
    pub lon: f64,
    pub address: Option<String>,
    pub caller: Option<String>,
    pub notes: Option<String>,
    pub required_capabilities: Capabilities,
}

impl NewIncident {
    /// # Errors
    /// The first field that fails validation.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        kind: &str,
        priority: i64,
        lat: f64,
        lon: f64,
        address: Option<String>,
        caller: Option<String>,
        notes: Option<String>,
        required_capabilities: &[String],
    ) -> Result<Self, Invalid> {
        let (lat, lon) = coordinates(lat, lon)?;
        Ok(Self {
            kind: code("kind", kind)?,
            priority: Priority::parse(priority)?,
            lat,
            lon,
            address: optional_text("address", address, 200)?,
            caller: optional_text("caller", caller, 200)?,
            notes: optional_text("notes", notes, 4000)?,
            required_capabilities: Capabilities::parse(
                "required_capabilities",
                required_capabilities,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_range() {
        assert_eq!(Priority::parse(0).unwrap().get(), 0);
        assert!(Priority::parse(5).unwrap_err().0.contains("`priority`"));
        assert!(Priority::parse(-1).is_err());
    }

    #[test]
    fn incident_validation_names_field() {
        let e = NewIncident::parse("burglary", 1, 95.0, 0.0, None, None, None, &[]).unwrap_err();
        assert!(e.0.contains("`lat`"), "{e}");
        let ok = NewIncident::parse("burglary", 1, 60.0, 24.0, Some(" ".into()), None, None, &[])
            .unwrap();
        assert_eq!(ok.address, None);
    }
}

/// An incident as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: i64,
    pub kind: String,
    pub priority: u8,
    pub status: IncidentStatus,
    pub lat: f64,
    pub lon: f64,
    pub address: Option<String>,
    pub caller: Option<String>,
    pub notes: Option<String>,
    pub required_capabilities: Vec<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub disposition: Option<String>,
    /// For an incident opened by an officer's emergency button: that officer's unit, which is
    /// never recommended for it.
    pub emergency_unit_id: Option<i64>,
}
