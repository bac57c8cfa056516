//! Units, their last position and sampled trail.

use dispatch_protocol::Location;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{append_event, commit, json_list, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, NewUnit, Position, Unit, UnitStatus};

pub(super) const UNIT_COLUMNS: &str =
    "u.id, u.call_sign, u.kind, u.capabilities, u.home_station, u.status,
    u.lat, u.lon, u.accuracy_m, u.fix_time, u.fix_received,
    (SELECT d.id FROM devices d WHERE d.unit_id = u.id AND d.revoked_at IS NULL) AS device_id";

pub(super) fn unit_from_row(r: &SqliteRow) -> Unit {
    let position = match (
        r.get::<Option<f64>, _>("lat"),
        r.get::<Option<f64>, _>("lon"),
    ) {
        (Some(lat), Some(lon)) => Some(Position {
            lat,
            lon,
            accuracy_m: r.get("accuracy_m"),
            fix_time_ms: r.get::<Option<i64>, _>("fix_time").unwrap_or_default(),
            received_ms: r.get::<Option<i64>, _>("fix_received").unwrap_or_default(),
        }),
        _ => None,
    };
    Unit {
        id: r.get("id"),
        call_sign: r.get("call_sign"),
        kind: r.get("kind"),
        capabilities: json_list(r, "capabilities"),
        home_station: r.get("home_station"),
        status: UnitStatus::parse(r.get::<&str, _>("status")).unwrap_or(UnitStatus::OutOfService),
        device_id: r.get("device_id"),
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
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE units SET lat = $1, lon = $2, accuracy_m = $3, fix_time = $4,
                             fix_received = $5
                         WHERE id = $6",
                    )
                    .bind(loc.lat)
                    .bind(loc.lon)
                    .bind(loc.accuracy_m)
                    .bind(loc.fix_time_ms)
                    .bind(received)
                    .bind(unit_id)
                    .execute(&mut *conn)
                    .await?;
                    if sample_trail {
                        sqlx::query(
                            "INSERT INTO unit_positions (unit_id, at, lat, lon, accuracy_m)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(unit_id)
                        .bind(received)
                        .bind(loc.lat)
                        .bind(loc.lon)
                        .bind(loc.accuracy_m)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }
}
