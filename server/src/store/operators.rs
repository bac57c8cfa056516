//! Operator accounts: creation, the outcome of each login attempt (failure count and lockout),
//! and the admin's changes (disable, enable, unlock, password reset, role). Every change is an
//! audit event in the same transaction as the change itself.

use super::sql::{params, Sql, SqlRow, Statements};

use super::sessions::EndedSession;
use super::{append_event, created_earlier, Error, EventRefs, Keyed, Result, Store};
use crate::domain::{now_ms, Actor, Millis, Role};

/// `locked_until` of a lock only an admin lifts.
pub const LOCKED_FOR_GOOD: Millis = i64::MAX;

/// An operator account with its password hash, for login.
#[derive(Debug, Clone)]
pub struct Operator {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    /// Locked (too many wrong passwords) until this time, if at all.
    pub locked_until: Option<Millis>,
    /// The password was set by an admin and must be changed before anything else.
    pub must_change_password: bool,
    /// The confirmed TOTP secret (hex), when the account has a second factor.
    pub totp_secret: Option<String>,
}

impl Operator {
    pub fn locked_at(&self, now: Millis) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// The account as the author of events.
    pub fn actor(&self) -> Actor {
        Actor::Operator {
            id: self.id,
            username: self.username.clone(),
        }
    }
}

/// Why a login was refused (recorded in the audit log; the caller is told none of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    UnknownUser,
    WrongPassword,
    /// The password was right, the second factor's code wrong (or already used).
    WrongCode,
    Locked,
    Disabled,
}

impl LoginRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::WrongCode => "wrong_code",
            Self::Locked => "locked",
            Self::Disabled => "disabled",
        }
    }
}

/// When wrong passwords lock an account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub failures: u32,
    /// How long a lock lasts; `None` until an admin unlocks.
    pub duration_ms: Option<Millis>,
}

/// What an admin does to an account.
#[derive(Debug, Clone)]
pub enum AccountChange {
    Disable,
    Enable,
    Unlock,
    /// A new password hash that must be changed at the next login.
    ResetPassword {
        password_hash: String,
    },
    SetRole(Role),
    /// Removes the second factor (a lost device); the account enrols a new one at next login.
    ResetSecondFactor,
}

impl AccountChange {
    pub fn event_kind(&self) -> &'static str {
        match self {
            Self::Disable => "account_disabled",
            Self::Enable => "account_enabled",
            Self::Unlock => "account_unlocked",
            Self::ResetPassword { .. } => "password_reset",
            Self::SetRole(_) => "role_changed",
            Self::ResetSecondFactor => "second_factor_reset",
        }
    }

    /// Whether the account's sessions end with the change (its rights or credentials changed).
    pub fn ends_sessions(&self) -> bool {
        matches!(
            self,
            Self::Disable | Self::ResetPassword { .. } | Self::SetRole(_) | Self::ResetSecondFactor
        )
    }
}

const OPERATOR_COLUMNS: &str =
    "id, username, password_hash, role, disabled_at, locked_until, must_change_password, totp_secret";

fn operator_from_row(r: &SqlRow) -> Operator {
    Operator {
        id: r.col("id"),
        username: r.col("username"),
        password_hash: r.col("password_hash"),
        role: Role::parse(&r.col::<String>("role")).unwrap_or(Role::Operator),
        disabled: r.col::<Option<i64>>("disabled_at").is_some(),
        locked_until: r.col("locked_until"),
        must_change_password: r.col::<i64>("must_change_password") != 0,
        totp_secret: r.col("totp_secret"),
    }
}

impl Store {
    /// Creates an operator account. A repeated `idempotency_key` returns the account the first
    /// request created.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the username is taken.
    pub async fn create_operator(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        actor: &Actor,
        idempotency_key: Option<&str>,
    ) -> Result<i64> {
        let (username, password_hash) = (username.to_owned(), password_hash.to_owned());
        let (actor, key) = (actor.clone(), idempotency_key.map(str::to_owned));
        self.writer
            .write(move |tx| {
                insert_operator(tx, &username, &password_hash, role, &actor, key.as_deref())
            })
            .await
    }

    /// # Errors
    /// On a database error.
    pub async fn operator_by_username(&self, username: &str) -> Result<Option<Operator>> {
        let row = self
            .reader
            .select_opt(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE username = $1"),
                params![username],
            )
            .await?;
        Ok(row.as_ref().map(operator_from_row))
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub async fn operator(&self, id: i64) -> Result<Operator> {
        let row = self
            .reader
            .select_opt(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = $1"),
                params![id],
            )
            .await?;
        row.as_ref()
            .map(operator_from_row)
            .ok_or_else(|| Error::NotFound(format!("user {id}")))
    }

    /// Records a refused login: a `login_failed` event naming the name tried and why, and for a
    /// wrong password of an existing account one more failure, which at `policy.failures` in a
    /// row locks the account (`account_locked`). Answers whether this attempt locked it.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_login_refused(
        &self,
        username: &str,
        operator: Option<&Operator>,
        refusal: LoginRefusal,
        policy: LockoutPolicy,
    ) -> Result<bool> {
        let username: String = username.chars().take(64).collect();
        let id = operator.map(|o| o.id);
        self.writer
            .write(move |tx| write_login_refused(tx, &username, id, refusal, policy))
            .await
    }

    /// Records that the request's source address was refused further login attempts for a
    /// while (`login_throttled`, its `source` the address; once per run of refusals, not per
    /// request).
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_login_throttled(&self, retry_after_secs: u64) -> Result<()> {
        self.writer
            .write(move |tx| {
                append_event(
                    tx,
                    now_ms(),
                    "login_throttled",
                    &Actor::Anonymous,
                    EventRefs::default(),
                    &serde_json::json!({ "retry_after_secs": retry_after_secs }),
                )
            })
            .await
    }

    /// Records a request refused for lacking a role (`access_denied`).
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_access_denied(
        &self,
        actor: &Actor,
        attempted: &str,
        required: Role,
    ) -> Result<()> {
        let (actor, attempted) = (actor.clone(), attempted.to_owned());
        self.writer
            .write(move |tx| {
                append_event(
                    tx,
                    now_ms(),
                    "access_denied",
                    &actor,
                    EventRefs::default(),
                    &serde_json::json!({ "request": attempted, "required_role": required.as_str() }),
                )
            })
            .await
    }

    /// Records that `actor` took an export of the records (`records_exported`), with its window
    /// and number of files.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn record_export(&self, actor: &Actor, detail: serde_json::Value) -> Result<()> {
        let actor = actor.clone();
        self.writer
            .write(move |tx| {
                append_event(
                    tx,
                    now_ms(),
                    "records_exported",
                    &actor,
                    EventRefs::default(),
                    &detail,
                )
            })
            .await
    }

    /// Applies an admin's change to account `id` and records it; a change that
    /// [ends sessions](AccountChange::ends_sessions) deletes them in the same transaction.
    /// Answers the sessions it ended.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown account; [`Error::Conflict`] `last_admin` when the
    /// change would leave no enabled admin.
    pub async fn change_account(
        &self,
        id: i64,
        change: AccountChange,
        actor: &Actor,
    ) -> Result<Vec<EndedSession>> {
        let actor = actor.clone();
        let ended = self
            .writer
            .write(move |tx| write_account_change(tx, id, &change, &actor))
            .await?;
        self.forget_sessions(&ended);
        self.sessions.forget_operator(id);
        Ok(ended)
    }

    /// Sets the operator's own new password (checked by the caller) and clears the demand to
    /// change it; the account's other sessions end. Answers them.
    ///
    /// # Errors
    /// On a storage failure (the old password then still holds).
    pub async fn change_own_password(
        &self,
        operator: &Actor,
        password_hash: &str,
        keep_session: i64,
    ) -> Result<Vec<EndedSession>> {
        let (actor, hash) = (operator.clone(), password_hash.to_owned());
        let id = operator
            .operator_id()
            .ok_or_else(|| Error::NotFound("operator".into()))?;
        let ended = self
            .writer
            .write(move |tx| write_own_password(tx, id, &actor, &hash, keep_session))
            .await?;
        self.forget_sessions(&ended);
        self.sessions.forget_operator(id);
        Ok(ended)
    }
}

/// The work of [`Store::create_operator`] inside its batch, on either database: the account's
/// id (the first request's for a repeated `key`).
///
/// # Errors
/// [`Error::Conflict`] when the username is taken; a statement's error.
pub fn insert_operator(
    tx: &mut dyn Sql,
    username: &str,
    password_hash: &str,
    role: Role,
    actor: &Actor,
    key: Option<&str>,
) -> Result<i64> {
    if let Some(id) = created_earlier(tx, Keyed::Operators, key)? {
        return Ok(id);
    }
    if tx
        .select_opt(
            "SELECT id FROM operators WHERE username = ?1",
            params![username],
        )?
        .is_some()
    {
        return Err(Error::conflict(
            "duplicate",
            format!("user {username:?} already exists"),
        ));
    }
    let now = now_ms();
    let id = tx.insert(
        "INSERT INTO operators (username, password_hash, role, created_at, idempotency_key,
                                password_changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4)",
        params![username, password_hash, role.as_str(), now, key],
    )?;
    append_event(
        tx,
        now,
        "operator_created",
        actor,
        EventRefs::default(),
        &serde_json::json!({ "username": username, "role": role.as_str() }),
    )?;
    Ok(id)
}

/// The work of [`Store::record_login_refused`] inside its batch, on either database: the
/// `login_failed` event, and for a counted refusal of account `operator_id` one more failure
/// (locking the account at `policy.failures`). Answers whether this attempt locked it.
///
/// # Errors
/// A statement's error.
pub fn write_login_refused(
    tx: &mut dyn Sql,
    username: &str,
    operator_id: Option<i64>,
    refusal: LoginRefusal,
    policy: LockoutPolicy,
) -> Result<bool> {
    let now = now_ms();
    append_event(
        tx,
        now,
        "login_failed",
        &Actor::Anonymous,
        EventRefs::default(),
        &serde_json::json!({ "username": username, "reason": refusal.as_str() }),
    )?;
    let counts = matches!(
        refusal,
        LoginRefusal::WrongPassword | LoginRefusal::WrongCode
    );
    let Some(id) = operator_id.filter(|_| counts) else {
        return Ok(false);
    };
    let failures: i64 = tx
        .select_one(
            "UPDATE operators SET failed_logins = failed_logins + 1 WHERE id = ?1
             RETURNING failed_logins",
            params![id],
        )?
        .get(0)?;
    if failures < i64::from(policy.failures) {
        return Ok(false);
    }
    let until = policy.duration_ms.map_or(LOCKED_FOR_GOOD, |d| now + d);
    tx.run(
        "UPDATE operators SET locked_until = ?2, failed_logins = 0 WHERE id = ?1",
        params![id, until],
    )?;
    append_event(
        tx,
        now,
        "account_locked",
        &Actor::System,
        EventRefs::default(),
        &serde_json::json!({
            "username": username,
            "failures": failures,
            "until_ms": (until != LOCKED_FOR_GOOD).then_some(until),
        }),
    )?;
    Ok(true)
}

/// The work of [`Store::change_account`] inside its batch, on either database: the change, the
/// sessions it ends (answered) and its event.
///
/// # Errors
/// As [`Store::change_account`]; a statement's error.
pub fn write_account_change(
    tx: &mut dyn Sql,
    id: i64,
    change: &AccountChange,
    actor: &Actor,
) -> Result<Vec<EndedSession>> {
    let row = tx
        .select_opt(
            "SELECT username, role FROM operators WHERE id = ?1",
            params![id],
        )?
        .ok_or_else(|| Error::NotFound(format!("user {id}")))?;
    let (username, role): (String, String) = (row.get(0)?, row.get(1)?);
    let now = now_ms();
    let mut detail = serde_json::json!({ "user_id": id, "username": username });
    match change {
        AccountChange::Disable => {
            keeps_an_admin(tx, id)?;
            tx.run(
                "UPDATE operators SET disabled_at = coalesce(disabled_at, ?2) WHERE id = ?1",
                params![id, now],
            )?;
        }
        AccountChange::Enable => {
            tx.run(
                "UPDATE operators SET disabled_at = NULL WHERE id = ?1",
                params![id],
            )?;
        }
        AccountChange::Unlock => {
            tx.run(
                "UPDATE operators SET locked_until = NULL, failed_logins = 0 WHERE id = ?1",
                params![id],
            )?;
        }
        AccountChange::ResetPassword { password_hash } => {
            tx.run(
                "UPDATE operators SET password_hash = ?2, must_change_password = 1,
                        password_changed_at = ?3, locked_until = NULL, failed_logins = 0
                 WHERE id = ?1",
                params![id, password_hash, now],
            )?;
        }
        AccountChange::SetRole(new_role) => {
            if new_role.as_str() != "admin" {
                keeps_an_admin(tx, id)?;
            }
            tx.run(
                "UPDATE operators SET role = ?2 WHERE id = ?1",
                params![id, new_role.as_str()],
            )?;
            detail["from"] = role.into();
            detail["to"] = new_role.as_str().into();
        }
        AccountChange::ResetSecondFactor => {
            super::second_factor::remove(tx, id)?;
        }
    }
    let ended = if change.ends_sessions() {
        super::sessions::delete_sessions_of(tx, id, None)?
    } else {
        Vec::new()
    };
    detail["sessions_ended"] = ended.len().into();
    append_event(
        tx,
        now,
        change.event_kind(),
        actor,
        EventRefs::default(),
        &detail,
    )?;
    Ok(ended)
}

/// The work of [`Store::change_own_password`] inside its batch, on either database: the new
/// hash of account `id`, its sessions but `keep_session` ended (answered), and the event.
///
/// # Errors
/// A statement's error.
pub fn write_own_password(
    tx: &mut dyn Sql,
    id: i64,
    actor: &Actor,
    password_hash: &str,
    keep_session: i64,
) -> Result<Vec<EndedSession>> {
    let now = now_ms();
    tx.run(
        "UPDATE operators SET password_hash = ?2, must_change_password = 0,
                password_changed_at = ?3
         WHERE id = ?1",
        params![id, password_hash, now],
    )?;
    let ended = super::sessions::delete_sessions_of(tx, id, Some(keep_session))?;
    append_event(
        tx,
        now,
        "password_changed",
        actor,
        EventRefs::default(),
        &serde_json::json!({ "sessions_ended": ended.len() }),
    )?;
    Ok(ended)
}

/// Refuses to disable or demote the only enabled admin left (nobody could manage accounts).
fn keeps_an_admin(db: &mut dyn Statements, id: i64) -> Result<()> {
    let others: i64 = db
        .select_one(
            "SELECT count(*) FROM operators
             WHERE role = 'admin' AND disabled_at IS NULL AND id <> ?1",
            params![id],
        )?
        .get(0)?;
    let is_admin: bool = db
        .select_one(
            "SELECT role = 'admin' AND disabled_at IS NULL FROM operators WHERE id = ?1",
            params![id],
        )?
        .get(0)?;
    if is_admin && others == 0 {
        return Err(Error::conflict(
            "last_admin",
            "this is the only enabled admin; make another admin first",
        ));
    }
    Ok(())
}
