//! Units, their last position and sampled trail.

use dispatch_protocol::Location;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{append_event, commit, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, NewUnit, Position, Unit, UnitStatus};

pub(super) const UNIT_COLUMNS: &str =
    "u.id, u.call_sign, u.kind, u.capabilities, u.home_station, u.status,
    u.lat, u.lon, u.accuracy_m, u.fix_time, u.fix_received,
    (SELECT d.id FROM devices d WHERE d.unit_id = u.id AND d.revoked_at IS NULL) AS device_id";

/// A row holding [`UNIT_COLUMNS`], from either driver: the reads, and the group-committed
/// writes that return a unit.
pub(super) trait UnitRow {
    fn text(&self, column: &str) -> Option<String>;
    fn int(&self, column: &str) -> Option<i64>;
    fn real(&self, column: &str) -> Option<f64>;
}

impl UnitRow for SqliteRow {
    fn text(&self, column: &str) -> Option<String> {
        self.get(column)
    }
    fn int(&self, column: &str) -> Option<i64> {
        self.get(column)
    }
    fn real(&self, column: &str) -> Option<f64> {
        self.get(column)
    }
}

impl UnitRow for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Option<String> {
        self.get(column).ok().flatten()
    }
    fn int(&self, column: &str) -> Option<i64> {
        self.get(column).ok().flatten()
    }
    fn real(&self, column: &str) -> Option<f64> {
        self.get(column).ok().flatten()
    }
}

pub(super) fn unit_from_row(r: &impl UnitRow) -> Unit {
    let position = match (r.real("lat"), r.real("lon")) {
        (Some(lat), Some(lon)) => Some(Position {
            lat,
            lon,
            accuracy_m: r.real("accuracy_m"),
            fix_time_ms: r.int("fix_time").unwrap_or_default(),
            received_ms: r.int("fix_received").unwrap_or_default(),
        }),
        _ => None,
    };
    let capabilities = r.text("capabilities").unwrap_or_default();
    Unit {
        id: r.int("id").unwrap_or_default(),
        call_sign: r.text("call_sign").unwrap_or_default(),
        kind: r.text("kind").unwrap_or_default(),
        capabilities: serde_json::from_str(&capabilities).unwrap_or_default(),
        home_station: r.text("home_station"),
        status: UnitStatus::parse(&r.text("status").unwrap_or_default())
            .unwrap_or(UnitStatus::OutOfService),
        device_id: r.int("device_id"),
        position,
    }
}

impl Store {
    /// # Errors
    /// [`Error::Conflict`] when the call sign is taken.
    pub async fn create_unit(&self, unit: &NewUnit, actor: &Actor) -> Result<Unit> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let caps = serde_json::to_string(unit.capabilities.as_slice()).unwrap_or_default();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO units (call_sign, kind, capabilities, home_station, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(unit.call_sign.as_str())
        .bind(&unit.kind)
        .bind(&caps)
        .bind(&unit.home_station)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            Error::classify(e, || {
                format!(
                    "a unit with call sign {:?} already exists",
                    unit.call_sign.as_str()
                )
            })
        })?;
        append_event(
            &mut tx,
            now,
            "unit_created",
            actor,
            EventRefs {
                unit: Some(id),
                ..Default::default()
            },
            serde_json::json!({ "call_sign": unit.call_sign.as_str(), "kind": unit.kind,
                                "capabilities": unit.capabilities.as_slice() }),
        )
        .await?;
        commit(tx).await?;
        self.unit(id).await
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn unit(&self, id: i64) -> Result<Unit> {
        let sql = format!("SELECT {UNIT_COLUMNS} FROM units u WHERE u.id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| unit_from_row(&r))
            .ok_or_else(|| Error::NotFound(format!("unit {id}")))
    }

    /// Every unit, by call sign.
    ///
    /// # Errors
    /// On a database error.
    pub async fn units(&self) -> Result<Vec<Unit>> {
        let sql = format!("SELECT {UNIT_COLUMNS} FROM units u ORDER BY u.call_sign");
        let rows = sqlx::query(&sql).fetch_all(&self.reader).await?;
        Ok(rows.iter().map(unit_from_row).collect())
    }

    /// Stores a unit's newest fix; when `sample_trail` also appends it to the trail.
    ///
    /// # Errors
    /// On a database error.
    pub async fn record_position(
        &self,
        unit_id: i64,
        loc: &Location,
        received: Millis,
        sample_trail: bool,
    ) -> Result<()> {
        let loc = *loc;
        self.batch
            .write(move |db| {
                db.prepare_cached(
                    "UPDATE units SET lat = ?1, lon = ?2, accuracy_m = ?3, fix_time = ?4,
                         fix_received = ?5
                     WHERE id = ?6",
                )?
                .execute(rusqlite::params![
                    loc.lat,
                    loc.lon,
                    loc.accuracy_m,
                    loc.fix_time_ms,
                    received,
                    unit_id
                ])?;
                if sample_trail {
                    db.prepare_cached(
                        "INSERT INTO unit_positions (unit_id, at, lat, lon, accuracy_m)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![
                        unit_id,
                        received,
                        loc.lat,
                        loc.lon,
                        loc.accuracy_m
                    ])?;
                }
                Ok(())
            })
            .await
    }
}
