//! Operators (console users) and their login sessions.

use sqlx::Row;

use rusqlite::OptionalExtension;

use super::{append_event, created_earlier, Error, EventRefs, Keyed, Result, Store};
use crate::domain::{now_ms, Actor, Millis, Role};

/// An operator account with its password hash, for login.
#[derive(Debug, Clone)]
pub struct Operator {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
}

/// The operator behind a valid session.
#[derive(Debug, Clone)]
pub struct SessionOperator {
    pub id: i64,
    pub username: String,
    pub role: Role,
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
                if let Some(id) = created_earlier(tx, Keyed::Operators, key.as_deref())? {
                    return Ok(id);
                }
                let taken: Option<i64> = tx
                    .prepare_cached("SELECT id FROM operators WHERE username = ?1")?
                    .query_row([&username], |r| r.get(0))
                    .optional()?;
                if taken.is_some() {
                    return Err(Error::conflict(
                        "duplicate",
                        format!("user {username:?} already exists"),
                    ));
                }
                let now = now_ms();
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO operators (username, password_hash, role, created_at,
                                                idempotency_key)
                         VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    )?
                    .query_row(
                        rusqlite::params![username, password_hash, role.as_str(), now, key],
                        |r| r.get(0),
                    )?;
                append_event(
                    tx,
                    now,
                    "operator_created",
                    &actor,
                    EventRefs::default(),
                    &serde_json::json!({ "username": username, "role": role.as_str() }),
                )?;
                Ok(id)
            })
            .await
    }

    /// # Errors
    /// On a database error.
    pub async fn operator_by_username(&self, username: &str) -> Result<Option<Operator>> {
        let row = sqlx::query(
            "SELECT id, username, password_hash, role, disabled_at FROM operators WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| Operator {
            id: r.get("id"),
            username: r.get("username"),
            password_hash: r.get("password_hash"),
            role: Role::parse(r.get::<&str, _>("role")).unwrap_or(Role::Operator),
            disabled: r.get::<Option<i64>, _>("disabled_at").is_some(),
        }))
    }

    /// Records a login session and the login event.
    ///
    /// # Errors
    /// On a storage failure (the session then does not exist).
    pub async fn create_session(
        &self,
        token_hash: &str,
        operator: &Operator,
        expires_at: Millis,
    ) -> Result<()> {
        let token_hash = token_hash.to_owned();
        let actor = Actor::Operator {
            id: operator.id,
            username: operator.username.clone(),
        };
        self.writer
            .write(move |tx| {
                let now = now_ms();
                tx.prepare_cached(
                    "INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(rusqlite::params![
                    token_hash,
                    actor.operator_id(),
                    now,
                    expires_at
                ])?;
                append_event(
                    tx,
                    now,
                    "login",
                    &actor,
                    EventRefs::default(),
                    &serde_json::json!({}),
                )?;
                Ok(())
            })
            .await
    }

    /// The operator of an unexpired session of an enabled account. Answered from the session
    /// cache when the session was read less than a second ago.
    ///
    /// # Errors
    /// On a database error.
    pub async fn session_operator(&self, token_hash: &str) -> Result<Option<SessionOperator>> {
        let now = now_ms();
        let ticket = match self.sessions.get(token_hash, now) {
            Ok(operator) => return Ok(Some(operator)),
            Err(ticket) => ticket,
        };
        let row = sqlx::query(
            "SELECT o.id, o.username, o.role, s.expires_at FROM operator_sessions s
             JOIN operators o ON o.id = s.operator_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND o.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        let found = row.and_then(|r| {
            let operator = SessionOperator {
                id: r.get("id"),
                username: r.get("username"),
                role: Role::parse(r.get::<&str, _>("role")).ok()?,
            };
            Some((operator, r.get::<Millis, _>("expires_at")))
        });
        self.sessions.put(ticket, token_hash, found.clone(), now);
        Ok(found.map(|(operator, _)| operator))
    }

    /// Ends a session (logout). Answered once the deletion is on disk.
    ///
    /// # Errors
    /// On a storage failure (the session then still exists).
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let hash = token_hash.to_owned();
        self.writer
            .write(move |tx| {
                tx.prepare_cached("DELETE FROM operator_sessions WHERE token_hash = ?1")?
                    .execute([hash])?;
                Ok(())
            })
            .await?;
        self.sessions.forget(token_hash);
        Ok(())
    }
}
