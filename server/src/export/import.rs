//! `dispatchd import DIR`: an export into an empty server, for moving to another site. The
//! export must verify against its manifest and be whole (no window); everything goes in within
//! one transaction with every id, time and audit hash kept, and foreign keys are checked before
//! it commits, so an import either takes all of it or changes nothing.
//!
//! What an export leaves out stays out: passwords (each account gets a random one: an admin
//! sets them with `dispatchd user reset-password`), second factors, device tokens (every
//! tablet enrols again), sessions, enrolment codes and the delivery queues.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{ensure, Context};
use rusqlite::Connection;

use super::{cap, eido, geojson, records, verify, ExportManifest};

/// What an import brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub users: u64,
    pub incidents: u64,
    pub events: u64,
    pub broadcasts: u64,
}

/// The tables an empty server has no rows in.
const MUST_BE_EMPTY: [&str; 9] = [
    "operators",
    "units",
    "devices",
    "incidents",
    "orders",
    "events",
    "texts",
    "broadcasts",
    "premises",
];

/// Imports the export in `dir` into the database at `db` (created and migrated by the caller).
///
/// # Errors
/// An export that does not verify or is windowed, a database that holds data, or a record
/// that does not fit (named by file and line); nothing is imported then.
pub fn import(dir: &Path, db: &Path) -> anyhow::Result<ImportSummary> {
    let manifest = verify(dir).with_context(|| format!("{} does not verify", dir.display()))?;
    ensure!(
        manifest.window.is_everything(),
        "{} is a windowed export (part of the record): import needs a whole export",
        dir.display()
    );
    let mut db = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    for table in MUST_BE_EMPTY {
        let rows: i64 = db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        ensure!(
            rows == 0,
            "the server already holds data ({rows} rows in {table}): import into an empty data directory"
        );
    }
    db.pragma_update(None, "foreign_keys", true)?;
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let open = |name: &str| -> anyhow::Result<BufReader<File>> {
        Ok(BufReader::new(File::open(dir.join(name))?))
    };
    let users = records::read_lines(open("users.jsonl")?, "users.jsonl", |u| {
        records::insert::user(&tx, u)
    })?;
    records::read_lines(open("units.jsonl")?, "units.jsonl", |u| {
        records::insert::unit(&tx, u)
    })?;
    records::read_lines(open("devices.jsonl")?, "devices.jsonl", |d| {
        records::insert::device(&tx, d)
    })?;
    geojson::for_each_feature(open("premises.geojson")?, |p| {
        geojson::insert_premise(&tx, p)
    })
    .context("premises.geojson")?;
    let incidents = records::read_lines(
        open("incidents.eido.jsonl")?,
        "incidents.eido.jsonl",
        |doc| eido::insert(&tx, doc),
    )?;
    geojson::for_each_feature(open("unit-tracks.geojson")?, |t| {
        geojson::insert_track(&tx, t)
    })
    .context("unit-tracks.geojson")?;
    records::read_lines(open("texts.jsonl")?, "texts.jsonl", |t| {
        records::insert::text(&tx, t)
    })?;
    let broadcasts = import_broadcasts(&tx, dir, &manifest)?;
    let events = records::read_lines(open("events.jsonl")?, "events.jsonl", |e| {
        records::insert::event(&tx, e)
    })?;
    let broken: Option<(String, i64, String)> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .ok();
    if let Some((table, row, parent)) = broken {
        anyhow::bail!(
            "{table} row {row} refers to a missing {parent} row: the export is not whole"
        );
    }
    tx.commit()?;
    Ok(ImportSummary {
        users,
        incidents,
        events,
        broadcasts,
    })
}

fn import_broadcasts(
    tx: &rusqlite::Transaction<'_>,
    dir: &Path,
    manifest: &ExportManifest,
) -> anyhow::Result<u64> {
    let mut count = 0;
    for f in manifest
        .files
        .iter()
        .filter(|f| f.name.starts_with("broadcasts/"))
    {
        let b = cap::read_alert(BufReader::new(File::open(dir.join(&f.name))?))
            .with_context(|| f.name.clone())?;
        ensure!(
            f.name == cap::file_name(b.id),
            "{} holds broadcast {}",
            f.name,
            b.id
        );
        cap::insert(tx, &b).with_context(|| f.name.clone())?;
        count += 1;
    }
    Ok(count)
}
