//! Units, their last position and sampled trail.

use super::sql::{json_ids, params, Statements};
use dispatch_protocol::Location;

use super::row::Columns;
use super::{append_event, created_earlier, Change, Error, EventRefs, Keyed, Result, Store};
use crate::domain::{now_ms, Actor, Millis, NewUnit, OrderState, Position, Unit, UnitStatus};

pub(super) const UNIT_COLUMNS: &str =
    "u.id, u.call_sign, u.kind, u.capabilities, u.home_station, u.status,
    u.lat, u.lon, u.accuracy_m, u.fix_time, u.fix_received, u.link_lost_at, u.disabled_at,
    (SELECT d.id FROM devices d WHERE d.unit_id = u.id AND d.revoked_at IS NULL) AS device_id";

/// A unit from a row holding [`UNIT_COLUMNS`], read by either driver.
pub(super) fn unit_from_row(r: &impl Columns) -> Unit {
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
    Unit {
        id: r.int("id").unwrap_or_default(),
        call_sign: r.text("call_sign").unwrap_or_default(),
        kind: r.text("kind").unwrap_or_default(),
        capabilities: r.list("capabilities"),
        home_station: r.text("home_station"),
        status: UnitStatus::parse(&r.text("status").unwrap_or_default())
            .unwrap_or(UnitStatus::OutOfService),
        device_id: r.int("device_id"),
        position,
        link_lost_at_ms: r.int("link_lost_at"),
        disabled_at_ms: r.int("disabled_at"),
    }
}

/// Fails with [`Error::NotFound`] unless unit `unit_id` exists.
pub(super) fn ensure_unit(db: &mut dyn Statements, unit_id: i64) -> Result<()> {
    db.select_opt("SELECT id FROM units WHERE id = ?1", params![unit_id])?
        .map(|_| ())
        .ok_or_else(|| Error::NotFound(format!("unit {unit_id}")))
}

/// The unit as it now is, inside the running write.
pub(super) fn read_unit(db: &mut dyn Statements, unit_id: i64) -> Result<Unit> {
    db.select_opt(
        &format!("SELECT {UNIT_COLUMNS} FROM units u WHERE u.id = ?1"),
        params![unit_id],
    )?
    .map(|r| unit_from_row(&r))
    .ok_or_else(|| Error::NotFound(format!("unit {unit_id}")))
}

/// Fails with a `unit_disabled` conflict when an administrator has taken the unit out of the
/// fleet: it is not dispatched or enrolled.
pub(super) fn refuse_disabled(unit: &Unit) -> Result<()> {
    match unit.disabled_at_ms {
        Some(_) => Err(Error::conflict(
            "unit_disabled",
            format!(
                "unit {} is disabled; an administrator must enable it first",
                unit.call_sign
            ),
        )),
        None => Ok(()),
    }
}

impl Store {
    /// Creates a unit. A repeated `idempotency_key` returns the unit the first request created.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the call sign is taken.
    pub async fn create_unit(
        &self,
        unit: &NewUnit,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<Unit> {
        let (unit, actor) = (unit.clone(), actor.clone());
        let key = idempotency_key.map(str::to_owned);
        let id = self
            .writer
            .write(move |tx| {
                if let Some(id) = created_earlier(tx, Keyed::Units, key.as_deref())? {
                    return Ok(id);
                }
                let call_sign = unit.call_sign.as_str();
                let taken = tx.select_opt(
                    "SELECT id FROM units WHERE call_sign = ?1",
                    params![call_sign],
                )?;
                if taken.is_some() {
                    return Err(Error::conflict(
                        "duplicate",
                        format!("a unit with call sign {call_sign:?} already exists"),
                    ));
                }
                let now = now_ms();
                let caps = serde_json::to_string(unit.capabilities.as_slice()).unwrap_or_default();
                let id = tx.insert(
                    "INSERT INTO units (call_sign, kind, capabilities, home_station, created_at,
                                        idempotency_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        call_sign,
                        &unit.kind,
                        &caps,
                        unit.home_station.as_ref(),
                        now,
                        key.as_ref()
                    ],
                )?;
                append_event(
                    tx,
                    now,
                    "unit_created",
                    &actor,
                    EventRefs {
                        unit: Some(id),
                        ..Default::default()
                    },
                    &serde_json::json!({ "call_sign": call_sign, "kind": unit.kind,
                                         "capabilities": unit.capabilities.as_slice() }),
                )?;
                let created = read_unit(tx, id)?;
                tx.emit(Change::Unit(created));
                Ok(id)
            })
            .await?;
        self.unit(id).await
    }

    /// Replaces a unit's call sign, kind, capabilities and home station, and records
    /// `unit_updated` with what it was and what it became.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; a `duplicate` conflict when another unit has the
    /// call sign.
    pub async fn update_unit(&self, id: i64, unit: &NewUnit, actor: &Actor) -> Result<Unit> {
        let (unit, actor) = (unit.clone(), actor.clone());
        self.writer
            .write(move |tx| {
                let before = read_unit(tx, id)?;
                let call_sign = unit.call_sign.as_str();
                let taken = tx.select_opt(
                    "SELECT id FROM units WHERE call_sign = ?1 AND id <> ?2",
                    params![call_sign, id],
                )?;
                if taken.is_some() {
                    return Err(Error::conflict(
                        "duplicate",
                        format!("a unit with call sign {call_sign:?} already exists"),
                    ));
                }
                let caps = serde_json::to_string(unit.capabilities.as_slice()).unwrap_or_default();
                tx.run(
                    "UPDATE units SET call_sign = ?1, kind = ?2, capabilities = ?3,
                                      home_station = ?4
                     WHERE id = ?5",
                    params![call_sign, &unit.kind, &caps, unit.home_station.as_ref(), id],
                )?;
                append_event(
                    tx,
                    now_ms(),
                    "unit_updated",
                    &actor,
                    EventRefs {
                        unit: Some(id),
                        ..Default::default()
                    },
                    &serde_json::json!({
                        "before": { "call_sign": before.call_sign, "kind": before.kind,
                                    "capabilities": before.capabilities,
                                    "home_station": before.home_station },
                        "after": { "call_sign": call_sign, "kind": unit.kind,
                                   "capabilities": unit.capabilities.as_slice(),
                                   "home_station": unit.home_station },
                    }),
                )?;
                let updated = read_unit(tx, id)?;
                tx.emit(Change::Unit(updated.clone()));
                Ok(updated)
            })
            .await
    }

    /// Takes a unit out of the fleet (`disabled`) or puts it back. Disabling revokes its device
    /// (whose connection is closed once this commits) and sets it out of service; it is refused
    /// while the unit holds an active order. Enabling leaves it out of service until a newly
    /// enrolled tablet reports it available. Records `unit_disabled` or `unit_enabled`; asking
    /// for what already holds changes nothing and records nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; an `orders_active` conflict naming the orders.
    pub async fn set_unit_disabled(&self, id: i64, disabled: bool, actor: &Actor) -> Result<Unit> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                let before = read_unit(tx, id)?;
                if before.disabled_at_ms.is_some() == disabled {
                    return Ok(before);
                }
                let now = now_ms();
                let mut revoked_device = None;
                if disabled {
                    let active = tx
                        .select(
                            &format!(
                                "SELECT id FROM orders WHERE unit_id = ?1 AND {} ORDER BY id",
                                OrderState::sql_in("state", &OrderState::ACTIVE)
                            ),
                            params![id],
                        )?
                        .iter()
                        .map(|r| r.get::<i64>(0))
                        .collect::<Result<Vec<_>>>()?;
                    if !active.is_empty() {
                        let orders: Vec<String> = active.iter().map(|o| format!("#{o}")).collect();
                        return Err(Error::conflict(
                            "orders_active",
                            format!(
                                "unit {} still holds active orders ({}); they must clear first",
                                before.call_sign,
                                orders.join(", ")
                            ),
                        ));
                    }
                    revoked_device = tx
                        .select_opt(
                            "UPDATE devices SET revoked_at = ?1
                             WHERE unit_id = ?2 AND revoked_at IS NULL RETURNING id",
                            params![now, id],
                        )?
                        .map(|r| r.get::<i64>(0))
                        .transpose()?;
                    tx.run(
                        "UPDATE units SET disabled_at = ?1, status = 'out_of_service' WHERE id = ?2",
                        params![now, id],
                    )?;
                    tx.run(
                        "UPDATE enrolment_codes SET expires_at = ?1
                         WHERE unit_id = ?2 AND used_at IS NULL AND expires_at > ?1",
                        params![now, id],
                    )?;
                } else {
                    tx.run(
                        "UPDATE units SET disabled_at = NULL WHERE id = ?1",
                        params![id],
                    )?;
                }
                append_event(
                    tx,
                    now,
                    if disabled { "unit_disabled" } else { "unit_enabled" },
                    &actor,
                    EventRefs {
                        unit: Some(id),
                        ..Default::default()
                    },
                    &if disabled {
                        serde_json::json!({ "call_sign": before.call_sign,
                                            "revoked_device": revoked_device })
                    } else {
                        serde_json::json!({ "call_sign": before.call_sign })
                    },
                )?;
                if let Some(device_id) = revoked_device {
                    tx.emit(Change::DeviceClosed {
                        device_id,
                        code: dispatch_protocol::close::REVOKED,
                        reason: "the unit was disabled by an administrator",
                    });
                }
                let after = read_unit(tx, id)?;
                tx.emit(Change::Unit(after.clone()));
                Ok(after)
            })
            .await
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn unit(&self, id: i64) -> Result<Unit> {
        let sql = format!("SELECT {UNIT_COLUMNS} FROM units u WHERE u.id = $1");
        self.reader
            .select_opt(&sql, params![id])
            .await?
            .map(|r| unit_from_row(&r))
            .ok_or_else(|| Error::NotFound(format!("unit {id}")))
    }

    /// The units with these ids (unknown ids are left out).
    ///
    /// # Errors
    /// On a database error.
    pub async fn units_by_id(&self, ids: &[i64]) -> Result<Vec<Unit>> {
        let sql = format!(
            "SELECT {UNIT_COLUMNS} FROM units u
             WHERE u.id IN {} ORDER BY u.id",
            self.reader.dialect().json_ids(1)
        );
        let rows = self.reader.select(&sql, params![&json_ids(ids)]).await?;
        Ok(rows.iter().map(unit_from_row).collect())
    }

    /// Every unit, by call sign.
    ///
    /// # Errors
    /// On a database error.
    pub async fn units(&self) -> Result<Vec<Unit>> {
        let sql = format!("SELECT {UNIT_COLUMNS} FROM units u ORDER BY u.call_sign");
        let rows = self.reader.select(&sql, &[]).await?;
        Ok(rows.iter().map(unit_from_row).collect())
    }

    /// Stores a unit's fix if it is the newest (by the device's `fix_time_ms`): an older fix,
    /// sent late, does not replace it. When `sample_trail`, a fix that is stored is also
    /// appended to the trail. Once committed, a stored fix is in the live index and the console
    /// feed. Returns whether the fix was stored.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_position(
        &self,
        unit_id: i64,
        loc: &Location,
        received: Millis,
        sample_trail: bool,
    ) -> Result<bool> {
        let loc = *loc;
        self.writer
            .write(move |tx| {
                // The unit's columns but its device (not needed to place it in the live index).
                let moved = tx
                    .select_opt(
                        "UPDATE units SET lat = ?1, lon = ?2, accuracy_m = ?3, fix_time = ?4,
                             fix_received = ?5
                         WHERE id = ?6 AND (fix_time IS NULL OR fix_time <= ?4)
                         RETURNING id, call_sign, kind, capabilities, home_station, status, lat,
                             lon, accuracy_m, fix_time, fix_received, NULL AS device_id",
                        params![
                            loc.lat,
                            loc.lon,
                            loc.accuracy_m,
                            loc.fix_time_ms,
                            received,
                            unit_id
                        ],
                    )?
                    .map(|r| unit_from_row(&r));
                let newest = moved.is_some();
                if newest && sample_trail {
                    tx.run(
                        "INSERT INTO unit_positions (unit_id, at, lat, lon, accuracy_m)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![unit_id, received, loc.lat, loc.lon, loc.accuracy_m],
                    )?;
                }
                if let Some(unit) = moved {
                    tx.emit(Change::Moved(Box::new(unit)));
                }
                Ok(newest)
            })
            .await
    }
}
