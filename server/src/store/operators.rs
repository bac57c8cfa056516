//! Operators (console users) and their login sessions.

use sqlx::Row;

use super::{append_event, commit, Error, EventRefs, Result, Store};
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
    /// Creates an operator account.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the username is taken.
    pub async fn create_operator(
        &self,
        username: &str,
        password_hash: &str,
        role: Role,
        actor: &Actor,
    ) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO operators (username, password_hash, role, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| Error::classify(e, || format!("user {username:?} already exists")))?;
        append_event(
            &mut tx,
            now,
            "operator_created",
            actor,
            EventRefs::default(),
            serde_json::json!({ "username": username, "role": role.as_str() }),
        )
        .await?;
        commit(tx).await?;
        Ok(id)
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
    /// On a database error.
    pub async fn create_session(
        &self,
        token_hash: &str,
        operator: &Operator,
        expires_at: Millis,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(operator.id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let actor = Actor::Operator {
            id: operator.id,
            username: operator.username.clone(),
        };
        append_event(
            &mut tx,
            now,
            "login",
            &actor,
            EventRefs::default(),
            serde_json::json!({}),
        )
        .await?;
        commit(tx).await
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

    /// # Errors
    /// On a database error.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM operator_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        self.sessions.forget(token_hash);
        Ok(())
    }
}
