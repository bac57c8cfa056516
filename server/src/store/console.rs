//! Reads behind the operators' console: the event cursor for the live channel,
//! per-incident response milestones for statistics and export, and the admin lists of operators
//! and devices (with device revocation).

use super::sql::{params, Dialect};

use super::row::Columns;
use super::{append_event, Change, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor};

/// A unit's position as the live channel pushes it (and as the nodes of a cluster tell each
/// other).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PositionChange {
    pub unit_id: i64,
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: Option<f64>,
    pub received_ms: i64,
}

impl PositionChange {
    /// The unit's newest fix; `None` when it has none.
    pub fn of(unit: &crate::domain::Unit) -> Option<Self> {
        let fix = unit.position.as_ref()?;
        Some(Self {
            unit_id: unit.id,
            lat: fix.lat,
            lon: fix.lon,
            accuracy_m: fix.accuracy_m,
            received_ms: fix.received_ms,
        })
    }
}

/// The response milestones of every incident, in the columns of [`ResponseMilestones`] (`units`
/// is a JSON array, of the call signs in order); the caller adds the `WHERE` and `ORDER BY`.
/// Also read by the export.
pub fn response_milestones(dialect: Dialect) -> String {
    let units = match dialect {
        Dialect::Sqlite => "json_group_array(call_sign)",
        Dialect::Postgres => "CAST(json_agg(call_sign ORDER BY call_sign) AS TEXT)",
    };
    format!(
        "SELECT i.id, i.kind, i.priority, i.status, i.address,
        i.lat, i.lon, i.caller, i.callback, i.notes, i.disposition, i.created_at, i.closed_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind = 'order_queued') AS dispatched_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind = 'order_delivered') AS delivered_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind IN ('order_acknowledged', 'order_accepted')) AS acknowledged_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind = 'order_accepted') AS accepted_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind = 'unit_en_route') AS en_route_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind = 'unit_on_scene') AS arrived_at,
        (SELECT MIN(at) FROM events e WHERE e.incident_id = i.id
            AND e.kind = 'unit_cleared') AS cleared_at,
        (SELECT {units} FROM (
            SELECT DISTINCT u.call_sign FROM orders o JOIN units u ON u.id = o.unit_id
            WHERE o.incident_id = i.id ORDER BY u.call_sign) AS sent) AS units
    FROM incidents i"
    )
}

/// When the steps of one incident's response happened (server clock, ms), with the call's
/// caller, callback number and notes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ResponseMilestones {
    pub incident_id: i64,
    pub kind: String,
    pub priority: u8,
    pub status: String,
    pub address: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub caller: Option<String>,
    pub callback: Option<String>,
    pub notes: Option<String>,
    pub disposition: Option<String>,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
    /// First order queued.
    pub dispatched_at_ms: Option<i64>,
    /// First order delivered to its tablet.
    pub delivered_at_ms: Option<i64>,
    /// First order acknowledged (or accepted, which implies it).
    pub acknowledged_at_ms: Option<i64>,
    /// First order accepted.
    pub accepted_at_ms: Option<i64>,
    /// First unit reported en route.
    pub en_route_at_ms: Option<i64>,
    /// First unit reported on scene.
    pub arrived_at_ms: Option<i64>,
    /// First unit reported it had cleared the scene.
    pub cleared_at_ms: Option<i64>,
    /// Call signs of every unit ordered to it.
    pub units: Vec<String>,
}

impl ResponseMilestones {
    /// The milestones from a row of [`response_milestones`], read by either driver.
    pub fn from_row(r: &impl Columns) -> Self {
        Self {
            incident_id: r.int("id").unwrap_or_default(),
            kind: r.text("kind").unwrap_or_default(),
            priority: u8::try_from(r.int("priority").unwrap_or_default()).unwrap_or(u8::MAX),
            status: r.text("status").unwrap_or_default(),
            address: r.text("address"),
            lat: r.real("lat").unwrap_or_default(),
            lon: r.real("lon").unwrap_or_default(),
            caller: r.text("caller"),
            callback: r.text("callback"),
            notes: r.text("notes"),
            disposition: r.text("disposition"),
            created_at_ms: r.int("created_at").unwrap_or_default(),
            closed_at_ms: r.int("closed_at"),
            dispatched_at_ms: r.int("dispatched_at"),
            delivered_at_ms: r.int("delivered_at"),
            acknowledged_at_ms: r.int("acknowledged_at"),
            accepted_at_ms: r.int("accepted_at"),
            en_route_at_ms: r.int("en_route_at"),
            arrived_at_ms: r.int("arrived_at"),
            cleared_at_ms: r.int("cleared_at"),
            units: r.list("units"),
        }
    }
}

/// An operator account as admins see it (never the password hash).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OperatorAccount {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub created_at_ms: i64,
    pub disabled_at_ms: Option<i64>,
    /// Locked after wrong passwords until this time (absent when not locked; a lock only an
    /// admin lifts is reported as `locked_until_ms` 9223372036854775807).
    pub locked_until_ms: Option<i64>,
    pub must_change_password: bool,
    /// The account has a confirmed second factor.
    pub second_factor: bool,
    /// Open sessions.
    pub sessions: i64,
}

/// An enrolled tablet as admins see it (never the token hash).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeviceRecord {
    pub id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    pub name: Option<String>,
    pub enrolled_at_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl Store {
    /// The newest event id (0 when there is none): where a live feed starts.
    ///
    /// # Errors
    /// On a database error.
    pub async fn last_event_id(&self) -> Result<i64> {
        Ok(self
            .reader
            .value("SELECT COALESCE(MAX(id), 0) FROM events", &[])
            .await?
            .unwrap_or(0))
    }

    /// Response milestones of incidents created in `[since_ms, until_ms]`, newest first, at
    /// most `limit`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn response_milestones(
        &self,
        since_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> Result<Vec<ResponseMilestones>> {
        let sql = format!(
            "{} WHERE i.created_at >= $1 AND i.created_at <= $2
             ORDER BY i.created_at DESC, i.id DESC LIMIT $3",
            response_milestones(self.reader.dialect())
        );
        let rows = self
            .reader
            .select(&sql, params![since_ms, until_ms, limit])
            .await?;
        Ok(rows.iter().map(ResponseMilestones::from_row).collect())
    }

    /// Every operator account, by name.
    ///
    /// # Errors
    /// On a database error.
    pub async fn operator_accounts(&self) -> Result<Vec<OperatorAccount>> {
        let rows = self.reader.select("SELECT o.id, o.username, o.role, o.created_at, o.disabled_at, o.must_change_password,
                    o.totp_enabled_at IS NOT NULL AS second_factor,
                    CASE WHEN o.locked_until > $1 THEN o.locked_until END AS locked_until,
                    (SELECT count(*) FROM operator_sessions s
                     WHERE s.operator_id = o.id AND s.expires_at > $1) AS sessions
             FROM operators o ORDER BY o.username", params![now_ms()])
        .await?;
        Ok(rows
            .iter()
            .map(|r| OperatorAccount {
                id: r.col("id"),
                username: r.col("username"),
                role: r.col("role"),
                created_at_ms: r.col("created_at"),
                disabled_at_ms: r.col("disabled_at"),
                locked_until_ms: r.col("locked_until"),
                must_change_password: r.col::<i64>("must_change_password") != 0,
                second_factor: r.col::<i64>("second_factor") != 0,
                sessions: r.col("sessions"),
            })
            .collect())
    }

    /// Every enrolled device, newest first, revoked ones included.
    ///
    /// # Errors
    /// On a database error.
    pub async fn device_records(&self) -> Result<Vec<DeviceRecord>> {
        let rows = self.reader.select("SELECT d.id, d.unit_id, u.call_sign, d.name, d.enrolled_at, d.last_seen, d.revoked_at
             FROM devices d JOIN units u ON u.id = d.unit_id ORDER BY d.id DESC", &[])
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeviceRecord {
                id: r.col("id"),
                unit_id: r.col("unit_id"),
                call_sign: r.col("call_sign"),
                name: r.col("name"),
                enrolled_at_ms: r.col("enrolled_at"),
                last_seen_ms: r.col("last_seen"),
                revoked_at_ms: r.col("revoked_at"),
            })
            .collect())
    }

    /// Revokes a device's credential and records who did it; its connection is closed once
    /// this commits. Revoking twice is a conflict.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown device, [`Error::Conflict`] when already revoked.
    pub async fn revoke_device(&self, device_id: i64, actor: &Actor) -> Result<DeviceRecord> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                let row = tx
                    .select_opt(
                        "SELECT unit_id, revoked_at FROM devices WHERE id = ?1",
                        params![device_id],
                    )?
                    .map(|r| -> Result<(i64, Option<i64>)> { Ok((r.get(0)?, r.get(1)?)) })
                    .transpose()?;
                let Some((unit_id, revoked_at)) = row else {
                    return Err(Error::NotFound(format!("device {device_id}")));
                };
                if revoked_at.is_some() {
                    return Err(Error::conflict(
                        "already_revoked",
                        format!("device {device_id} is already revoked"),
                    ));
                }
                let now = now_ms();
                tx.run(
                    "UPDATE devices SET revoked_at = ?1 WHERE id = ?2",
                    params![now, device_id],
                )?;
                append_event(
                    tx,
                    now,
                    "device_revoked",
                    &actor,
                    EventRefs {
                        unit: Some(unit_id),
                        ..EventRefs::default()
                    },
                    &serde_json::json!({ "device_id": device_id }),
                )?;
                let unit = super::units::read_unit(tx, unit_id)?;
                tx.emit(Change::DeviceClosed {
                    device_id,
                    code: dispatch_protocol::close::REVOKED,
                    reason: "revoked by an administrator",
                });
                tx.emit(Change::Unit(unit));
                Ok(())
            })
            .await?;
        self.device_records()
            .await?
            .into_iter()
            .find(|d| d.id == device_id)
            .ok_or_else(|| Error::NotFound(format!("device {device_id}")))
    }
}
