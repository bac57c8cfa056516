//! The store's parameters and values ([`Param`], [`Value`]) on PostgreSQL's wire: a parameter
//! is encoded as the type PostgreSQL inferred for its place (an integer into `BIGINT`,
//! `INTEGER` or `DOUBLE PRECISION`; text into any text type), and a row's columns are read back
//! as the same five kinds of value SQLite has (a `BOOLEAN` reads as the integer 0 or 1, as in
//! SQLite).

use std::error::Error as StdError;
use std::sync::Arc;

use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use postgres::Row;

use crate::store::sql::{Param, SqlRow, Value};
use crate::store::{Error, Result};

type BoxError = Box<dyn StdError + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, BoxError> {
        match *self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                #[allow(clippy::cast_precision_loss)] // as SQLite compares them
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => Err(mismatch("an integer", ty)),
            },
            Self::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                _ => Err(mismatch("a real", ty)),
            },
            Self::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    s.to_sql(ty, out)
                }
                // JSON travels as its text (`CAST(?1 AS JSON)`).
                Type::JSON => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                _ => Err(mismatch("text", ty)),
            },
            Self::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => Err(mismatch("a blob", ty)),
            },
        }
    }

    /// Every type: [`ToSql::to_sql`] refuses a value that does not fit its place.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn mismatch(what: &str, ty: &Type) -> BoxError {
    format!("{what} cannot be passed where PostgreSQL expects {ty}").into()
}

/// Reads every column of `row` (one of `names`' statement) as a [`Value`].
///
/// # Errors
/// [`Error::Statement`] for a column of a type the store does not use (cast it in the SQL).
pub(super) fn to_row(row: &Row, names: &Arc<[String]>) -> Result<SqlRow> {
    let values = row
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| column_value(row, i, column.type_()))
        .collect::<Result<_>>()?;
    Ok(SqlRow::new(Arc::clone(names), values))
}

fn column_value(row: &Row, i: usize, ty: &Type) -> Result<Value> {
    fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>> {
        row.try_get(i).map_err(Error::from)
    }
    let value = match *ty {
        Type::INT8 => get::<i64>(row, i)?.map(Value::Int),
        Type::INT4 => get::<i32>(row, i)?.map(|v| Value::Int(v.into())),
        Type::INT2 => get::<i16>(row, i)?.map(|v| Value::Int(v.into())),
        Type::BOOL => get::<bool>(row, i)?.map(|v| Value::Int(v.into())),
        Type::FLOAT8 => get::<f64>(row, i)?.map(Value::Real),
        Type::FLOAT4 => get::<f32>(row, i)?.map(|v| Value::Real(v.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get::<String>(row, i)?.map(Value::Text)
        }
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(Value::Blob),
        _ => {
            return Err(Error::Statement(format!(
                "column {} is of type {ty}, which the store does not read: cast it",
                row.columns()[i].name()
            )))
        }
    };
    Ok(value.unwrap_or(Value::Null))
}
