//! Tiles from an agency-supplied MBTiles file (SQLite, TMS rows) instead of generating them,
//! read with runtime sqlx queries on a small read-only pool.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::TileId;

/// An open MBTiles file and its `metadata` table.
#[derive(Debug)]
pub struct MbTiles {
    pool: SqlitePool,
    pub metadata: HashMap<String, String>,
}

impl MbTiles {
    /// Opens the file read-only and reads its metadata.
    ///
    /// # Errors
    /// When the file cannot be opened or has no `tiles` table.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening MBTiles {}", path.display()))?;
        sqlx::query("SELECT 1 FROM tiles LIMIT 1")
            .fetch_optional(&pool)
            .await
            .with_context(|| format!("{} has no readable `tiles` table", path.display()))?;
        // `metadata` is optional in practice; without it the defaults apply.
        let metadata = sqlx::query_as::<_, (String, String)>("SELECT name, value FROM metadata")
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        Ok(Self { pool, metadata })
    }

    /// The stored tile (possibly gzip-compressed, as many MBTiles writers store them), or an
    /// empty tile when the file has none there.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn tile(&self, id: TileId) -> Result<Vec<u8>, sqlx::Error> {
        let tms_row = (1i64 << id.z) - 1 - i64::from(id.y);
        let data: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
        )
        .bind(i64::from(id.z))
        .bind(i64::from(id.x))
        .bind(tms_row)
        .fetch_optional(&self.pool)
        .await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;

    #[tokio::test]
    async fn reads_tiles_with_the_tms_row_flip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.mbtiles");
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE metadata (name TEXT, value TEXT)",
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)",
            "INSERT INTO metadata VALUES ('bounds', '24.9,60.1,25.0,60.2'), ('maxzoom', '14')",
            // z=2, x=1, XYZ y=0 is TMS row 3.
            "INSERT INTO tiles VALUES (2, 1, 3, x'1a00')",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        drop(conn);
        let m = MbTiles::open(&path).await.unwrap();
        assert_eq!(
            m.tile(TileId { z: 2, x: 1, y: 0 }).await.unwrap(),
            [0x1a, 0]
        );
        assert!(m
            .tile(TileId { z: 2, x: 1, y: 3 })
            .await
            .unwrap()
            .is_empty());
        assert_eq!(m.numbers::<4>("bounds"), Some([24.9, 60.1, 25.0, 60.2]));
        assert_eq!(m.zoom("maxzoom"), Some(14));
        assert_eq!(m.numbers::<3>("center"), None);
    }
}
