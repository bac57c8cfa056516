//! Verified backups of the data directory and their restore.
//!
//! `dispatchd backup --to DIR` copies the database while the server runs (SQLite's online
//! backup API, a MiB at a time inside one read transaction held from the first page to the
//! last: a consistent snapshot that does not stop writers, at a [`pace`] that leaves dispatch
//! its share of disk and CPU) into a self-contained file, with the generated certificate and key so
//! a restored server keeps the identity the tablets pinned, and writes `manifest.json` last:
//! time, schema version, the database's identity, row counts per table, size and SHA-256 of
//! every file, and the newest event. `backup verify DIR` opens the copy read-only and checks
//! all of it; `restore --from DIR` refuses a backup that does not verify, restores into an
//! empty data directory and gives the database a new identity, so every tablet's epoch changes
//! and it resynchronises. `schedule` takes backups on its own at an interval.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, ensure, Context};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::now_ms;

pub mod pace;
pub mod schedule;

use pace::Pace;

/// Name of the manifest inside a backup.
pub const MANIFEST: &str = "manifest.json";
/// Name of the database inside a backup (and a data directory).
const DATABASE: &str = "dispatch.sqlite";
/// The generated certificate's files, kept beside the database (`<data_dir>/tls/`), with the
/// next certificate of a rotation in progress (`dispatchd tls rotate`) when there is one.
const TLS_FILES: [&str; 6] = [
    "tls/cert.pem",
    "tls/key.pem",
    "tls/cert.sha256",
    "tls/next.pem",
    "tls/next-key.pem",
    "tls/next.sha256",
];
/// Bytes of the database copied in one step of the online backup.
const STEP_BYTES: i64 = 1 << 20;
/// Version of the manifest's format.
const FORMAT: u32 = 1;

/// What a backup holds, written last: a backup without it is incomplete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub created_at_ms: i64,
    /// RFC 3339 form of `created_at_ms`.
    pub created_at: String,
    pub dispatchd_version: String,
    /// The newest migration applied to the database.
    pub schema_version: i64,
    /// The database's identity when it was copied.
    pub instance_id: String,
    /// Rows per table.
    pub tables: std::collections::BTreeMap<String, i64>,
    pub files: Vec<FileEntry>,
    /// The newest timeline and audit event: its id (and hash, where events are hash-chained).
    pub last_event: Option<LastEvent>,
}

/// One file of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Relative to the backup's directory.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The newest event of a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LastEvent {
    pub id: i64,
    pub hash: Option<String>,
}

/// Copies the data directory's database (and generated certificate) into the new directory
/// `to`, copying and hashing at most `mib_per_s` MiB a second (0: no limit), then writes and
/// answers the manifest.
///
/// # Errors
/// When `to` exists and is not empty, the database cannot be read, or a file cannot be written.
pub fn create(data_dir: &Path, to: &Path, mib_per_s: u32) -> anyhow::Result<Manifest> {
    let source = data_dir.join(DATABASE);
    ensure!(source.is_file(), "no database at {}", source.display());
    if to.exists() {
        ensure!(
            fs::read_dir(to)?.next().is_none(),
            "{} exists and is not empty: back up into a new directory",
            to.display()
        );
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .with_context(|| format!("creating {}", to.display()))?;
    let copy = to.join(DATABASE);
    let mut pace = Pace::new(mib_per_s);
    copy_database(&source, &copy, &mut pace)?;
    for name in TLS_FILES {
        let from = data_dir.join(name);
        if from.is_file() {
            let dest = to.join(name);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dest.parent().unwrap_or(to))?;
            private_copy(&from, &dest)?;
        }
    }
    let db = open_read_only(&copy)?;
    let created_at_ms = now_ms();
    let mut files = vec![entry(to, DATABASE, &mut pace)?];
    for name in TLS_FILES {
        if to.join(name).is_file() {
            files.push(entry(to, name, &mut pace)?);
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at_ms,
        created_at: crate::domain::event::rfc3339(created_at_ms),
        dispatchd_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version: schema_version(&db)?,
        instance_id: db.query_row("SELECT instance_id FROM instance WHERE id = 1", [], |r| {
            r.get(0)
        })?,
        tables: table_counts(&db)?,
        files,
        last_event: last_event(&db)?,
    };
    drop(db);
    let text = serde_json::to_vec_pretty(&manifest)?;
    let partial = to.join(format!("{MANIFEST}.partial"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(&text)?;
    file.sync_all()?;
    fs::rename(&partial, to.join(MANIFEST))?;
    fs::File::open(to)?.sync_all()?;
    Ok(manifest)
}

/// Checks a backup: the manifest is there, every file it lists is whole (size and SHA-256),
/// the database passes SQLite's integrity and foreign-key checks, and its schema version, row
/// counts and newest event are the manifest's. Answers the manifest.
///
/// # Errors
/// The first problem found, naming the file, table or check.
pub fn verify(dir: &Path) -> anyhow::Result<Manifest> {
    verify_paced(dir, 0)
}

/// [`verify`], hashing the files at most `mib_per_s` MiB a second (0: no limit), as the
/// server's scheduled backups do so that checking a copy leaves the disk and a core to
/// dispatch. SQLite's integrity check is not paced.
///
/// # Errors
/// As [`verify`].
pub fn verify_paced(dir: &Path, mib_per_s: u32) -> anyhow::Result<Manifest> {
    let mut pace = Pace::new(mib_per_s);
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).with_context(|| {
        format!(
            "{} is missing or unreadable: not a backup, or an incomplete one",
            path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a valid manifest", path.display()))?;
    ensure!(
        manifest.format == FORMAT,
        "manifest format {} is not {FORMAT}: made by another version",
        manifest.format
    );
    ensure!(
        manifest.files.iter().any(|f| f.path == DATABASE),
        "the manifest lists no {DATABASE}"
    );
    for file in &manifest.files {
        ensure!(
            !file.path.contains("..") && !file.path.starts_with('/'),
            "the manifest names a file outside the backup: {:?}",
            file.path
        );
        let actual = entry(dir, &file.path, &mut pace)
            .with_context(|| format!("{} is missing or unreadable", file.path))?;
        ensure!(
            actual.bytes == file.bytes,
            "{} has {} bytes, the manifest says {} (truncated or changed)",
            file.path,
            actual.bytes,
            file.bytes
        );
        ensure!(
            actual.sha256 == file.sha256,
            "{} does not match its SHA-256 in the manifest (changed or damaged)",
            file.path
        );
    }
    let db = open_read_only(&dir.join(DATABASE))?;
    let integrity: String = db
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .context("the database's integrity check could not run")?;
    ensure!(
        integrity == "ok",
        "the database fails its integrity check: {integrity}"
    );
    let broken: Option<String> = db
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .next()
        .transpose()?;
    if let Some(table) = broken {
        bail!("the database fails its foreign-key check in table {table}");
    }
    let version = schema_version(&db)?;
    ensure!(
        version == manifest.schema_version,
        "the database's schema version is {version}, the manifest says {}",
        manifest.schema_version
    );
    let counts = table_counts(&db)?;
    for (table, expected) in &manifest.tables {
        let found = counts.get(table).copied();
        ensure!(
            found == Some(*expected),
            "table {table} has {} rows, the manifest says {expected}",
            found.map_or_else(|| "no".to_owned(), |n| n.to_string())
        );
    }
    ensure!(
        last_event(&db)? == manifest.last_event,
        "the newest event differs from the manifest's"
    );
    Ok(manifest)
}

/// Restores the backup in `from` into `data_dir`, which must hold no database, after verifying
/// it; the restored database gets a new identity. Answers the backup's manifest.
///
/// # Errors
/// When the backup does not verify, `data_dir` already has a database, or a copy fails.
pub async fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let manifest = verify(from).context("the backup does not verify; nothing was restored")?;
    let target = data_dir.join(DATABASE);
    ensure!(
        !target.exists(),
        "{} already has a database: restore into an empty data directory (move the old one away first)",
        data_dir.display()
    );
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    for file in &manifest.files {
        let dest = data_dir.join(&file.path);
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        private_copy(&from.join(&file.path), &dest)?;
    }
    let store = crate::store::Store::open_standalone(&target).await?;
    let renewed = store
        .take_new_identity(&manifest.created_at, &manifest.instance_id)
        .await;
    store.close().await;
    renewed?;
    Ok(manifest)
}

/// Copies the live database at `source` into the new file `dest` with the online backup API,
/// then makes the copy a self-contained file (rollback journal, not write-ahead log).
///
/// The source's read transaction is opened first and held to the last page, so every step
/// copies from the same snapshot: without it SQLite would restart the copy whenever the server
/// committed between two steps. Meanwhile the server's WAL cannot be checkpointed past that
/// snapshot and grows; it is copied back once the backup ends.
fn copy_database(source: &Path, dest: &Path, pace: &mut Pace) -> anyhow::Result<()> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", source.display()))?;
    src.busy_timeout(std::time::Duration::from_secs(10))?;
    src.execute_batch("BEGIN")?;
    let page_size: i64 = src
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .context("reading the database")?;
    src.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .context("reading the database")?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .with_context(|| format!("creating {}", dest.display()))?;
    let mut dst = Connection::open(dest)?;
    {
        use rusqlite::backup::{Backup, StepResult};
        let backup = Backup::new(&src, &mut dst)?;
        let pages_per_step = (STEP_BYTES / page_size.max(512)).max(1);
        let mut waits = 0;
        loop {
            match backup
                .step(pages_per_step as std::os::raw::c_int)
                .context("copying the database")?
            {
                StepResult::Done => break,
                StepResult::More => pace.advance((pages_per_step * page_size) as u64),
                _ => {
                    waits += 1;
                    ensure!(waits <= 200, "the database stayed locked for 10 s");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
        }
    }
    src.execute_batch("COMMIT")?;
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    dst.close().map_err(|(_, e)| e)?;
    fs::File::open(dest)?.sync_all()?;
    Ok(())
}

/// Opens a backup's database without writing anything beside it.
fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    let uri = format!("file:{}?immutable=1", path.display());
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))
}

fn schema_version(db: &Connection) -> anyhow::Result<i64> {
    db.query_row(
        "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success",
        [],
        |r| r.get(0),
    )
    .context("reading the schema version (is this a dispatch database?)")
}

fn table_counts(db: &Connection) -> anyhow::Result<std::collections::BTreeMap<String, i64>> {
    let names: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    names
        .into_iter()
        .map(|name| {
            let n: i64 = db.query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                r.get(0)
            })?;
            Ok((name, n))
        })
        .collect()
}

fn last_event(db: &Connection) -> anyhow::Result<Option<LastEvent>> {
    let chained: bool = db.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('events') WHERE name = 'hash'",
        [],
        |r| r.get(0),
    )?;
    let sql = if chained {
        "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id, NULL FROM events ORDER BY id DESC LIMIT 1"
    };
    let mut statement = db.prepare(sql)?;
    let mut rows = statement.query([])?;
    Ok(match rows.next()? {
        Some(r) => Some(LastEvent {
            id: r.get(0)?,
            hash: r.get(1)?,
        }),
        None => None,
    })
}

/// Size and SHA-256 of `dir/name`, read at `pace`.
fn entry(dir: &Path, name: &str, pace: &mut Pace) -> anyhow::Result<FileEntry> {
    let (bytes, sha256) = paced_digest(&dir.join(name), pace)?;
    Ok(FileEntry {
        path: name.to_owned(),
        bytes,
        sha256,
    })
}

/// Size and SHA-256 (hex) of a file, read in 64 KiB blocks.
///
/// # Errors
/// When the file cannot be opened or read.
pub fn digest(path: &Path) -> anyhow::Result<(u64, String)> {
    paced_digest(path, &mut Pace::new(0))
}

/// [`digest`], reading at `pace`.
fn paced_digest(path: &Path, pace: &mut Pace) -> anyhow::Result<(u64, String)> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
        pace.advance(n as u64);
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// Copies `from` to the new file `to`, readable by its owner only, and syncs it.
fn private_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut src = fs::File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_paced_copy_is_the_snapshot_of_its_start_while_the_server_goes_on_writing() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("live.sqlite");
        let live = Connection::open(&source).unwrap();
        live.pragma_update(None, "journal_mode", "WAL").unwrap();
        live.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
            .unwrap();
        live.execute_batch("BEGIN").unwrap();
        for _ in 0..1024 {
            live.execute("INSERT INTO t (body) VALUES (zeroblob(4096))", [])
                .unwrap();
        }
        live.execute_batch("COMMIT").unwrap();
        // A writer commits a row every 2 ms from before the copy until it ends (2 s at most).
        let copied = Arc::new(AtomicBool::new(false));
        let writer = std::thread::spawn({
            let copied = copied.clone();
            move || {
                let started = std::time::Instant::now();
                while !copied.load(Ordering::Relaxed)
                    && started.elapsed() < std::time::Duration::from_secs(2)
                {
                    live.execute("INSERT INTO t (body) VALUES (x'00')", [])
                        .unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                live.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .unwrap()
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        let copy = dir.path().join("copy.sqlite");
        // 4 MiB at 8 MiB a second: several steps, with the writer committing between them.
        copy_database(&source, &copy, &mut Pace::new(8)).unwrap();
        copied.store(true, Ordering::Relaxed);
        let rows_at_the_end = writer.join().unwrap();

        let db = open_read_only(&copy).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let rows: i64 = db
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert!(
            (1024..rows_at_the_end).contains(&rows),
            "the copy holds {rows} rows: the snapshot of the copy's start, not the {rows_at_the_end} \
             written by its end (a copy restarted at every commit would hold them all)"
        );
    }
}
