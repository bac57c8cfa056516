//! The headless agent's stdin language: one command per line.
//!
//! Parsed completely before anything is stored, so a bad line changes nothing.

use dispatch_protocol::{validate_coordinates, ReportedStatus};
use field_client::inbox::Action;

/// Usage text printed with every parse error.
pub const USAGE: &str = "commands: accept ORDER_ID | decline ORDER_ID REASON [DETAIL...] | \
status en_route|on_scene|cleared|available|out_of_service [ORDER_ID] | location LAT LON";

const STATUSES: [ReportedStatus; 5] = [
    ReportedStatus::EnRoute,
    ReportedStatus::OnScene,
    ReportedStatus::Cleared,
    ReportedStatus::Available,
    ReportedStatus::OutOfService,
];

/// One line of stdin: an action for the server to confirm, or a position.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    Act(Action),
    Location { lat: f64, lon: f64 },
}

/// Parses a line; `Ok(None)` for a blank line.
///
/// # Errors
/// A message naming what is wrong with the line.
pub fn parse(line: &str) -> Result<Option<AgentCommand>, String> {
    let line = line.trim();
    let Some((verb, rest)) = split_word(line) else {
        return Ok(None);
    };
    let command = match verb {
        "accept" => {
            let (id, extra) = split_word(rest).ok_or("accept needs an ORDER_ID")?;
            no_more(extra, "accept ORDER_ID")?;
            AgentCommand::Act(Action::Accept {
                order_id: order_id(id)?,
            })
        }
        "decline" => {
            let (id, rest) = split_word(rest).ok_or("decline needs an ORDER_ID and a REASON")?;
            let (reason, detail) =
                split_word(rest).ok_or("decline needs a REASON code after the ORDER_ID")?;
            AgentCommand::Act(Action::Decline {
                order_id: order_id(id)?,
                reason: reason.to_owned(),
                detail: (!detail.is_empty()).then(|| detail.to_owned()),
            })
        }
        "status" => {
            let (name, rest) = split_word(rest).ok_or("status needs a STATUS")?;
            let status = STATUSES
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| format!("unknown status {name:?}"))?;
            let order_id = match split_word(rest) {
                None => None,
                Some((id, extra)) => {
                    no_more(extra, "status STATUS [ORDER_ID]")?;
                    Some(order_id(id)?)
                }
            };
            AgentCommand::Act(Action::Status { status, order_id })
        }
        "location" => {
            let (lat, rest) = split_word(rest).ok_or("location needs LAT and LON")?;
            let (lon, extra) = split_word(rest).ok_or("location needs LAT and LON")?;
            no_more(extra, "location LAT LON")?;
            let lat = number(lat, "LAT")?;
            let lon = number(lon, "LON")?;
            validate_coordinates(lat, lon).map_err(|e| e.to_string())?;
            AgentCommand::Location { lat, lon }
        }
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(Some(command))
}

fn split_word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some((&text[..end], text[end..].trim()))
}

fn no_more(extra: &str, form: &str) -> Result<(), String> {
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected {extra:?}; the form is `{form}`"))
    }
}

fn order_id(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("ORDER_ID must be an integer, got {text:?}"))
}

fn number(text: &str, name: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{name} must be a number, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(
            parse("accept 17"),
            Ok(Some(AgentCommand::Act(Action::Accept { order_id: 17 })))
        );
        assert_eq!(
            parse("decline 17  other  flat  tyre "),
            Ok(Some(AgentCommand::Act(Action::Decline {
                order_id: 17,
                reason: "other".into(),
                detail: Some("flat  tyre".into())
            })))
        );
        assert_eq!(
            parse("status en_route 17"),
            Ok(Some(AgentCommand::Act(Action::Status {
                status: ReportedStatus::EnRoute,
                order_id: Some(17)
            })))
        );
        assert_eq!(
            parse("status out_of_service"),
            Ok(Some(AgentCommand::Act(Action::Status {
                status: ReportedStatus::OutOfService,
                order_id: None
            })))
        );
        assert_eq!(
            parse("location 60.1699 24.9384"),
            Ok(Some(AgentCommand::Location {
                lat: 60.1699,
                lon: 24.9384
            }))
        );
    }

    #[test]
    fn bad_lines_name_the_problem() {
        let err = |line: &str| parse(line).unwrap_err();
        assert!(err("fly 1").contains("unknown command"));
        assert!(err("accept").contains("ORDER_ID"));
        assert!(err("accept x").contains("integer"));
        assert!(err("accept 1 2").contains("unexpected"));
        assert!(err("decline 17").contains("REASON"));
        assert!(err("status parked").contains("unknown status"));
        assert!(err("location 91 0").contains("lat"));
        assert!(err("location 60 NaN").contains("LON"));
        assert!(err("location 60").contains("LAT and LON"));
    }
}
