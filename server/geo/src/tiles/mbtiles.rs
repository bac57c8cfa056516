//! Tiles from an agency-supplied MBTiles file (SQLite, TMS rows) instead of generating them:
//! one read-only connection, called from the caller's blocking threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::TileId;

/// An open MBTiles file and its `metadata` table.
#[derive(Debug)]
pub struct MbTiles {
    connection: Mutex<Connection>,
    pub metadata: HashMap<String, String>,
}

impl MbTiles {
    /// Opens the file read-only and reads its metadata.
    ///
    /// # Errors
    /// When the file cannot be opened or has no `tiles` table.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening MBTiles {}", path.display()))?;
        connection
            .query_row("SELECT 1 FROM tiles LIMIT 1", [], |_| Ok(()))
            .optional()
            .with_context(|| format!("{} has no readable `tiles` table", path.display()))?;
        // `metadata` is optional in practice; without it the defaults apply.
        let metadata = read_metadata(&connection).unwrap_or_default();
        Ok(Self {
            connection: Mutex::new(connection),
            metadata,
        })
    }

    /// The stored tile (possibly gzip-compressed, as many MBTiles writers store them), or an
    /// empty tile when the file has none there. Blocks on SQLite: call it off async threads.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub fn tile(&self, id: TileId) -> rusqlite::Result<Vec<u8>> {
        let tms_row = (1i64 << id.z) - 1 - i64::from(id.y);
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let data: Option<Vec<u8>> = connection
            .prepare_cached(
                "SELECT tile_data FROM tiles \
                 WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
            )?
            .query_row((i64::from(id.z), i64::from(id.x), tms_row), |row| {
                row.get(0)
            })
            .optional()?;
        Ok(data.unwrap_or_default())
    }

    /// A metadata number list such as `bounds` (`w,s,e,n`) or `center` (`lon,lat,zoom`).
    pub fn numbers<const N: usize>(&self, key: &str) -> Option<[f64; N]> {
        let parts: Vec<f64> = self
            .metadata
            .get(key)?
            .split(',')
            .map(|v| v.trim().parse().ok())
            .collect::<Option<_>>()?;
        parts.try_into().ok()
    }

    pub fn zoom(&self, key: &str) -> Option<u8> {
        self.metadata.get(key)?.trim().parse().ok()
    }
}

fn read_metadata(connection: &Connection) -> rusqlite::Result<HashMap<String, String>> {
    let mut statement = connection.prepare("SELECT name, value FROM metadata")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tiles_with_the_tms_row_flip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.mbtiles");
        let connection = Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE metadata (name TEXT, value TEXT);
                 CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
                 INSERT INTO metadata VALUES ('bounds', '24.9,60.1,25.0,60.2'), ('maxzoom', '14');
                 -- z=2, x=1, XYZ y=0 is TMS row 3.
                 INSERT INTO tiles VALUES (2, 1, 3, x'1a00');",
            )
            .unwrap();
        drop(connection);
        let m = MbTiles::open(&path).unwrap();
        assert_eq!(m.tile(TileId { z: 2, x: 1, y: 0 }).unwrap(), [0x1a, 0]);
        assert!(m.tile(TileId { z: 2, x: 1, y: 3 }).unwrap().is_empty());
        assert_eq!(m.numbers::<4>("bounds"), Some([24.9, 60.1, 25.0, 60.2]));
        assert_eq!(m.zoom("maxzoom"), Some(14));
        assert_eq!(m.numbers::<3>("center"), None);
    }

    #[test]
    fn a_file_without_tiles_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.mbtiles");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE metadata (name TEXT, value TEXT);")
            .unwrap();
        let e = MbTiles::open(&path).unwrap_err();
        assert!(
            format!("{e:#}").contains("no readable `tiles` table"),
            "{e:#}"
        );
    }
}
