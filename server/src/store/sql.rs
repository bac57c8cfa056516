//! The domain's writes, written once for both databases: a write is a function of a [`Sql`]
//! transaction, which the SQLite writer (`group_commit::Tx`) and the PostgreSQL writer
//! (`postgres::PgTx`) both are. Statements use `?N` parameters (rewritten to `$N` for
//! PostgreSQL), parameters are [`Param`]s and rows come back as [`SqlRow`]s of [`Value`]s, so
//! one function runs unchanged on either database.
//!
//! Integers are 64-bit on both (the PostgreSQL schema's integer columns are `BIGINT`); a
//! parameter PostgreSQL infers as `INTEGER` or `DOUBLE PRECISION` is converted, and a value out
//! of the column type's range is an error, never truncated.

use std::sync::Arc;

use super::row::Columns;
use super::{Change, Error, Result};
use crate::domain::Millis;

/// A parameter of a statement, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<i32> for Param<'_> {
    fn from(v: i32) -> Self {
        Self::Int(v.into())
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Self::Int(v.into())
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Blob(v)
    }
}

impl From<bool> for Param<'_> {
    /// As SQLite stores a boolean: 1 or 0 (PostgreSQL takes it where it expects a boolean).
    fn from(v: bool) -> Self {
        Self::Int(v.into())
    }
}

impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Self::Real(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl<'a, T: Into<Param<'a>>> From<Option<T>> for Param<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

impl<'a> From<&'a Value> for Param<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Int(i) => Self::Int(*i),
            Value::Real(f) => Self::Real(*f),
            Value::Text(s) => Self::Text(s),
            Value::Blob(b) => Self::Blob(b),
        }
    }
}

/// The parameters of a statement: `params![a, b, c]`, each converted with `Param::from`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::sql::Param::from($value)),*] as &[$crate::store::sql::Param<'_>]
    };
}
pub(crate) use params;

/// A column's value as a row holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<&Param<'_>> for Value {
    fn from(p: &Param<'_>) -> Self {
        match *p {
            Param::Null => Self::Null,
            Param::Int(i) => Self::Int(i),
            Param::Real(f) => Self::Real(f),
            Param::Text(s) => Self::Text(s.to_owned()),
            Param::Blob(b) => Self::Blob(b.to_vec()),
        }
    }
}

/// A row of a query: its values by position, and by name through [`Columns`].
#[derive(Debug, Clone)]
pub struct SqlRow {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl SqlRow {
    pub(super) fn new(names: Arc<[String]>, values: Vec<Value>) -> Self {
        Self { names, values }
    }

    /// The value at `index` as `T`.
    ///
    /// # Errors
    /// [`Error::Statement`] when there is no such column or its value is not a `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = self
            .values
            .get(index)
            .ok_or_else(|| Error::Statement(format!("the row has no column {index}")))?;
        T::from_value(value).ok_or_else(|| {
            Error::Statement(format!(
                "column {index} ({}) holds {value:?}, not a {}",
                self.names.get(index).map_or("?", String::as_str),
                std::any::type_name::<T>()
            ))
        })
    }

    /// The value of column `name` as `T`, read the way sqlx's `Row::get` reads one: a column the
    /// query does not return, or a value of another type, is a bug in the query's code, and
    /// panics.
    pub fn col<T: FromValue>(&self, name: &str) -> T {
        let value = self
            .named(name)
            .unwrap_or_else(|| panic!("the query returns no column {name}"));
        T::from_value(value).unwrap_or_else(|| {
            panic!(
                "column {name} holds {value:?}, not a {}",
                std::any::type_name::<T>()
            )
        })
    }

    fn named(&self, column: &str) -> Option<&Value> {
        let index = self.names.iter().position(|name| name == column)?;
        self.values.get(index)
    }
}

impl Columns for SqlRow {
    fn text(&self, column: &str) -> Option<String> {
        String::from_value(self.named(column)?)
    }
    fn int(&self, column: &str) -> Option<i64> {
        i64::from_value(self.named(column)?)
    }
    fn real(&self, column: &str) -> Option<f64> {
        f64::from_value(self.named(column)?)
    }
}

/// A Rust value a column converts to; `Option<T>` reads NULL as `None`.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for bool {
    /// As SQLite stores a boolean: any integer but 0 is true.
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(f) => Some(*f),
            #[allow(clippy::cast_precision_loss)] // as SQLite reads an integer as a real
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Which database a statement runs on, for the few things the two spell differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A subquery of the integers in parameter `?n`, a JSON array ([`json_ids`]):
    /// `u.id IN {json_ids(1)}`.
    pub fn json_ids(self, n: usize) -> String {
        match self {
            Self::Sqlite => format!("(SELECT value FROM json_each(?{n}))"),
            Self::Postgres => format!(
                "(SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(?{n} AS JSON)))"
            ),
        }
    }

    /// The text at `key` of the JSON object in `column` (NULL when there is none).
    pub fn json_text(self, column: &str, key: &str) -> String {
        match self {
            Self::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Self::Postgres => format!("(CAST({column} AS JSON) ->> '{key}')"),
        }
    }
}

/// The parameter [`Dialect::json_ids`] reads: `ids` as a JSON array.
pub fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_default()
}

/// Statements on either database: a write's transaction, or a plain SQLite connection.
pub trait Statements {
    /// The database the statements run on.
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns how many rows it changed.
    ///
    /// # Errors
    /// The statement's error (storage faults by kind, see [`Error`]).
    fn run(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64>;

    /// Runs a query and returns all its rows.
    ///
    /// # Errors
    /// As [`Statements::run`].
    fn select(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqlRow>>;

    /// Runs an `INSERT` of one row into a table with an `id` key; returns the new row's id.
    ///
    /// # Errors
    /// As [`Statements::run`].
    fn insert(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64>;

    /// The first row of a query, if any.
    ///
    /// # Errors
    /// As [`Statements::run`].
    fn select_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<SqlRow>> {
        Ok(self.select(sql, params)?.into_iter().next())
    }

    /// The first row of a query that always returns one.
    ///
    /// # Errors
    /// As [`Statements::run`]; [`Error::Statement`] when it returned none.
    fn select_one(&mut self, sql: &str, params: &[Param<'_>]) -> Result<SqlRow> {
        self.select_opt(sql, params)?
            .ok_or_else(|| Error::Statement(format!("no row from {sql}")))
    }
}

/// What a write carries beside its statements, in either writer's transaction.
#[derive(Debug, Default)]
pub struct WriteContext {
    /// Changes for the commit listener, passed on once the batch committed (dropped if not).
    pub(super) changes: Vec<Change>,
    /// The write appended to the timeline (the console feed then reads it).
    pub(super) events_appended: bool,
    /// When the server received what the write records, if its events are stamped with another
    /// (the device's) time.
    pub(super) received_at: Option<Millis>,
    /// The address of the request or device connection that queued the write.
    pub(super) source: Option<String>,
    /// The newest event (id and hash) as the batch's transaction has it, once an event of the
    /// batch has been appended: handed from write to write of one batch only, so a rolled-back
    /// batch leaves nothing behind and the next batch reads the head from the database again.
    pub(super) chain_head: Option<(i64, String)>,
}

/// The transaction of a write on either database, and what the write carries beside the
/// statements ([`WriteContext`]).
pub trait Sql: Statements {
    fn context(&self) -> &WriteContext;

    fn context_mut(&mut self) -> &mut WriteContext;

    /// Reports a change, passed to the commit listener once the batch has committed (and
    /// dropped if it fails).
    fn emit(&mut self, change: Change) {
        self.context_mut().changes.push(change);
    }

    /// Notes that the write appended to the timeline (the console feed then reads it).
    fn events_appended(&mut self) {
        self.context_mut().events_appended = true;
    }

    /// The write's events are stamped with a device's time; the server received it at `at`.
    fn set_received_at(&mut self, at: Millis) {
        self.context_mut().received_at = Some(at);
    }

    /// When the server received what the write records, if its events carry another
    /// (the device's) time.
    fn received_at(&self) -> Option<Millis> {
        self.context().received_at
    }

    /// The address of the request or device connection that queued the write, if any.
    fn source(&self) -> Option<&str> {
        self.context().source.as_deref()
    }

    /// The newest event of the batch's transaction (id and hash), once the batch appended one.
    fn chain_head(&self) -> Option<&(i64, String)> {
        self.context().chain_head.as_ref()
    }

    /// Records the event the batch appended last.
    fn set_chain_head(&mut self, id: i64, hash: String) {
        self.context_mut().chain_head = Some((id, hash));
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Self::Null => ValueRef::Null,
            Self::Int(i) => ValueRef::Integer(i),
            Self::Real(f) => ValueRef::Real(f),
            Self::Text(s) => ValueRef::Text(s.as_bytes()),
            Self::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl<'a> From<rusqlite::types::ValueRef<'a>> for Param<'a> {
    /// A SQLite value as a parameter; text that is not UTF-8 is passed as a blob.
    fn from(v: rusqlite::types::ValueRef<'a>) -> Self {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Int(i),
            ValueRef::Real(f) => Self::Real(f),
            ValueRef::Text(bytes) => {
                std::str::from_utf8(bytes).map_or(Self::Blob(bytes), Self::Text)
            }
            ValueRef::Blob(bytes) => Self::Blob(bytes),
        }
    }
}

impl From<rusqlite::types::ValueRef<'_>> for Value {
    fn from(v: rusqlite::types::ValueRef<'_>) -> Self {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => Self::Null,
            ValueRef::Integer(i) => Self::Int(i),
            ValueRef::Real(f) => Self::Real(f),
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Self::Text(text.to_owned()),
                Err(_) => Self::Blob(bytes.to_vec()),
            },
            ValueRef::Blob(bytes) => Self::Blob(bytes.to_vec()),
        }
    }
}

impl Statements for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn run(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        sqlite_run(self, sql, params)
    }

    fn select(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqlRow>> {
        sqlite_select(self, sql, params)
    }

    fn insert(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        sqlite_insert(self, sql, params)
    }
}

/// Runs a statement on a SQLite connection (a prepared statement it caches).
pub(super) fn sqlite_run(
    db: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64> {
    let rows = db
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(params))?;
    Ok(rows as u64)
}

/// Inserts a row on a SQLite connection and returns its id.
pub(super) fn sqlite_insert(
    db: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<i64> {
    // Not `RETURNING id`: SQLite buffers RETURNING rows in a temporary b-tree.
    sqlite_run(db, sql, params)?;
    Ok(db.last_insert_rowid())
}

/// Runs a query on a SQLite connection (a prepared statement it caches), rows as [`SqlRow`]s.
pub(super) fn sqlite_select(
    db: &rusqlite::Connection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<SqlRow>> {
    let mut statement = db.prepare_cached(sql)?;
    let names: Arc<[String]> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let width = names.len();
    let mut rows = statement.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let values = (0..width)
            .map(|i| row.get_ref(i).map(Value::from))
            .collect::<rusqlite::Result<_>>()?;
        out.push(SqlRow::new(Arc::clone(&names), values));
    }
    Ok(out)
}
