//! One way to read a column by name from the store's rows (`sql::SqlRow`, of its reads and
//! writes on either database) and from rusqlite's (the export reads the database file itself),
//! so that both build the same records from the same columns.

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
