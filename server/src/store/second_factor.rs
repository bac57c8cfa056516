//! Second factors of operator accounts: a secret being set up, its confirmation with the first
//! code (and the recovery codes made then), each code's time step taken once, recovery codes
//! used once, and removal by an admin. Every change is an audit event.

use super::sql::{params, Sql, Statements};
use super::{append_event, Error, EventRefs, Result, Store};
use crate::domain::{now_ms, Actor};

impl Store {
    /// Keeps `secret` as the account's secret being set up (replacing an earlier one).
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn begin_second_factor(&self, operator_id: i64, secret: &str) -> Result<()> {
        let secret = secret.to_owned();
        self.writer
            .write(move |tx| write_pending_second_factor(tx, operator_id, &secret))
            .await
    }

    /// The secret being set up, if any.
    ///
    /// # Errors
    /// On a database error.
    pub async fn pending_second_factor(&self, operator_id: i64) -> Result<Option<String>> {
        Ok(self
            .reader
            .value::<Option<String>>(
                "SELECT totp_pending_secret FROM operators WHERE id = $1",
                params![operator_id],
            )
            .await?
            .flatten())
    }

    /// Makes the secret being set up the account's second factor, its first code's `step`
    /// taken, with `recovery_hashes` as the recovery codes (earlier ones are dropped).
    ///
    /// # Errors
    /// [`Error::Conflict`] `no_second_factor_setup` when nothing is being set up (or it
    /// changed since `secret` was read).
    pub async fn confirm_second_factor(
        &self,
        actor: &Actor,
        secret: &str,
        step: u64,
        recovery_hashes: Vec<String>,
    ) -> Result<()> {
        let (actor, secret) = (actor.clone(), secret.to_owned());
        let id = actor
            .operator_id()
            .ok_or_else(|| Error::NotFound("operator".into()))?;
        self.writer
            .write(move |tx| {
                write_second_factor_confirmed(tx, id, &actor, &secret, step, &recovery_hashes)
            })
            .await?;
        self.sessions.forget_operator(id);
        Ok(())
    }

    /// Takes time step `step` of the account's codes: false when it (or a later one) was
    /// taken already, so each code works once.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn take_code_step(&self, operator_id: i64, step: u64) -> Result<bool> {
        self.writer
            .write(move |tx| write_code_step(tx, operator_id, step))
            .await
    }

    /// Uses the recovery code with `hash`: answers how many remain, or `None` when it is not
    /// one of the account's unused codes.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn use_recovery_code(&self, operator: &Actor, hash: &str) -> Result<Option<i64>> {
        let (actor, hash) = (operator.clone(), hash.to_owned());
        let id = operator
            .operator_id()
            .ok_or_else(|| Error::NotFound("operator".into()))?;
        self.writer
            .write(move |tx| write_recovery_code_used(tx, id, &actor, &hash))
            .await
    }

    /// Unused recovery codes of the account.
    ///
    /// # Errors
    /// On a database error.
    pub async fn recovery_codes_left(&self, operator_id: i64) -> Result<i64> {
        Ok(self
            .reader
            .value(
                "SELECT count(*) FROM operator_recovery_codes
                 WHERE operator_id = $1 AND used_at IS NULL",
                params![operator_id],
            )
            .await?
            .unwrap_or(0))
    }
}

/// The work of [`Store::begin_second_factor`] inside its batch, on either database.
///
/// # Errors
/// A statement's error.
pub fn write_pending_second_factor(
    db: &mut dyn Statements,
    operator_id: i64,
    secret: &str,
) -> Result<()> {
    db.run(
        "UPDATE operators SET totp_pending_secret = ?2 WHERE id = ?1",
        params![operator_id, secret],
    )?;
    Ok(())
}

/// The work of [`Store::confirm_second_factor`] inside its batch, on either database: account
/// `id`'s second factor confirmed by `actor` (the account itself).
///
/// # Errors
/// As [`Store::confirm_second_factor`]; a statement's error.
pub fn write_second_factor_confirmed(
    tx: &mut dyn Sql,
    id: i64,
    actor: &Actor,
    secret: &str,
    step: u64,
    recovery_hashes: &[String],
) -> Result<()> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    let now = now_ms();
    let changed = tx.run(
        "UPDATE operators SET totp_secret = totp_pending_secret, totp_pending_secret = NULL,
                totp_enabled_at = ?3, totp_last_step = ?4
         WHERE id = ?1 AND totp_pending_secret = ?2",
        params![id, secret, now, step],
    )?;
    if changed == 0 {
        return Err(Error::conflict(
            "no_second_factor_setup",
            "no second factor is being set up; start again",
        ));
    }
    tx.run(
        "DELETE FROM operator_recovery_codes WHERE operator_id = ?1",
        params![id],
    )?;
    for hash in recovery_hashes {
        tx.run(
            "INSERT INTO operator_recovery_codes (operator_id, code_hash, created_at)
             VALUES (?1, ?2, ?3)",
            params![id, hash, now],
        )?;
    }
    append_event(
        tx,
        now,
        "second_factor_enrolled",
        actor,
        EventRefs::default(),
        &serde_json::json!({ "recovery_codes": recovery_hashes.len() }),
    )
}

/// The work of [`Store::take_code_step`] inside its batch, on either database.
///
/// # Errors
/// A statement's error.
pub fn write_code_step(db: &mut dyn Statements, operator_id: i64, step: u64) -> Result<bool> {
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    Ok(db.run(
        "UPDATE operators SET totp_last_step = ?2
         WHERE id = ?1 AND coalesce(totp_last_step, -1) < ?2",
        params![operator_id, step],
    )? == 1)
}

/// The work of [`Store::use_recovery_code`] inside its batch, on either database: `actor`
/// (account `id`) uses the recovery code with `hash`.
///
/// # Errors
/// A statement's error.
pub fn write_recovery_code_used(
    tx: &mut dyn Sql,
    id: i64,
    actor: &Actor,
    hash: &str,
) -> Result<Option<i64>> {
    let now = now_ms();
    let used = tx.run(
        "UPDATE operator_recovery_codes SET used_at = ?3
         WHERE operator_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
        params![id, hash, now],
    )?;
    if used == 0 {
        return Ok(None);
    }
    let left: i64 = tx
        .select_one(
            "SELECT count(*) FROM operator_recovery_codes
             WHERE operator_id = ?1 AND used_at IS NULL",
            params![id],
        )?
        .get(0)?;
    append_event(
        tx,
        now,
        "recovery_code_used",
        actor,
        EventRefs::default(),
        &serde_json::json!({ "remaining": left }),
    )?;
    Ok(Some(left))
}

/// Removes the account's second factor and recovery codes (inside an admin's change).
pub(super) fn remove(db: &mut dyn Statements, id: i64) -> Result<()> {
    let had: Option<i64> = db
        .select_opt(
            "SELECT totp_enabled_at FROM operators WHERE id = ?1",
            params![id],
        )?
        .map(|row| row.get(0))
        .transpose()?
        .flatten();
    if had.is_none() {
        return Err(Error::conflict(
            "no_second_factor",
            "this account has no second factor",
        ));
    }
    db.run(
        "UPDATE operators SET totp_secret = NULL, totp_pending_secret = NULL,
                totp_enabled_at = NULL, totp_last_step = NULL
         WHERE id = ?1",
        params![id],
    )?;
    db.run(
        "DELETE FROM operator_recovery_codes WHERE operator_id = ?1",
        params![id],
    )?;
    Ok(())
}
