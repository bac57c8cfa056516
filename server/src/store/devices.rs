//! Device enrolment and credentials, and the per-device outbox the channel drains.

use super::sql::{params, Sql};

use super::{append_event, Change, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, OrderState, OrderTransition};

/// A device credential freshly issued by enrolment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    pub epoch: String,
}

/// What the channel needs to authenticate a device and resume it.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    pub device_id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    pub token_hash: String,
    pub epoch: String,
    pub revoked: bool,
    pub last_seq: u64,
}

/// One outbox entry not yet acknowledged by the device.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub seq: u64,
    pub message_id: String,
    pub queued_at: Millis,
    pub body: String,
}

/// What a receipt changed.
#[derive(Debug, Clone, Default)]
pub struct ReceiptOutcome {
    /// Orders that moved from queued to delivered.
    pub delivered_orders: Vec<i64>,
}

impl Store {
    /// Stores a one-time enrolment code (its hash) for a unit. A repeated `idempotency_key`
    /// withdraws the unused code the first request issued, so that of a request and its retries
    /// only the code answered last can enrol a device.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit; [`Error::Conflict`] `idempotency_key_reused`
    /// when the key was used for another unit.
    pub async fn create_enrolment_code(
        &self,
        unit_id: i64,
        code_hash: &str,
        expires_at: Millis,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<()> {
        let (code_hash, actor) = (code_hash.to_owned(), actor.clone());
        let key = idempotency_key.map(str::to_owned);
        self.writer
            .write(move |tx| {
                super::units::refuse_disabled(&super::units::read_unit(tx, unit_id)?)?;
                let taken = tx.select_opt(
                    "SELECT unit_id FROM enrolment_codes WHERE code_hash = ?1",
                    params![&code_hash],
                )?;
                if taken.is_some() {
                    return Err(Error::conflict(
                        "duplicate",
                        "enrolment code collision, try again",
                    ));
                }
                if let Some(key) = &key {
                    let other_unit = tx.select_opt(
                        "SELECT unit_id FROM enrolment_codes
                         WHERE idempotency_key = ?1 AND unit_id != ?2",
                        params![key, unit_id],
                    )?;
                    if other_unit.is_some() {
                        return Err(Error::conflict(
                            "idempotency_key_reused",
                            format!("idempotency key {key:?} was used for another unit"),
                        ));
                    }
                }
                let now = now_ms();
                let withdrawn = match &key {
                    Some(key) => tx.run(
                        "UPDATE enrolment_codes SET expires_at = ?1
                         WHERE idempotency_key = ?2 AND used_at IS NULL AND expires_at > ?1",
                        params![now, key],
                    )?,
                    None => 0,
                };
                tx.run(
                    "INSERT INTO enrolment_codes (code_hash, unit_id, created_by, created_at,
                                                  expires_at, idempotency_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        &code_hash,
                        unit_id,
                        actor.operator_id(),
                        now,
                        expires_at,
                        key.as_ref()
                    ],
                )?;
                append_event(
                    tx,
                    now,
                    "enrolment_code_issued",
                    &actor,
                    EventRefs {
                        unit: Some(unit_id),
                        ..Default::default()
                    },
                    &serde_json::json!({ "expires_at_ms": expires_at, "withdrawn_codes": withdrawn }),
                )
            })
            .await
    }

    /// Redeems an enrolment code: marks it used, revokes the unit's previous device (whose
    /// connection is closed once this commits) and creates the new one, in one transaction.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the code is unknown, used or expired (not told apart).
    pub async fn enroll_device(
        &self,
        code_hash: &str,
        token_hash: &str,
        device_epoch: &str,
        name: Option<&str>,
    ) -> Result<Enrolled> {
        let (code_hash, token_hash) = (code_hash.to_owned(), token_hash.to_owned());
        let (epoch, name) = (device_epoch.to_owned(), name.map(str::to_owned));
        self.writer
            .write(move |tx| {
                let now = now_ms();
                let unit_id: i64 = tx
                    .select_opt(
                        "SELECT unit_id FROM enrolment_codes
                         WHERE code_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                        params![&code_hash, now],
                    )?
                    .ok_or_else(|| Error::NotFound("enrolment code".into()))?
                    .get(0)?;
                tx.run(
                    "UPDATE enrolment_codes SET used_at = ?1 WHERE code_hash = ?2",
                    params![now, &code_hash],
                )?;
                let replaced_device: Option<i64> = tx
                    .select_opt(
                        "UPDATE devices SET revoked_at = ?1
                         WHERE unit_id = ?2 AND revoked_at IS NULL RETURNING id",
                        params![now, unit_id],
                    )?
                    .map(|r| r.get(0))
                    .transpose()?;
                let device_id = tx.insert(
                    "INSERT INTO devices (unit_id, name, token_hash, epoch, enrolled_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![unit_id, name.as_ref(), &token_hash, &epoch, now],
                )?;
                let unit = super::units::read_unit(tx, unit_id)?;
                append_event(
                    tx,
                    now,
                    "device_enrolled",
                    &Actor::Device { id: device_id },
                    EventRefs { unit: Some(unit_id), ..Default::default() },
                    &serde_json::json!({ "device_id": device_id, "name": name, "replaced_device": replaced_device }),
                )?;
                super::orders::transfer_active_orders(
                    tx,
                    unit_id,
                    replaced_device,
                    device_id,
                    now,
                )?;
                if let Some(old) = replaced_device {
                    tx.emit(Change::DeviceClosed {
                        device_id: old,
                        code: dispatch_protocol::close::REVOKED,
                        reason: "replaced by a newer enrolment of this unit",
                    });
                }
                let call_sign = unit.call_sign.clone();
                tx.emit(Change::Unit(unit));
                Ok(Enrolled {
                    device_id,
                    unit_id,
                    call_sign,
                    epoch,
                })
            })
            .await
    }

    /// # Errors
    /// On a database error.
    pub async fn device_auth(&self, device_id: i64) -> Result<Option<DeviceAuth>> {
        let row = self.reader.select_opt("SELECT d.id, d.unit_id, u.call_sign, d.token_hash, d.epoch, d.revoked_at, d.last_seq
             FROM devices d JOIN units u ON u.id = d.unit_id WHERE d.id = $1", params![device_id])
        .await?;
        Ok(row.map(|r| DeviceAuth {
            device_id: r.col("id"),
            unit_id: r.col("unit_id"),
            call_sign: r.col("call_sign"),
            token_hash: r.col("token_hash"),
            epoch: r.col("epoch"),
            revoked: r.col::<Option<i64>>("revoked_at").is_some(),
            last_seq: u64::try_from(r.col::<i64>("last_seq")).unwrap_or_default(),
        }))
    }

    /// Outbox entries of a device with `seq > after`, in order, at most `limit`.
    ///
    /// # Errors
    /// On a database error.
    pub async fn pending_deliveries(
        &self,
        device_id: i64,
        after: u64,
        limit: u32,
    ) -> Result<Vec<PendingDelivery>> {
        let rows = self
            .reader
            .select(
                "SELECT seq, message_id, queued_at, body FROM deliveries
             WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                params![device_id, i64::try_from(after).unwrap_or(i64::MAX), limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingDelivery {
                seq: u64::try_from(r.col::<i64>("seq")).unwrap_or_default(),
                message_id: r.col("message_id"),
                queued_at: r.col("queued_at"),
                body: r.col("body"),
            })
            .collect())
    }

    /// Records a cumulative receipt: every entry with `seq <= upto` is on the device's disk.
    /// Returns the orders this receipt delivered.
    ///
    /// # Errors
    /// On a storage failure (nothing is recorded; the device acknowledges again).
    pub async fn record_receipt(&self, device_id: i64, upto: u64) -> Result<Vec<i64>> {
        let outcome = self
            .writer
            .write(move |tx| write_receipt(tx, device_id, upto))
            .await?;
        Ok(outcome.delivered_orders)
    }
}

/// The work of [`Store::record_receipt`] inside its batch, on either database.
///
/// # Errors
/// A statement's error.
pub fn write_receipt(tx: &mut dyn Sql, device_id: i64, upto: u64) -> Result<ReceiptOutcome> {
    let now = now_ms();
    let upto = i64::try_from(upto).unwrap_or(i64::MAX);
    // Read, then stamp: cheaper than `UPDATE … RETURNING`, whose rows SQLite buffers in a
    // temporary b-tree.
    let mut order_ids = tx
        .select(
            "SELECT seq, order_id FROM deliveries
             WHERE device_id = ?1 AND seq <= ?2 AND delivered_at IS NULL AND order_id IS NOT NULL",
            params![device_id, upto],
        )?
        .iter()
        .map(|r| Ok((r.get::<i64>(0)?, r.get::<i64>(1)?)))
        .collect::<Result<Vec<_>>>()?;
    tx.run(
        "UPDATE deliveries SET delivered_at = ?1
         WHERE device_id = ?2 AND seq <= ?3 AND delivered_at IS NULL",
        params![now, device_id, upto],
    )?;
    tx.run(
        "UPDATE devices SET ack_floor = CASE WHEN ack_floor > ?1 THEN ack_floor ELSE ?1 END,
             last_seen = ?2
         WHERE id = ?3",
        params![upto, now, device_id],
    )?;
    let mut outcome = ReceiptOutcome::default();
    order_ids.sort_unstable();
    for (seq, order_id) in order_ids {
        if super::orders::transition_order(
            tx,
            order_id,
            OrderTransition::Receipt,
            now,
            &Actor::Device { id: device_id },
            &serde_json::json!({ "seq": seq }),
        )? == Some(OrderState::Delivered)
        {
            outcome.delivered_orders.push(order_id);
        }
    }
    Ok(outcome)
}
