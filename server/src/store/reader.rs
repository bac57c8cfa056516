//! The store's reads, with the statements, parameters and rows of its writes (`sql.rs`): a read
//! is a query with [`Param`]s, answered as [`SqlRow`]s, so that the same read code serves either
//! database. On SQLite the reads run on sqlx's pool of read-only connections; on PostgreSQL on a
//! few connections to the primary (`postgres::PostgresReader`).

use sqlx::sqlite::{SqliteRow, SqliteValueRef};
use sqlx::{Decode, Row, Sqlite, SqlitePool, TypeInfo, ValueRef};
use std::sync::Arc;

use super::postgres::PostgresReader;
use super::sql::{Dialect, FromValue, Param, SqlRow, Value};
use super::{Error, Result};

/// What the store reads from.
#[derive(Debug, Clone)]
pub(super) enum Reader {
    Sqlite(SqlitePool),
    Postgres(PostgresReader),
}

impl Reader {
    /// The database the reads run on.
    pub(super) fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The PostgreSQL connection settings; `None` on SQLite.
    pub(super) fn postgres_settings(&self) -> Option<&super::postgres::PostgresSettings> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres(reader) => Some(reader.settings()),
        }
    }

    /// The SQLite pool, for what only SQLite does (its tests of query plans and schema).
    #[cfg(test)]
    pub(super) fn pool(&self) -> &SqlitePool {
        match self {
            Self::Sqlite(pool) => pool,
            Self::Postgres(_) => panic!("not a SQLite store"),
        }
    }

    /// Whether a read reaches the database now.
    pub(super) async fn is_ready(&self) -> bool {
        match self {
            Self::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.is_ok(),
            Self::Postgres(reader) => reader.is_ready().await,
        }
    }

    /// Closes the SQLite pool, waiting for reads in flight.
    pub(super) async fn close(&self) {
        if let Self::Sqlite(pool) = self {
            pool.close().await;
        }
    }

    /// Every row of a query.
    ///
    /// # Errors
    /// The query's error (storage faults by kind, see [`Error`]).
    pub(super) async fn select(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<SqlRow>> {
        match self {
            Self::Sqlite(pool) => {
                let rows = bind(sql, params).fetch_all(pool).await?;
                let Some(first) = rows.first() else {
                    return Ok(Vec::new());
                };
                let names = column_names(first);
                rows.iter().map(|row| to_row(row, &names)).collect()
            }
            Self::Postgres(reader) => reader.select(sql, params).await,
        }
    }

    /// The first row of a query, if any.
    ///
    /// # Errors
    /// As [`Reader::select`].
    pub(super) async fn select_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<SqlRow>> {
        match self {
            Self::Sqlite(pool) => {
                let row = bind(sql, params).fetch_optional(pool).await?;
                row.as_ref()
                    .map(|row| to_row(row, &column_names(row)))
                    .transpose()
            }
            Self::Postgres(reader) => Ok(reader.select(sql, params).await?.into_iter().next()),
        }
    }

    /// The first row of a query that always returns one.
    ///
    /// # Errors
    /// As [`Reader::select`]; [`Error::Statement`] when it returned none.
    pub(super) async fn select_one(&self, sql: &str, params: &[Param<'_>]) -> Result<SqlRow> {
        self.select_opt(sql, params)
            .await?
            .ok_or_else(|| Error::Statement(format!("no row from {sql}")))
    }

    /// The first column of every row.
    ///
    /// # Errors
    /// As [`Reader::select`]; [`Error::Statement`] for a value that is not a `T`.
    pub(super) async fn column<T: FromValue>(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<T>> {
        self.select(sql, params)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// The first column of the first row, if there is a row.
    ///
    /// # Errors
    /// As [`Reader::column`].
    pub(super) async fn value<T: FromValue>(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<T>> {
        self.select_opt(sql, params)
            .await?
            .map(|r| r.get(0))
            .transpose()
    }
}

fn bind<'q>(
    sql: &'q str,
    params: &'q [Param<'q>],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    params
        .iter()
        .fold(sqlx::query(sql), |query, param| match *param {
            Param::Null => query.bind(None::<i64>),
            Param::Int(i) => query.bind(i),
            Param::Real(f) => query.bind(f),
            Param::Text(s) => query.bind(s),
            Param::Blob(b) => query.bind(b),
        })
}

/// The names of a query's columns, shared by all its rows.
fn column_names(row: &SqliteRow) -> Arc<[String]> {
    row.columns()
        .iter()
        .map(|c| sqlx::Column::name(c).to_owned())
        .collect()
}

fn to_row(row: &SqliteRow, names: &Arc<[String]>) -> Result<SqlRow> {
    let values = (0..names.len())
        .map(|i| value(row.try_get_raw(i)?))
        .collect::<Result<_>>()?;
    Ok(SqlRow::new(Arc::clone(names), values))
}

/// A SQLite value by its storage class.
fn value(raw: SqliteValueRef<'_>) -> Result<Value> {
    fn decode<'r, T: Decode<'r, Sqlite>>(raw: SqliteValueRef<'r>) -> Result<T> {
        T::decode(raw).map_err(|e| Error::Statement(e.to_string()))
    }
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let class = raw.type_info().name().to_owned();
    Ok(match class.as_str() {
        "INTEGER" => Value::Int(decode(raw)?),
        "REAL" => Value::Real(decode(raw)?),
        "BLOB" => Value::Blob(decode(raw)?),
        _ => Value::Text(decode(raw)?),
    })
}
