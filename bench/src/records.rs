//! The records section: a synthetic record of a city's year (N incidents with 10 timeline events
//! each, written straight into a database `dispatchd` migrated), then `dispatchd export` and
//! `dispatchd backup` of it, each timed with its peak resident memory (GNU time's `%M`, from
//! Debian's `time` package).

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use rusqlite::params;

use crate::stats::Row;

/// The kinds of an incident's ten events, in order.
const KINDS: [&str; 10] = [
    "incident_created",
    "order_queued",
    "order_delivered",
    "order_displayed",
    "order_acknowledged",
    "order_accepted",
    "unit_en_route",
    "unit_on_scene",
    "unit_cleared",
    "incident_closed",
];

/// Target of the issue: peak memory of export and backup.
const PEAK_TARGET_MIB: f64 = 200.0;

/// Fills a record of `incidents` incidents, exports and backs it up; answers the rows.
///
/// # Errors
/// When the binary or GNU time is missing, or a step fails.
pub fn run(dispatchd: &Path, incidents: u64) -> anyhow::Result<Vec<Row>> {
    anyhow::ensure!(
        Path::new("/usr/bin/time").exists(),
        "/usr/bin/time is missing: apt-get install time (bench/install-peers.sh does)"
    );
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let status = std::process::Command::new(dispatchd)
        .env("DISPATCH_NEW_PASSWORD", "silver comet harbour 27")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "user",
            "add",
            "--username",
            "bench-admin",
            "--role",
            "admin",
        ])
        .status()?;
    anyhow::ensure!(status.success(), "dispatchd user add failed");
    eprintln!("records: writing {incidents} incidents with 10 events each …");
    let started = Instant::now();
    fill(&data.join("dispatch.sqlite"), incidents)?;
    let db_bytes = std::fs::metadata(data.join("dispatch.sqlite"))?.len();
    eprintln!(
        "records: {:.1} GB written in {:.0} s",
        gb(db_bytes),
        started.elapsed().as_secs_f64()
    );
    let export_dir = dir.path().join("export");
    let export = measure(
        dispatchd,
        &data,
        &["export", "--to", &export_dir.display().to_string()],
    )?;
    let export_bytes = du(&export_dir)?;
    std::fs::remove_dir_all(&export_dir)?;
    let backup_dir = dir.path().join("backup");
    let backup = measure(
        dispatchd,
        &data,
        // No server runs beside it here: the copy goes at the disk's speed.
        &[
            "backup",
            "--max-rate",
            "0",
            "--to",
            &backup_dir.display().to_string(),
        ],
    )?;
    let verify = measure(
        dispatchd,
        &data,
        &["backup", "verify", &backup_dir.display().to_string()],
    )?;
    let row = |what: String, m: &Measured, written: Option<u64>| Row {
        what,
        ours: format!(
            "{:.1} s, peak {:.0} MiB{}",
            m.seconds,
            m.peak_mib,
            written.map_or(String::new(), |b| format!(", {:.2} GB written", gb(b)))
        ),
        peer: String::new(),
        ratio: String::new(),
        target: format!(
            "peak ≤ {PEAK_TARGET_MIB:.0} MiB{}",
            if m.peak_mib <= PEAK_TARGET_MIB {
                " (met)"
            } else {
                " (unmet)"
            }
        ),
    };
    let record = format!(
        "{incidents} incidents × 10 events, {:.1} GB database",
        gb(db_bytes)
    );
    Ok(vec![
        row(
            format!("dispatchd export of {record}"),
            &export,
            Some(export_bytes),
        ),
        row(
            format!("dispatchd backup --max-rate 0 of {record}"),
            &backup,
            Some(db_bytes),
        ),
        row(
            "dispatchd backup verify of the same backup".into(),
            &verify,
            None,
        ),
    ])
}

/// What GNU time reported for one command.
struct Measured {
    seconds: f64,
    peak_mib: f64,
}

fn measure(dispatchd: &Path, data: &Path, args: &[&str]) -> anyhow::Result<Measured> {
    eprintln!("records: dispatchd {} …", args.join(" "));
    let report = tempfile::NamedTempFile::new()?;
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "%e %M", "-o"])
        .arg(report.path())
        .arg(dispatchd)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "dispatchd {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(report.path())?;
    let mut fields = text
        .lines()
        .last()
        .context("GNU time wrote nothing")?
        .split_whitespace();
    let seconds: f64 = fields.next().context("no time")?.parse()?;
    let peak_kib: f64 = fields.next().context("no peak memory")?.parse()?;
    Ok(Measured {
        seconds,
        peak_mib: peak_kib / 1024.0,
    })
}

/// Writes the synthetic record: ten units, then each incident with its ten events (hash-chain
/// columns filled with 64 hex digits, as real events carry).
fn fill(db: &Path, incidents: u64) -> anyhow::Result<()> {
    let mut db = rusqlite::Connection::open(db)?;
    db.pragma_update(None, "synchronous", "OFF")?;
    let start_ms: i64 = 1_767_225_600_000; // 2026-01-01
    let step_ms = 31_536_000_000 / i64::try_from(incidents.max(1))?;
    let tx = db.transaction()?;
    for u in 1..=10 {
        tx.execute(
            "INSERT INTO units (id, call_sign, kind, created_at) VALUES (?1, ?2, 'patrol_car', ?3)",
            params![u, format!("P-{u}"), start_ms],
        )?;
    }
    tx.commit()?;
    let hash = "5f".repeat(32);
    let mut next = 1;
    while next <= incidents {
        let tx = db.transaction()?;
        {
            let mut incident = tx.prepare_cached(
                "INSERT INTO incidents (id, kind, priority, status, lat, lon, address, caller,
                                        notes, created_at, updated_at, closed_at, disposition)
                 VALUES (?1, 'burglary', ?2, 'closed', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, 'report_taken')",
            )?;
            let mut event = tx.prepare_cached(
                "INSERT INTO events (at, kind, actor, incident_id, unit_id, detail, source,
                                     prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, '10.0.0.7', ?7, ?7)",
            )?;
            for id in next..(next + 100_000).min(incidents + 1) {
                let i = i64::try_from(id)?;
                let at = start_ms + i * step_ms;
                let unit = i % 10 + 1;
                incident.execute(params![
                    i,
                    i % 5,
                    60.15 + (i % 1000) as f64 * 0.0001,
                    24.90 + (i % 997) as f64 * 0.0001,
                    format!("Mannerheimintie {}, Helsinki", i % 200 + 1),
                    format!("Caller {i}"),
                    "Back door forced, caller waiting outside.",
                    at,
                    at + 3_600_000,
                ])?;
                for (k, kind) in KINDS.iter().enumerate() {
                    let k = i64::try_from(k)?;
                    event.execute(params![
                        at + k * 60_000,
                        kind,
                        if k == 0 {
                            "operator:desk-3"
                        } else {
                            "device:7"
                        },
                        i,
                        unit,
                        format!("{{\"unit_id\":{unit},\"call_sign\":\"P-{unit}\",\"step\":{k}}}"),
                        hash,
                    ])?;
                }
            }
        }
        tx.commit()?;
        next += 100_000;
    }
    Ok(())
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            du(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}

#[allow(clippy::cast_precision_loss)]
fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}
