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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Where an incident's response stands, derived from its orders and their units (never stored):
/// `pending` (no unit is working on it: none sent yet, or every order declined, cancelled or
/// expired), `dispatched` (an order is active, no unit moving yet), `en_route`, `on_scene`
/// (the furthest along of the units that accepted), `cleared` (every unit cleared, awaiting
/// disposition: an operator closes it), `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentPhase {
    Pending,
    Dispatched,
    EnRoute,
    OnScene,
    Cleared,
    Closed,
}

impl IncidentPhase {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Dispatched,
        Self::EnRoute,
        Self::OnScene,
        Self::Cleared,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Dispatched => "dispatched",
            Self::EnRoute => "en_route",
            Self::OnScene => "on_scene",
            Self::Cleared => "cleared",
            Self::Closed => "closed",
        }
    }

    /// # Errors
    /// When the text is not a known phase.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Invalid::field("phase", format_args!("is unknown: {s:?}")))
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
    pub callback: Option<String>,
    pub notes: Option<String>,
    pub required_capabilities: Capabilities,
}

/// The longest callback number accepted (E.164 allows 15 digits; room for extensions).
const MAX_CALLBACK: usize = 40;

/// A callback number: digits with at most a leading `+` and spaces, dashes, dots, parentheses
/// or `#`/`*`/`,` for extensions; blank means none.
///
/// # Errors
/// When it holds anything else or is too long.
pub fn callback_number(value: Option<String>) -> Result<Option<String>, Invalid> {
    let Some(number) = optional_text("callback", value, MAX_CALLBACK)? else {
        return Ok(None);
    };
    let allowed = |(i, c): (usize, char)| {
        c.is_ascii_digit() || (c == '+' && i == 0) || " -.()#*,".contains(c)
    };
    if !number.char_indices().all(allowed) || !number.chars().any(|c| c.is_ascii_digit()) {
        return Err(Invalid::field(
            "callback",
            "must be a telephone number (digits, a leading +, spaces, - . ( ) # * ,)",
        ));
    }
    Ok(Some(number))
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
        callback: Option<String>,
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
            callback: callback_number(callback)?,
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
        let e =
            NewIncident::parse("burglary", 1, 95.0, 0.0, None, None, None, None, &[]).unwrap_err();
        assert!(e.0.contains("`lat`"), "{e}");
        let ok = NewIncident::parse(
            "burglary",
            1,
            60.0,
            24.0,
            Some(" ".into()),
            None,
            None,
            None,
            &[],
        )
        .unwrap();
        assert_eq!(ok.address, None);
    }

    #[test]
    fn callback_numbers() {
        let ok = |s: &str| callback_number(Some(s.into())).unwrap();
        assert_eq!(ok("+358 40 123 4567").as_deref(), Some("+358 40 123 4567"));
        assert_eq!(
            ok("(02) 112-3456 #12").as_deref(),
            Some("(02) 112-3456 #12")
        );
        assert_eq!(ok("  "), None);
        for bad in ["call me", "40+1", "+", &"1".repeat(41)] {
            let e = callback_number(Some(bad.into())).unwrap_err();
            assert!(e.0.contains("`callback`"), "{bad}: {e}");
        }
    }

    #[test]
    fn phases_round_trip() {
        for p in IncidentPhase::ALL {
            assert_eq!(IncidentPhase::parse(p.as_str()).unwrap(), p);
        }
        assert!(IncidentPhase::parse("open").is_err());
    }
}

/// An incident as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: i64,
    pub kind: String,
    pub priority: u8,
    pub status: IncidentStatus,
    pub lat: f64,
    pub lon: f64,
    pub address: Option<String>,
    pub caller: Option<String>,
    /// The first caller's number to call back.
    pub callback: Option<String>,
    pub notes: Option<String>,
    pub required_capabilities: Vec<String>,
    /// Where the response stands (derived from the orders and their units).
    pub phase: IncidentPhase,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    pub disposition: Option<String>,
    /// For an incident opened by an officer's emergency button: that officer's unit, which is
    /// never recommended for it.
    pub emergency_unit_id: Option<i64>,
}
