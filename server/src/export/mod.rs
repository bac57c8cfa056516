//! The agency's records in open formats: `dispatchd export --to DIR` (and the console's
//! download of the same files as one tar) and `dispatchd import DIR` into an empty server.
//!
//! An export is a directory of files other tools read (`README.md` inside says what each
//! holds): incidents as NENA EIDO-shaped JSON ([`eido`]), places and tracks as GeoJSON
//! ([`geojson`]), broadcasts as OASIS CAP 1.2 XML ([`cap`]), accounts, units, devices, texts
//! and the timeline and audit log as JSON Lines ([`records`]), response times as CSV
//! ([`statistics`]), and `manifest.json` last with the size, record count and SHA-256 of every
//! file. Everything is read inside one read transaction (a consistent snapshot while the server
//! runs) and written a row at a time, so memory does not grow with the size of the record.
//!
//! The import refuses an export whose files do not match its manifest, a windowed (partial)
//! export, and a server that already holds data; it keeps every id, time and audit hash, so
//! exporting the imported server gives the same files.

use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{ensure, Context};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::now_ms;
use records::Time;

pub mod cap;
pub mod eido;
pub mod geojson;
mod import;
pub mod records;
pub mod statistics;

pub use import::{import, ImportSummary};

/// Name of the manifest inside an export, written last.
pub const MANIFEST: &str = "manifest.json";
/// `format` of the manifest.
const FORMAT: &str = "dispatch-export";
/// `version` of the manifest: changes when a file's shape does.
const VERSION: u32 = 1;
/// The README inside every export.
const README: &str = include_str!("README.export.md");

/// The files of an export, in the order they are written (and imported); broadcasts follow,
/// one CAP file each.
pub const FILES: [&str; 11] = [
    "README.md",
    "users.jsonl",
    "units.jsonl",
    "devices.jsonl",
    "premises.geojson",
    "incidents.eido.jsonl",
    "incidents.geojson",
    "unit-tracks.geojson",
    "texts.jsonl",
    "events.jsonl",
    "statistics.csv",
];

/// Which records an export holds: incidents created, broadcasts and texts sent, events and
/// positions recorded between `from` and `until` (inclusive; open ends when absent). Accounts,
/// units, devices and premises are always whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from: Option<Time>,
    pub until: Option<Time>,
}

impl Window {
    fn start_ms(self) -> i64 {
        self.from.map_or(i64::MIN, |t| t.0)
    }

    fn end_ms(self) -> i64 {
        self.until.map_or(i64::MAX, |t| t.0)
    }

    fn is_everything(self) -> bool {
        self.from.is_none() && self.until.is_none()
    }
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportManifest {
    /// Always `dispatch-export`.
    pub format: String,
    pub version: u32,
    pub exported_at: Time,
    /// The schema version of the database it came from.
    pub schema_version: i64,
    pub window: Window,
    pub files: Vec<ExportedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedFile {
    /// Path inside the export, `/`-separated.
    pub name: String,
    /// Lines, features, rows or alerts it holds (0 for the README).
    pub records: u64,
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

/// Writes the export of the database at `db` into `to` (new, or an empty directory), the
/// manifest last. Runs while the server runs: one read transaction, no writes.
///
/// # Errors
/// When `to` is not empty, the database cannot be read, or a file cannot be written.
pub fn export(db: &Path, to: &Path, window: Window) -> anyhow::Result<ExportManifest> {
    if to.exists() {
        ensure!(
            fs::read_dir(to)?.next().is_none(),
            "{} exists and is not empty: export into a new directory",
            to.display()
        );
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to.join("broadcasts"))
        .with_context(|| format!("creating {}", to.display()))?;
    let db = open_snapshot(db)?;
    let mut files = Vec::new();
    for name in FILES {
        files.push(put(to, name, |out| write_file(&db, name, window, out))?);
    }
    cap::for_each_broadcast(&db, window, |b| {
        files.push(put(to, &cap::file_name(b.id), |out| {
            cap::write_alert(b, out).map(|()| 1)
        })?);
        Ok(())
    })?;
    let manifest = ExportManifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_at: Time(now_ms()),
        schema_version: db.query_row(
            "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get(0),
        )?,
        window,
        files,
    };
    db.execute_batch("COMMIT")?;
    drop(db);
    let partial = format!("{MANIFEST}.partial");
    put(to, &partial, |out| {
        serde_json::to_writer_pretty(&mut *out, &manifest)?;
        out.write_all(b"\n")?;
        Ok(0)
    })?;
    fs::rename(to.join(&partial), to.join(MANIFEST))?;
    fs::File::open(to)?.sync_all()?;
    Ok(manifest)
}

/// Writes one of [`FILES`]; answers how many records it holds.
fn write_file(
    db: &Connection,
    name: &str,
    window: Window,
    out: &mut dyn Write,
) -> anyhow::Result<u64> {
    match name {
        "README.md" => out
            .write_all(README.as_bytes())
            .map(|()| 0)
            .map_err(Into::into),
        "users.jsonl" => records::write_users(db, out),
        "units.jsonl" => records::write_units(db, out),
        "devices.jsonl" => records::write_devices(db, out),
        "premises.geojson" => geojson::write_premises(db, out),
        "incidents.eido.jsonl" => eido::write_incidents(db, window, out),
        "incidents.geojson" => geojson::write_incidents(db, window, out),
        "unit-tracks.geojson" => geojson::write_tracks(db, window, out),
        "texts.jsonl" => records::write_texts(db, window, out),
        "events.jsonl" => records::write_events(db, window, out),
        "statistics.csv" => statistics::write_statistics(db, window, out),
        other => anyhow::bail!("no export file {other:?}"),
    }
}

/// A connection that only reads, inside a read transaction that every file is read in.
fn open_snapshot(path: &Path) -> anyhow::Result<Connection> {
    ensure!(path.is_file(), "no database at {}", path.display());
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", path.display()))?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    db.pragma_update(None, "query_only", true)?;
    // The snapshot starts at the first read, which this is.
    db.execute_batch("BEGIN")?;
    db.query_row("SELECT count(*) FROM instance", [], |r| r.get::<_, i64>(0))?;
    Ok(db)
}

/// Creates `dir/name` (owner-only: an export holds personal data), writes it through `write`,
/// syncs it and answers its manifest entry.
fn put(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<u64>,
) -> anyhow::Result<ExportedFile> {
    let path = dir.join(name);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut out = Hashing {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let records = write(&mut out).with_context(|| format!("writing {name}"))?;
    out.flush()?;
    let file = out
        .inner
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {name}: {}", e.error()))?;
    file.sync_all().with_context(|| format!("writing {name}"))?;
    Ok(ExportedFile {
        name: name.to_owned(),
        records,
        bytes: out.bytes,
        sha256: hex::encode(out.hash.finalize()),
    })
}

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads an export's manifest and checks that every file it lists is there whole (size and
/// SHA-256) and that the directory holds nothing else.
///
/// # Errors
/// The first problem, naming the file.
pub fn verify(dir: &Path) -> anyhow::Result<ExportManifest> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).with_context(|| {
        format!(
            "{} is missing or unreadable: not a whole export",
            path.display()
        )
    })?;
    let manifest: ExportManifest = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not an export manifest", path.display()))?;
    ensure!(
        manifest.format == FORMAT && manifest.version == VERSION,
        "{}: format {:?} version {}, this dispatchd reads {FORMAT:?} version {VERSION}",
        path.display(),
        manifest.format,
        manifest.version
    );
    let mut listed = std::collections::BTreeSet::new();
    for f in &manifest.files {
        ensure!(
            !f.name.starts_with('/')
                && !f
                    .name
                    .split('/')
                    .any(|part| part == ".." || part.is_empty()),
            "manifest lists {:?}, which is not a path inside the export",
            f.name
        );
        let (bytes, sha256) = crate::backup::digest(&dir.join(&f.name))
            .with_context(|| format!("{} is missing", f.name))?;
        ensure!(
            bytes == f.bytes,
            "{} has {bytes} bytes, the manifest says {}",
            f.name,
            f.bytes
        );
        ensure!(
            sha256 == f.sha256,
            "{} does not match its SHA-256 in the manifest: changed or damaged",
            f.name
        );
        listed.insert(f.name.clone());
    }
    for name in FILES {
        ensure!(listed.contains(name), "the manifest does not list {name}");
    }
    for entry in walk(dir)? {
        ensure!(
            entry == MANIFEST || listed.contains(&entry),
            "{entry} is in the export directory but not in its manifest"
        );
    }
    Ok(manifest)
}

/// Every file under `dir`, as `/`-separated paths relative to it.
fn walk(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if entry.file_type()?.is_dir() {
                pending.push((entry.path(), format!("{name}/")));
            } else {
                found.push(name);
            }
        }
    }
    Ok(found)
}
