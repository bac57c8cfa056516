//! Operator login sessions: created at login, looked up for every request (through the session
//! cache), kept alive by activity, listed, and ended by logout, by the operator or an admin, by
//! an account change, or by the expiry sweep once idle or past their lifetime. Only the SHA-256
//! of the cookie value is stored; sessions are named by their `id` (on SQLite the row id's
//! alias, migration 0017).

use super::sql::{params, Sql, SqlRow, Statements};
use serde::Serialize;

use super::{append_event, EventRefs, Operator, Result, Store};
use crate::config::PerRole;
use crate::domain::{now_ms, Actor, Millis, Role};

/// The operator behind a valid session.
#[derive(Debug, Clone)]
pub struct SessionOperator {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// The session's own id.
    pub session_id: i64,
    /// The password was reset by an admin: nothing but changing it is allowed.
    pub must_change_password: bool,
    /// The last request of the session, as last written (see [`Store::touch_session`]).
    pub last_seen_at: Millis,
    /// The account has a confirmed second factor.
    pub second_factor: bool,
}

impl SessionOperator {
    /// The operator as the author of events.
    pub fn actor(&self) -> Actor {
        Actor::Operator {
            id: self.id,
            username: self.username.clone(),
        }
    }

    /// Whether the session has been idle for its role's limit at `now`.
    pub fn idle_at(&self, now: Millis, idle: &PerRole) -> bool {
        now - self.last_seen_at >= idle_ms(idle, self.role)
    }
}

fn idle_ms(idle: &PerRole, role: Role) -> Millis {
    i64::try_from(idle.of(role).saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// A session as its owner or an admin sees it (never the token or its hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionRecord {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    #[schema(value_type = i64)]
    pub created_at_ms: Millis,
    #[schema(value_type = i64)]
    pub last_seen_at_ms: Millis,
    #[schema(value_type = i64)]
    pub expires_at_ms: Millis,
    /// The address the login came from.
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

/// Where a login comes from, kept with its session.
#[derive(Debug, Clone, Default)]
pub struct LoginOrigin {
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

/// A session that ended: its id and, for the session cache, its token hash.
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub id: i64,
    pub operator_id: i64,
    token_hash: String,
}

impl Store {
    /// Records a successful login: the session, a cleared failure count, and the `login` event.
    /// Answers the session's id.
    ///
    /// # Errors
    /// On a storage failure (the session then does not exist).
    pub async fn create_session(
        &self,
        token_hash: &str,
        operator: &Operator,
        expires_at: Millis,
        origin: LoginOrigin,
    ) -> Result<i64> {
        let token_hash = token_hash.to_owned();
        let actor = operator.actor();
        self.writer
            .write(move |tx| insert_session(tx, &token_hash, &actor, expires_at, &origin))
            .await
    }

    /// The operator of an unexpired session of an enabled account (idleness is the caller's
    /// check: [`SessionOperator::idle_at`]). Answered from the session cache when the session
    /// was read less than a second ago.
    ///
    /// # Errors
    /// On a database error.
    pub async fn session_operator(&self, token_hash: &str) -> Result<Option<SessionOperator>> {
        let now = now_ms();
        let ticket = match self.sessions.get(token_hash, now) {
            Ok(operator) => return Ok(Some(operator)),
            Err(ticket) => ticket,
        };
        let row = self
            .reader
            .select_opt(
                "SELECT o.id, o.username, o.role, o.must_change_password, s.id AS session_id,
                    o.totp_enabled_at IS NOT NULL AS second_factor,
                    s.expires_at, coalesce(s.last_seen_at, s.created_at) AS last_seen_at
             FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND o.disabled_at IS NULL",
                params![token_hash, now],
            )
            .await?;
        let found = row.and_then(|r| {
            let operator = SessionOperator {
                id: r.col("id"),
                username: r.col("username"),
                role: Role::parse(&r.col::<String>("role")).ok()?,
                session_id: r.col("session_id"),
                must_change_password: r.col::<i64>("must_change_password") != 0,
                last_seen_at: r.col("last_seen_at"),
                second_factor: r.col::<i64>("second_factor") != 0,
            };
            Some((operator, r.col::<Millis>("expires_at")))
        });
        self.sessions.put(ticket, token_hash, found.clone(), now);
        Ok(found.map(|(operator, _)| operator))
    }

    /// Records activity of a session at `now` (called at most every so often per session, so
    /// idleness is measured to that precision).
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn touch_session(&self, token_hash: &str, now: Millis) -> Result<()> {
        let hash = token_hash.to_owned();
        self.writer
            .write(move |tx| write_session_touch(tx, &hash, now))
            .await?;
        self.sessions.forget(token_hash);
        Ok(())
    }

    /// The sessions of one operator, or of everybody, newest first.
    ///
    /// # Errors
    /// On a database error.
    pub async fn session_records(&self, operator_id: Option<i64>) -> Result<Vec<SessionRecord>> {
        let rows = self
            .reader
            .select(
                "SELECT s.id, s.operator_id, o.username, s.created_at, s.expires_at,
                    coalesce(s.last_seen_at, s.created_at) AS last_seen_at, s.source, s.user_agent
             FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
             WHERE (CAST($1 AS BIGINT) IS NULL OR s.operator_id = $1) AND s.expires_at > $2
             ORDER BY s.created_at DESC",
                params![operator_id, now_ms()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SessionRecord {
                id: r.col("id"),
                user_id: r.col("operator_id"),
                username: r.col("username"),
                created_at_ms: r.col("created_at"),
                last_seen_at_ms: r.col("last_seen_at"),
                expires_at_ms: r.col("expires_at"),
                source: r.col("source"),
                user_agent: r.col("user_agent"),
            })
            .collect())
    }

    /// Ends session `id` (when `owner` is given, only if it is that operator's) and records
    /// `kind` (`logout` or `session_ended`) by `actor`. Answers the ended session, or `None`
    /// when there was no such session.
    ///
    /// # Errors
    /// On a storage failure (the session then still exists).
    pub async fn end_session(
        &self,
        id: i64,
        owner: Option<i64>,
        actor: &Actor,
        kind: &'static str,
    ) -> Result<Option<EndedSession>> {
        let actor = actor.clone();
        let ended = self
            .writer
            .write(move |tx| delete_session(tx, id, owner, &actor, kind))
            .await?;
        if let Some(session) = &ended {
            self.sessions.forget(&session.token_hash);
        }
        Ok(ended)
    }

    /// The id of the session with `token_hash`, if it exists.
    ///
    /// # Errors
    /// On a database error.
    pub async fn session_id(&self, token_hash: &str) -> Result<Option<i64>> {
        self.reader
            .value(
                "SELECT id FROM operator_sessions WHERE token_hash = $1",
                params![token_hash],
            )
            .await
    }

    /// Ends every session past its lifetime or idle for its role's limit at `now`, each with a
    /// `session_expired` event. Answers the ended sessions.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn end_expired_sessions(
        &self,
        now: Millis,
        idle: PerRole,
    ) -> Result<Vec<EndedSession>> {
        let ended = self
            .writer
            .write(move |tx| delete_expired_sessions(tx, now, &idle))
            .await?;
        self.forget_sessions(&ended);
        Ok(ended)
    }

    /// Drops ended sessions from the session cache.
    pub fn forget_sessions(&self, ended: &[EndedSession]) {
        for session in ended {
            self.sessions.forget(&session.token_hash);
        }
    }
}

/// The work of [`Store::create_session`] inside its batch, on either database: the session of
/// `actor` (an operator), its cleared failure count and the `login` event. Answers its id.
///
/// # Errors
/// A statement's error.
pub fn insert_session(
    tx: &mut dyn Sql,
    token_hash: &str,
    actor: &Actor,
    expires_at: Millis,
    origin: &LoginOrigin,
) -> Result<i64> {
    let now = now_ms();
    let operator_id = actor.operator_id();
    let id = tx.insert(
        "INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at,
                                        last_seen_at, source, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?3, ?5, ?6)",
        params![
            token_hash,
            operator_id,
            now,
            expires_at,
            origin.source.as_ref(),
            origin.user_agent.as_ref()
        ],
    )?;
    tx.run(
        "UPDATE operators SET failed_logins = 0, locked_until = NULL WHERE id = ?1",
        params![operator_id],
    )?;
    append_event(
        tx,
        now,
        "login",
        actor,
        EventRefs::default(),
        &serde_json::json!({ "session_id": id }),
    )?;
    Ok(id)
}

/// The work of [`Store::touch_session`] inside its batch, on either database: the session's
/// last activity moved on to `now` (never back).
///
/// # Errors
/// A statement's error.
pub fn write_session_touch(db: &mut dyn Statements, token_hash: &str, now: Millis) -> Result<()> {
    // CASE: PostgreSQL has no two-argument MAX.
    db.run(
        "UPDATE operator_sessions
         SET last_seen_at = CASE WHEN coalesce(last_seen_at, 0) > ?2
                                 THEN coalesce(last_seen_at, 0) ELSE ?2 END
         WHERE token_hash = ?1",
        params![token_hash, now],
    )?;
    Ok(())
}

/// The work of [`Store::end_session`] inside its batch, on either database.
///
/// # Errors
/// A statement's error.
pub fn delete_session(
    tx: &mut dyn Sql,
    id: i64,
    owner: Option<i64>,
    actor: &Actor,
    kind: &str,
) -> Result<Option<EndedSession>> {
    // CAST: PostgreSQL cannot tell the type of a parameter tested only for NULL.
    let ended = tx.select_opt(
        "DELETE FROM operator_sessions
         WHERE id = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR operator_id = ?2)
         RETURNING id, operator_id, token_hash,
                   (SELECT username FROM operators o WHERE o.id = operator_id)",
        params![id, owner],
    )?;
    let Some(row) = ended else {
        return Ok(None);
    };
    let session = ended_session(&row)?;
    let username: String = row.get(3)?;
    append_event(
        tx,
        now_ms(),
        kind,
        actor,
        EventRefs::default(),
        &serde_json::json!({
            "session_id": session.id,
            "user_id": session.operator_id,
            "username": username,
        }),
    )?;
    Ok(Some(session))
}

/// The work of [`Store::end_expired_sessions`] inside its batch, on either database.
///
/// # Errors
/// A statement's error.
pub fn delete_expired_sessions(
    tx: &mut dyn Sql,
    now: Millis,
    idle: &PerRole,
) -> Result<Vec<EndedSession>> {
    // CAST: PostgreSQL types a CASE of parameters alone as text.
    let rows = tx.select(
        "DELETE FROM operator_sessions
         WHERE expires_at <= ?1
            OR coalesce(last_seen_at, created_at) + (
                SELECT CASE o.role WHEN 'operator' THEN CAST(?2 AS BIGINT)
                                   WHEN 'supervisor' THEN CAST(?3 AS BIGINT)
                                   ELSE CAST(?4 AS BIGINT) END
                FROM operators o WHERE o.id = operator_id) <= ?1
         RETURNING id, operator_id, token_hash, expires_at,
                   (SELECT username FROM operators o WHERE o.id = operator_id)",
        params![
            now,
            idle_ms(idle, Role::Operator),
            idle_ms(idle, Role::Supervisor),
            idle_ms(idle, Role::Admin)
        ],
    )?;
    let mut ended = Vec::with_capacity(rows.len());
    for row in &rows {
        let session = ended_session(row)?;
        let (expires_at, username): (Millis, String) = (row.get(3)?, row.get(4)?);
        let reason = if expires_at <= now {
            "lifetime"
        } else {
            "idle"
        };
        append_event(
            tx,
            now,
            "session_expired",
            &Actor::System,
            EventRefs::default(),
            &serde_json::json!({
                "session_id": session.id,
                "user_id": session.operator_id,
                "username": username,
                "reason": reason,
            }),
        )?;
        ended.push(session);
    }
    Ok(ended)
}

/// The session a `DELETE … RETURNING id, operator_id, token_hash` ended.
fn ended_session(row: &SqlRow) -> Result<EndedSession> {
    Ok(EndedSession {
        id: row.get(0)?,
        operator_id: row.get(1)?,
        token_hash: row.get(2)?,
    })
}

/// Deletes every session of operator `id` but `except`, inside a change of the account.
pub(super) fn delete_sessions_of(
    db: &mut dyn Statements,
    id: i64,
    except: Option<i64>,
) -> Result<Vec<EndedSession>> {
    // CAST: PostgreSQL cannot tell the type of a parameter tested only for NULL.
    db.select(
        "DELETE FROM operator_sessions
         WHERE operator_id = ?1 AND (CAST(?2 AS BIGINT) IS NULL OR id <> ?2)
         RETURNING id, operator_id, token_hash",
        params![id, except],
    )?
    .iter()
    .map(ended_session)
    .collect()
}
