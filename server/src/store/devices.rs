//! Device enrolment and credentials, and the per-device outbox the channel drains.

use sqlx::Row;

use super::{append_event, commit, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor, Millis, OrderState, OrderTransition};

/// A device credential freshly issued by enrolment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    pub epoch: String,
    /// The device this enrolment replaced, now revoked.
    pub replaced_device: Option<i64>,
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
    /// Stores a one-time enrolment code (its hash) for a unit.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown unit.
    pub async fn create_enrolment_code(
        &self,
        unit_id: i64,
        code_hash: &str,
        expires_at: Millis,
        actor: &Actor,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM units WHERE id = $1")
            .bind(unit_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("unit {unit_id}")));
        }
        sqlx::query(
            "INSERT INTO enrolment_codes (code_hash, unit_id, created_by, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(code_hash)
        .bind(unit_id)
        .bind(actor.operator_id())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::classify(e, || "enrolment code collision, try again".into()))?;
        append_event(
            &mut tx,
            now,
            "enrolment_code_issued",
            actor,
            EventRefs {
                unit: Some(unit_id),
                ..Default::default()
            },
            serde_json::json!({ "expires_at_ms": expires_at }),
        )
        .await?;
        commit(tx).await
    }

    /// Redeems an enrolment code: marks it used, revokes the unit's previous device and creates
    /// the new one, all in one transaction.
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
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let unit_id: Option<i64> = sqlx::query_scalar(
            "UPDATE enrolment_codes SET used_at = $1
             WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING unit_id",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let unit_id = unit_id.ok_or_else(|| Error::NotFound("enrolment code".into()))?;
        let replaced_device: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET revoked_at = $1 WHERE unit_id = $2 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(unit_id)
        .fetch_optional(&mut *tx)
        .await?;
        let device_id: i64 = sqlx::query_scalar(
            "INSERT INTO devices (unit_id, name, token_hash, epoch, enrolled_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(unit_id)
        .bind(name)
        .bind(token_hash)
        .bind(device_epoch)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let call_sign: String = sqlx::query_scalar("SELECT call_sign FROM units WHERE id = $1")
            .bind(unit_id)
            .fetch_one(&mut *tx)
            .await?;
        append_event(
            &mut tx,
            now,
            "device_enrolled",
            &Actor::Device { id: device_id },
            EventRefs { unit: Some(unit_id), ..Default::default() },
            serde_json::json!({ "device_id": device_id, "name": name, "replaced_device": replaced_device }),
        )
        .await?;
        commit(tx).await?;
        Ok(Enrolled {
            device_id,
            unit_id,
            call_sign,
            epoch: device_epoch.to_owned(),
            replaced_device,
        })
    }

    /// # Errors
    /// On a database error.
    pub async fn device_auth(&self, device_id: i64) -> Result<Option<DeviceAuth>> {
        let row = sqlx::query(
            "SELECT d.id, d.unit_id, u.call_sign, d.token_hash, d.epoch, d.revoked_at, d.last_seq
             FROM devices d JOIN units u ON u.id = d.unit_id WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| DeviceAuth {
            device_id: r.get("id"),
            unit_id: r.get("unit_id"),
            call_sign: r.get("call_sign"),
            token_hash: r.get("token_hash"),
            epoch: r.get("epoch"),
            revoked: r.get::<Option<i64>, _>("revoked_at").is_some(),
            last_seq: u64::try_from(r.get::<i64, _>("last_seq")).unwrap_or_default(),
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
        let rows = sqlx::query(
            "SELECT seq, message_id, queued_at, body FROM deliveries
             WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(device_id)
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| PendingDelivery {
                seq: u64::try_from(r.get::<i64, _>("seq")).unwrap_or_default(),
                message_id: r.get("message_id"),
                queued_at: r.get("queued_at"),
                body: r.get("body"),
            })
            .collect())
    }

    /// Records a cumulative receipt: every entry with `seq <= upto` is on the device's disk.
    ///
    /// # Errors
    /// On a database error.
    pub async fn record_receipt(&self, device_id: i64, upto: u64) -> Result<ReceiptOutcome> {
        self.batch
            .write(move |db| receipt(db, device_id, upto))
            .await
    }
}

/// The work of [`Store::record_receipt`] inside its batch.
fn receipt(db: &rusqlite::Connection, device_id: i64, upto: u64) -> Result<ReceiptOutcome> {
    let now = now_ms();
    let upto = i64::try_from(upto).unwrap_or(i64::MAX);
    let mut order_ids: Vec<(i64, i64)> = db
        .prepare_cached(
            "UPDATE deliveries SET delivered_at = ?1
             WHERE device_id = ?2 AND seq <= ?3 AND delivered_at IS NULL
             RETURNING seq, order_id",
        )?
        .query_map(rusqlite::params![now, device_id, upto], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?))
        })?
        .filter_map(|row| row.map(|(seq, order)| order.map(|o| (seq, o))).transpose())
        .collect::<rusqlite::Result<_>>()?;
    db.prepare_cached(
        "UPDATE devices SET ack_floor = MAX(ack_floor, ?1), last_seen = ?2 WHERE id = ?3",
    )?
    .execute(rusqlite::params![upto, now, device_id])?;
    let mut outcome = ReceiptOutcome::default();
    order_ids.sort_unstable();
    for (seq, order_id) in order_ids {
        if super::orders::transition_order(
            db,
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
