//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside the commit that
//! crosses its threshold, so now and then one group commit also copied the log back into the
//! database file and fsynced it while every write behind it waited. Here a task on a connection
//! of its own checkpoints every [`EVERY`] in `PASSIVE` mode (it never waits for, nor blocks,
//! the writer or the readers); the writer restarts the log after each complete checkpoint, so
//! the WAL stays small. The writer's automatic checkpoint stays on at [`BACKSTOP_PAGES`], far
//! above what this task lets accumulate, in case it ever falls behind.

use std::time::Duration;

use sqlx::SqlitePool;

/// How often committed pages are copied back into the database file.
const EVERY: Duration = Duration::from_millis(250);

/// WAL pages (4 KiB each) after which a commit checkpoints by itself all the same.
pub(super) const BACKSTOP_PAGES: u32 = 16_384;

/// Checkpoints through `pool` (one read-write connection, not the writer's) until it is closed.
pub(super) fn start(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    /// Writes reach the database file itself, not only the log, without any commit having
    /// crossed the automatic checkpoint's threshold.
    #[tokio::test]
    async fn committed_pages_reach_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open_standalone(&path).await.unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        let filler = "x".repeat(2_000);
        for n in 0..200 {
            let filler = filler.clone();
            store
                .writer
                .sqlite()
                .write_sqlite(move |tx| {
                    tx.execute(
                        "INSERT INTO units (call_sign, kind, created_at) VALUES (?1, ?2, 0)",
                        [format!("U-{n}"), filler],
                    )?;
                    Ok(())
                })
                .await
                .unwrap();
        }
        // 400 KB of rows: about 100 pages, far below the backstop.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while size() < before + 200_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes (from {before})",
                size()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.close().await;
    }
}
