//! One way to read a column from either SQLite driver: the reads on the sqlx pool and the
//! group-committed writes and exports on rusqlite build the same records from the same columns.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// A row's columns by name; a missing column or NULL reads as `None`.
pub trait Columns {
    fn text(&self, column: &str) -> Option<String>;
    fn int(&self, column: &str) -> Option<i64>;
    fn real(&self, column: &str) -> Option<f64>;

    /// A column holding a JSON array of strings (capabilities, call signs); empty when missing
    /// or not such an array.
    fn list(&self, column: &str) -> Vec<String> {
        serde_json::from_str(&self.text(column).unwrap_or_default()).unwrap_or_default()
    }
}

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> Option<String> {
        self.try_get(column).ok().flatten()
    }
    fn int(&self, column: &str) -> Option<i64> {
        self.try_get(column).ok().flatten()
    }
    fn real(&self, column: &str) -> Option<f64> {
        self.try_get(column).ok().flatten()
    }
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Option<String> {
        self.get(column).ok().flatten()
    }
    fn int(&self, column: &str) -> Option<i64> {
        self.get(column).ok().flatten()
    }
    fn real(&self, column: &str) -> Option<f64> {
        self.get(column).ok().flatten()
    }
}
