//! `statistics.csv`: one row per incident with the call (caller, callback number, notes) and every
//! time of its response (created; the first order sent, delivered, acknowledged and accepted; the
//! first unit en route, on scene and cleared; closed), RFC 4180 with a header row. The same rows
//! are the console's CSV export (`GET /api/export/incidents?format=csv`).

use std::io::Write;

use rusqlite::{params, Connection};

use super::Window;
use crate::domain::event::rfc3339;
use crate::store::sql::Dialect;
use crate::store::{response_milestones, ResponseMilestones};

pub const COLUMNS: &[&str] = &[
    "incident_id",
    "kind",
    "priority",
    "status",
    "address",
    "lat",
    "lon",
    "caller",
    "callback",
    "notes",
    "created_at",
    "dispatched_at",
    "delivered_at",
    "acknowledged_at",
    "accepted_at",
    "en_route_at",
    "arrived_at",
    "cleared_at",
    "closed_at",
    "disposition",
    "units",
];

/// Writes the header and every incident created inside the window, oldest first.
pub fn write_statistics(
    db: &Connection,
    window: Window,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    let mut stmt = db.prepare(&format!(
        "{} WHERE i.created_at >= ?1 AND i.created_at <= ?2
         ORDER BY i.created_at, i.id",
        response_milestones(Dialect::Sqlite)
    ))?;
    let mut rows = stmt.query(params![window.start_ms(), window.end_ms()])?;
    write_header(out)?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        write_row(out, &ResponseMilestones::from_row(r))?;
        count += 1;
    }
    Ok(count)
}

pub fn write_header(out: &mut dyn Write) -> std::io::Result<()> {
    out.write_all(COLUMNS.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

/// One incident's line; times as RFC 3339 UTC, empty when not reached.
pub fn write_row(out: &mut dyn Write, r: &ResponseMilestones) -> std::io::Result<()> {
    let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
    let fields = [
        r.incident_id.to_string(),
        r.kind.clone(),
        r.priority.to_string(),
        r.status.clone(),
        r.address.clone().unwrap_or_default(),
        r.lat.to_string(),
        r.lon.to_string(),
        r.caller.clone().unwrap_or_default(),
        r.callback.clone().unwrap_or_default(),
        r.notes.clone().unwrap_or_default(),
        rfc3339(r.created_at_ms),
        time(r.dispatched_at_ms),
        time(r.delivered_at_ms),
        time(r.acknowledged_at_ms),
        time(r.accepted_at_ms),
        time(r.en_route_at_ms),
        time(r.arrived_at_ms),
        time(r.cleared_at_ms),
        time(r.closed_at_ms),
        r.disposition.clone().unwrap_or_default(),
        r.units.join(" "),
    ];
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.write_all(line.join(",").as_bytes())?;
    out.write_all(b"\r\n")
}

/// The rows as CSV with a header line.
pub fn to_csv(rows: &[ResponseMilestones]) -> Vec<u8> {
    let mut out = Vec::new();
    let written =
        write_header(&mut out).and_then(|()| rows.iter().try_for_each(|r| write_row(&mut out, r)));
    debug_assert!(written.is_ok(), "writing to a Vec does not fail");
    out
}

/// Quotes a field when it holds a comma, quote or line break; a leading `=`, `+`, `-` or `@`
/// is prefixed with `'` so that a spreadsheet does not run it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-24.5"), "-24.5");
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_incident() {
        let row = ResponseMilestones {
            incident_id: 7,
            kind: "burglary".into(),
            priority: 1,
            status: "open".into(),
            address: Some("Aleksanterinkatu 52, Helsinki".into()),
            lat: 60.1,
            lon: 24.9,
            caller: Some("Kim".into()),
            callback: Some("010-1234-5678".into()),
            notes: Some("back door, \"open\"".into()),
            disposition: None,
            created_at_ms: 0,
            closed_at_ms: None,
            dispatched_at_ms: Some(1_000),
            delivered_at_ms: Some(2_000),
            acknowledged_at_ms: None,
            accepted_at_ms: None,
            en_route_at_ms: None,
            arrived_at_ms: None,
            cleared_at_ms: None,
            units: vec!["P-1".into(), "P-2".into()],
        };
        let csv = String::from_utf8(to_csv(&[row])).unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(
            lines[1],
            "7,burglary,1,open,\"Aleksanterinkatu 52, Helsinki\",60.1,24.9,Kim,010-1234-5678,\
             \"back door, \"\"open\"\"\",1970-01-01T00:00:00.000Z,1970-01-01T00:00:01.000Z,\
             1970-01-01T00:00:02.000Z,,,,,,,,P-1 P-2"
        );
        assert_eq!(lines.len(), 3);
    }
}
