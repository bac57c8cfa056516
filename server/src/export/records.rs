//! The JSON Lines files of an export (`users.jsonl`, `units.jsonl`, `devices.jsonl`,
//! `texts.jsonl`, `events.jsonl`): one record type per file, written from the database and read
//! back by the import, so both directions share one definition of each file's fields.
//!
//! Secrets never leave: no password hash, second-factor key, device token or enrolment code.

use std::io::{BufRead, Write};

use rusqlite::{params, Connection, Row};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::Window;
use crate::domain::event::rfc3339;

/// A time in an export: RFC 3339 UTC with milliseconds (`2026-12-04T17:33:26.120Z`), which
/// keeps the stored millisecond exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub i64);

impl Time {
    pub fn opt(ms: Option<i64>) -> Option<Self> {
        ms.map(Self)
    }

    /// An RFC 3339 time (any offset), to the millisecond.
    ///
    /// # Errors
    /// A message naming the text when it is not one.
    pub fn parse(text: &str) -> Result<Self, String> {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|e| format!("{text:?} is not an RFC 3339 time like 2026-12-04T00:00:00Z: {e}"))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Writes one record as a line of JSON.
pub fn write_line<T: Serialize>(out: &mut dyn Write, record: &T) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, record)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Calls `each` with every record of a JSON Lines file, naming the line of a bad one.
pub fn read_lines<T: DeserializeOwned>(
    input: impl BufRead,
    file: &str,
    mut each: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut count = 0;
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        let record = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{file} line {}: {e}", n + 1))?;
        each(record).map_err(|e| anyhow::anyhow!("{file} line {}: {e}", n + 1))?;
        count += 1;
    }
    Ok(count)
}

/// Runs `query` and writes each row it maps.
fn write_rows<T: Serialize>(
    db: &Connection,
    query: &str,
    bind: impl rusqlite::Params,
    out: &mut dyn Write,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> anyhow::Result<u64> {
    let mut stmt = db.prepare(query)?;
    let mut rows = stmt.query(bind)?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        write_line(out, &map(row)?)?;
        count += 1;
    }
    Ok(count)
}

/// An operator account, without its password or second factor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub created_at: Time,
    pub disabled_at: Option<Time>,
}

pub fn write_users(db: &Connection, out: &mut dyn Write) -> anyhow::Result<u64> {
    write_rows(
        db,
        "SELECT id, username, role, created_at, disabled_at FROM operators ORDER BY id",
        [],
        out,
        |r| {
            Ok(UserRecord {
                id: r.get(0)?,
                username: r.get(1)?,
                role: r.get(2)?,
                created_at: Time(r.get(3)?),
                disabled_at: Time::opt(r.get(4)?),
            })
        },
    )
}

/// A unit and its last known position.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitRecord {
    pub id: i64,
    pub call_sign: String,
    pub kind: String,
    pub capabilities: Vec<String>,
    pub home_station: Option<String>,
    pub status: String,
    pub sms_number: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    /// The device's clock when it took the last fix.
    pub fix_time: Option<Time>,
    /// The server's clock when the last fix arrived.
    pub fix_received: Option<Time>,
    pub link_lost_at: Option<Time>,
    pub created_at: Time,
}

pub fn write_units(db: &Connection, out: &mut dyn Write) -> anyhow::Result<u64> {
    write_rows(
        db,
        "SELECT id, call_sign, kind, capabilities, home_station, status, sms_number, lat, lon,
                accuracy_m, fix_time, fix_received, link_lost_at, created_at
         FROM units ORDER BY id",
        [],
        out,
        |r| {
            Ok(UnitRecord {
                id: r.get(0)?,
                call_sign: r.get(1)?,
                kind: r.get(2)?,
                capabilities: json_list(&r.get::<_, String>(3)?),
                home_station: r.get(4)?,
                status: r.get(5)?,
                sms_number: r.get(6)?,
                lat: r.get(7)?,
                lon: r.get(8)?,
                accuracy_m: r.get(9)?,
                fix_time: Time::opt(r.get(10)?),
                fix_received: Time::opt(r.get(11)?),
                link_lost_at: Time::opt(r.get(12)?),
                created_at: Time(r.get(13)?),
            })
        },
    )
}

/// An enrolled tablet, without its token: after an import every tablet enrols again.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    pub id: i64,
    pub unit_id: i64,
    pub name: Option<String>,
    pub enrolled_at: Time,
    pub revoked_at: Option<Time>,
    pub last_seen: Option<Time>,
}

pub fn write_devices(db: &Connection, out: &mut dyn Write) -> anyhow::Result<u64> {
    write_rows(
        db,
        "SELECT id, unit_id, name, enrolled_at, revoked_at, last_seen FROM devices ORDER BY id",
        [],
        out,
        |r| {
            Ok(DeviceRecord {
                id: r.get(0)?,
                unit_id: r.get(1)?,
                name: r.get(2)?,
                enrolled_at: Time(r.get(3)?),
                revoked_at: Time::opt(r.get(4)?),
                last_seen: Time::opt(r.get(5)?),
            })
        },
    )
}

/// A text message between the control room and a unit.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRecord {
    pub id: i64,
    pub unit_id: i64,
    pub incident_id: Option<i64>,
    /// `to_unit` or `from_unit`.
    pub direction: String,
    pub author: String,
    pub body: String,
    pub created_at: Time,
    pub read_at: Option<Time>,
    pub read_by: Option<i64>,
}

pub fn write_texts(db: &Connection, window: Window, out: &mut dyn Write) -> anyhow::Result<u64> {
    write_rows(
        db,
        "SELECT id, unit_id, incident_id, direction, author, body, created_at, read_at, read_by
         FROM texts WHERE created_at >= ?1 AND created_at <= ?2 ORDER BY id",
        params![window.start_ms(), window.end_ms()],
        out,
        |r| {
            Ok(TextRecord {
                id: r.get(0)?,
                unit_id: r.get(1)?,
                incident_id: r.get(2)?,
                direction: r.get(3)?,
                author: r.get(4)?,
                body: r.get(5)?,
                created_at: Time(r.get(6)?),
                read_at: Time::opt(r.get(7)?),
                read_by: r.get(8)?,
            })
        },
    )
}

/// One event of the timeline and audit log, with its link in the hash chain. `detail` is the
/// stored JSON object byte for byte, so the hashes can be checked against the export.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    pub id: i64,
    pub at: Time,
    pub kind: String,
    /// `operator:<name>`, `device:<id>` or `system`.
    pub actor: String,
    pub incident_id: Option<i64>,
    pub unit_id: Option<i64>,
    pub order_id: Option<i64>,
    pub detail: Box<RawValue>,
    /// The server's clock when a device's event arrived (`at` is the device's clock).
    pub received_at: Option<Time>,
    /// The address the request came from.
    pub source: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

pub fn write_events(db: &Connection, window: Window, out: &mut dyn Write) -> anyhow::Result<u64> {
    write_rows(
        db,
        "SELECT id, at, kind, actor, incident_id, unit_id, order_id, detail, received_at, source,
                prev_hash, hash
         FROM events WHERE at >= ?1 AND at <= ?2 ORDER BY id",
        params![window.start_ms(), window.end_ms()],
        out,
        |r| {
            Ok(EventRecord {
                id: r.get(0)?,
                at: Time(r.get(1)?),
                kind: r.get(2)?,
                actor: r.get(3)?,
                incident_id: r.get(4)?,
                unit_id: r.get(5)?,
                order_id: r.get(6)?,
                detail: RawValue::from_string(r.get(7)?).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        7,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?,
                received_at: Time::opt(r.get(8)?),
                source: r.get(9)?,
                prev_hash: r.get(10)?,
                hash: r.get(11)?,
            })
        },
    )
}

/// A stored JSON array of strings (capabilities).
pub fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Inserts the records of the JSON Lines files into an empty database, keeping their ids.
pub mod insert {
    use rusqlite::{params, Transaction};

    use super::{DeviceRecord, EventRecord, TextRecord, UnitRecord, UserRecord};
    use crate::auth::{hash_password, random_hex};

    /// An account comes in with a random password nobody knows (an admin sets one with
    /// `dispatchd user reset-password`) and no second factor.
    pub fn user(tx: &Transaction<'_>, u: UserRecord) -> anyhow::Result<()> {
        crate::domain::Role::parse(&u.role)?;
        tx.execute(
            "INSERT INTO operators (id, username, password_hash, role, created_at, disabled_at,
                                    must_change_password)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![
                u.id,
                u.username,
                hash_password(&random_hex(16))?,
                u.role,
                u.created_at.0,
                u.disabled_at.map(|t| t.0)
            ],
        )?;
        Ok(())
    }

    pub fn unit(tx: &Transaction<'_>, u: UnitRecord) -> anyhow::Result<()> {
        tx.execute(
            "INSERT INTO units (id, call_sign, kind, capabilities, home_station, status,
                                sms_number, lat, lon, accuracy_m, fix_time, fix_received,
                                link_lost_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                u.id,
                u.call_sign,
                u.kind,
                serde_json::to_string(&u.capabilities)?,
                u.home_station,
                u.status,
                u.sms_number,
                u.lat,
                u.lon,
                u.accuracy_m,
                u.fix_time.map(|t| t.0),
                u.fix_received.map(|t| t.0),
                u.link_lost_at.map(|t| t.0),
                u.created_at.0
            ],
        )?;
        Ok(())
    }

    /// A device comes in with a token nobody holds and a new epoch: its tablet cannot connect
    /// and enrols again (which revokes this record).
    pub fn device(tx: &Transaction<'_>, d: DeviceRecord) -> anyhow::Result<()> {
        tx.execute(
            "INSERT INTO devices (id, unit_id, name, token_hash, epoch, enrolled_at, revoked_at,
                                  last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                d.id,
                d.unit_id,
                d.name,
                format!("imported:{}", random_hex(16)),
                random_hex(8),
                d.enrolled_at.0,
                d.revoked_at.map(|t| t.0),
                d.last_seen.map(|t| t.0)
            ],
        )?;
        Ok(())
    }

    pub fn text(tx: &Transaction<'_>, t: TextRecord) -> anyhow::Result<()> {
        tx.execute(
            "INSERT INTO texts (id, unit_id, incident_id, direction, author, body, created_at,
                                read_at, read_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                t.id,
                t.unit_id,
                t.incident_id,
                t.direction,
                t.author,
                t.body,
                t.created_at.0,
                t.read_at.map(|t| t.0),
                t.read_by
            ],
        )?;
        Ok(())
    }

    /// An event with its stored hashes: the imported chain verifies as it did at the source.
    pub fn event(tx: &Transaction<'_>, e: EventRecord) -> anyhow::Result<()> {
        tx.execute(
            "INSERT INTO events (id, at, kind, actor, incident_id, unit_id, order_id, detail,
                                 received_at, source, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                e.id,
                e.at.0,
                e.kind,
                e.actor,
                e.incident_id,
                e.unit_id,
                e.order_id,
                e.detail.get(),
                e.received_at.map(|t| t.0),
                e.source,
                e.prev_hash,
                e.hash
            ],
        )?;
        Ok(())
    }
}
