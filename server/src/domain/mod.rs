//! Pure domain types of the dispatch system: roles, units, incidents, orders, timeline events.
//! Nothing here knows about SQL or HTTP; every type validates itself on construction.

pub mod attention;
pub mod event;
pub mod incident;
pub mod order;
pub mod plan;
pub mod role;
pub mod unit;

pub use event::{Actor, TimelineEvent};
pub use incident::{
    callback_number, Incident, IncidentPhase, IncidentStatus, NewIncident, Priority,
};
pub use order::{Order, OrderState, OrderTransition};
pub use plan::{need_for, PlanNeed, ResponsePlan};
pub use role::Role;
pub use unit::{CallSign, Capabilities, NewUnit, Position, Unit, UnitStatus};

/// Milliseconds since the Unix epoch, the one clock of every record.
pub type Millis = i64;

/// The server's clock, in [`Millis`].
pub fn now_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A value that failed validation, with a message naming the field: one type for the whole
/// server, defined with the geography it shares it with.
pub use dispatch_geo::{coordinates, Invalid};

/// Checks an optional free-text field: trimmed, empty becomes `None`, bounded length.
///
/// # Errors
/// When the text is longer than `max` characters.
pub fn optional_text(
    name: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    let Some(v) = value else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max {
        return Err(Invalid::field(
            name,
            format_args!("is longer than {max} characters"),
        ));
    }
    Ok(Some(v.to_owned()))
}

/// Checks a short machine code such as an incident kind or a capability: 1–40 characters of
/// lower-case ASCII letters, digits and `_`.
///
/// # Errors
/// When the code is empty, too long or has other characters.
pub fn code(name: &str, value: &str) -> Result<String, Invalid> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Invalid::field(
            name,
            format_args!("must be 1-40 characters of a-z, 0-9 and _ (got {value:?})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(code("kind", "traffic_accident").is_ok());
        assert!(code("kind", "").is_err());
        assert!(code("kind", "Theft").unwrap_err().0.contains("`kind`"));
    }

    #[test]
    fn optional_text_trims_and_bounds() {
        assert_eq!(optional_text("n", Some("  ".into()), 5).unwrap(), None);
        assert_eq!(
            optional_text("n", Some(" ab ".into()), 5).unwrap(),
            Some("ab".into())
        );
        assert!(optional_text("n", Some("abcdef".into()), 5).is_err());
    }

    #[test]
    fn coordinates_in_range() {
        assert!(coordinates(60.17, 24.94).is_ok());
        assert!(coordinates(f64::NAN, 0.0).is_err());
        assert!(coordinates(0.0, 181.0).unwrap_err().0.contains("`lon`"));
    }
}
