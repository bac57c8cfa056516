//! `broadcasts/broadcast-<id>.xml`: every broadcast as an OASIS CAP 1.2 alert, one file each
//! (CAP has one alert per document), valid against the OASIS schema
//! (`tests/schemas/CAP-v1.2.xsd`).
//!
//! CAP times have whole seconds and its polygon is its own text form, so what CAP cannot say
//! exactly travels in `<parameter>`s named `dispatch:…`: the broadcast's number, its times to
//! the millisecond, the operator who sent it and the target as requested (JSON). The import
//! reads a broadcast back from these files.

use std::fmt::Write as _;
use std::io::{BufRead, Write};

use quick_xml::events::Event;
use rusqlite::{params, Connection, Row, Transaction};

use super::records::Time;
use super::Window;
use crate::domain::event::rfc3339;

pub const NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// A stored broadcast.
#[derive(Debug, Default, PartialEq)]
pub struct Broadcast {
    pub id: i64,
    pub created_by: Option<i64>,
    pub sender: String,
    pub created_at: i64,
    /// JSON of the target as requested.
    pub target: String,
    pub urgency: String,
    pub severity: String,
    pub certainty: String,
    pub headline: String,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub area_desc: Option<String>,
    /// JSON `[[lat, lon], …]`, first and last equal.
    pub polygon: Option<String>,
    pub expires_at: Option<i64>,
}

/// The file name of a broadcast inside the export.
pub fn file_name(id: i64) -> String {
    format!("broadcasts/broadcast-{id}.xml")
}

/// Calls `each` with every broadcast sent inside the window, oldest first.
pub fn for_each_broadcast(
    db: &Connection,
    window: Window,
    mut each: impl FnMut(&Broadcast) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut stmt = db.prepare(
        "SELECT id, created_by, sender, created_at, target, urgency, severity, certainty,
                headline, description, instruction, area_desc, polygon, expires_at
         FROM broadcasts WHERE created_at >= ?1 AND created_at <= ?2 ORDER BY id",
    )?;
    let mut rows = stmt.query(params![window.start_ms(), window.end_ms()])?;
    let mut count = 0;
    while let Some(r) = rows.next()? {
        each(&broadcast(r)?)?;
        count += 1;
    }
    Ok(count)
}

fn broadcast(r: &Row<'_>) -> rusqlite::Result<Broadcast> {
    Ok(Broadcast {
        id: r.get(0)?,
        created_by: r.get(1)?,
        sender: r.get(2)?,
        created_at: r.get(3)?,
        target: r.get(4)?,
        urgency: r.get(5)?,
        severity: r.get(6)?,
        certainty: r.get(7)?,
        headline: r.get(8)?,
        description: r.get(9)?,
        instruction: r.get(10)?,
        area_desc: r.get(11)?,
        polygon: r.get(12)?,
        expires_at: r.get(13)?,
    })
}

/// CAP's dateTime: whole seconds with a numeric offset (`2026-12-04T17:33:26+00:00`).
fn cap_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_default()
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// The alert of one broadcast.
pub fn write_alert(b: &Broadcast, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut x = String::new();
    let element = |x: &mut String, indent: &str, name: &str, text: &str| {
        let _ = writeln!(x, "{indent}<{name}>{}</{name}>", escape(text));
    };
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<alert xmlns=\"{NAMESPACE}\">");
    element(
        &mut x,
        "  ",
        "identifier",
        &format!("dispatch-broadcast-{}", b.id),
    );
    // CAP's sender may not hold spaces, commas, `<` or `&`; the name as written is senderName.
    let sender: String = b
        .sender
        .chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, ',' | '<' | '&') {
                '_'
            } else {
                c
            }
        })
        .collect();
    element(&mut x, "  ", "sender", &sender);
    element(&mut x, "  ", "sent", &cap_time(b.created_at));
    element(&mut x, "  ", "status", "Actual");
    element(&mut x, "  ", "msgType", "Alert");
    element(&mut x, "  ", "scope", "Restricted");
    element(
        &mut x,
        "  ",
        "restriction",
        "Field units of the dispatching agency",
    );
    x.push_str("  <info>\n");
    element(&mut x, "    ", "category", "Security");
    element(&mut x, "    ", "event", &b.headline);
    element(&mut x, "    ", "urgency", &b.urgency);
    element(&mut x, "    ", "severity", &b.severity);
    element(&mut x, "    ", "certainty", &b.certainty);
    if let Some(expires) = b.expires_at {
        element(&mut x, "    ", "expires", &cap_time(expires));
    }
    element(&mut x, "    ", "senderName", &b.sender);
    element(&mut x, "    ", "headline", &b.headline);
    if let Some(d) = &b.description {
        element(&mut x, "    ", "description", d);
    }
    if let Some(i) = &b.instruction {
        element(&mut x, "    ", "instruction", i);
    }
    let mut parameter = |name: &str, value: &str| {
        let _ = writeln!(
            x,
            "    <parameter>\n      <valueName>{name}</valueName>\n      <value>{}</value>\n    </parameter>",
            escape(value)
        );
    };
    parameter("dispatch:broadcast_id", &b.id.to_string());
    parameter("dispatch:created_at", &rfc3339(b.created_at));
    if let Some(expires) = b.expires_at {
        parameter("dispatch:expires_at", &rfc3339(expires));
    }
    if let Some(by) = b.created_by {
        parameter("dispatch:created_by", &by.to_string());
    }
    parameter("dispatch:target", &b.target);
    if let Some(area) = &b.area_desc {
        x.push_str("    <area>\n");
        element(&mut x, "      ", "areaDesc", area);
        if let Some(polygon) = &b.polygon {
            let ring: Vec<[f64; 2]> = serde_json::from_str(polygon)
                .map_err(|e| anyhow::anyhow!("broadcast {}: stored polygon: {e}", b.id))?;
            let text: Vec<String> = ring
                .iter()
                .map(|[lat, lon]| format!("{lat},{lon}"))
                .collect();
            element(&mut x, "      ", "polygon", &text.join(" "));
        }
        x.push_str("    </area>\n");
    }
    x.push_str("  </info>\n</alert>\n");
    out.write_all(x.as_bytes())?;
    Ok(())
}

/// Reads a broadcast back from an alert this module wrote.
pub fn read_alert(input: impl BufRead) -> anyhow::Result<Broadcast> {
    let mut reader = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut value_name = String::new();
    let mut b = Broadcast::default();
    let mut seen_id = false;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.unescape()?),
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let here: Vec<&str> = path.iter().map(String::as_str).collect();
                let value = std::mem::take(&mut text);
                match here.as_slice() {
                    ["alert", "info", "urgency"] => b.urgency = value,
                    ["alert", "info", "severity"] => b.severity = value,
                    ["alert", "info", "certainty"] => b.certainty = value,
                    ["alert", "info", "senderName"] => b.sender = value,
                    ["alert", "info", "headline"] => b.headline = value,
                    ["alert", "info", "description"] => b.description = Some(value),
                    ["alert", "info", "instruction"] => b.instruction = Some(value),
                    ["alert", "info", "area", "areaDesc"] => b.area_desc = Some(value),
                    ["alert", "info", "area", "polygon"] => b.polygon = Some(polygon_json(&value)?),
                    ["alert", "info", "parameter", "valueName"] => value_name = value,
                    ["alert", "info", "parameter", "value"] => match value_name.as_str() {
                        "dispatch:broadcast_id" => {
                            b.id = value.parse()?;
                            seen_id = true;
                        }
                        "dispatch:created_at" => b.created_at = parse_time(&value)?,
                        "dispatch:expires_at" => b.expires_at = Some(parse_time(&value)?),
                        "dispatch:created_by" => b.created_by = Some(value.parse()?),
                        "dispatch:target" => b.target = value,
                        _ => {}
                    },
                    _ => {}
                }
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    anyhow::ensure!(
        seen_id,
        "no dispatch:broadcast_id parameter: not an alert of this export"
    );
    anyhow::ensure!(!b.target.is_empty(), "no dispatch:target parameter");
    anyhow::ensure!(b.created_at != 0, "no dispatch:created_at parameter");
    Ok(b)
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    Time::parse(text).map(|t| t.0).map_err(anyhow::Error::msg)
}

/// CAP's `lat,lon lat,lon …` as the stored JSON ring.
fn polygon_json(text: &str) -> anyhow::Result<String> {
    let ring = text
        .split_whitespace()
        .map(|pair| {
            let (lat, lon) = pair
                .split_once(',')
                .ok_or_else(|| anyhow::anyhow!("polygon point {pair:?} is not lat,lon"))?;
            Ok([lat.parse::<f64>()?, lon.parse::<f64>()?])
        })
        .collect::<anyhow::Result<Vec<[f64; 2]>>>()?;
    Ok(serde_json::to_string(&ring)?)
}

pub fn insert(tx: &Transaction<'_>, b: &Broadcast) -> anyhow::Result<()> {
    tx.execute(
        "INSERT INTO broadcasts (id, created_by, sender, created_at, target, urgency, severity,
                                 certainty, headline, description, instruction, area_desc,
                                 polygon, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            b.id,
            b.created_by,
            b.sender,
            b.created_at,
            b.target,
            b.urgency,
            b.severity,
            b.certainty,
            b.headline,
            b.description,
            b.instruction,
            b.area_desc,
            b.polygon,
            b.expires_at
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_reads_back_as_the_broadcast_it_was() {
        let b = Broadcast {
            id: 7,
            created_by: Some(2),
            sender: "Kim <Desk 3> & co, night".into(),
            created_at: 1_764_870_000_123,
            target: r#"{"all":true}"#.into(),
            urgency: "Immediate".into(),
            severity: "Severe".into(),
            certainty: "Observed".into(),
            headline: "BOLO: grey van, plate 12가 3456".into(),
            description: Some("Seen heading north.\nTwo occupants.".into()),
            instruction: None,
            area_desc: Some("Kallio".into()),
            polygon: Some("[[60.18,24.94],[60.19,24.95],[60.18,24.96],[60.18,24.94]]".into()),
            expires_at: Some(1_764_873_600_999),
        };
        let mut xml = Vec::new();
        write_alert(&b, &mut xml).unwrap();
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(
            text.contains("<sent>2025-12-04T17:40:00+00:00</sent>"),
            "{text}"
        );
        assert!(
            text.contains("<sender>Kim__Desk_3&gt;___co__night</sender>"),
            "{text}"
        );
        assert_eq!(read_alert(xml.as_slice()).unwrap(), b);
    }
}
