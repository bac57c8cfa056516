//! Scheduled backups: every `every_secs` the server backs itself up into a new directory of
//! `dir` (`dispatch-<UTC time>`), verifies the copy, and removes the oldest verified backups past
//! `keep`. A backup that fails or does not verify is removed (it must not pass for one) and the
//! failure is kept as the last result, which `/readyz` and the admin screen show.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::config::ScheduledBackups;
use crate::domain::now_ms;

/// Names of the backups this schedule makes (and the only ones it removes).
const PREFIX: &str = "dispatch-";

/// The last scheduled backup's outcome.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct LastBackup {
    /// When it finished.
    pub at_ms: i64,
    pub ok: bool,
    /// The backup's directory, when it succeeded.
    #[schema(value_type = Option<String>)]
    pub dir: Option<PathBuf>,
    /// Why it failed.
    pub error: Option<String>,
}

/// The outcome of the last scheduled backup, if one ran; shared with the API.
#[derive(Debug, Clone, Default)]
pub struct BackupStatus(Arc<Mutex<Option<LastBackup>>>);

impl BackupStatus {
    pub fn last(&self) -> Option<LastBackup> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, last: LastBackup) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(last);
    }
}

/// Backs up on schedule until `stop` turns true.
pub async fn run(
    data_dir: PathBuf,
    schedule: ScheduledBackups,
    status: BackupStatus,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_secs(schedule.every_secs);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let (data_dir, schedule) = (data_dir.clone(), schedule.clone());
        let outcome = tokio::task::spawn_blocking(move || back_up_once(&data_dir, &schedule))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the backup task failed: {e}")));
        let last = match outcome {
            Ok(dir) => {
                tracing::info!(dir = %dir.display(), "scheduled backup made and verified");
                LastBackup {
                    at_ms: now_ms(),
                    ok: true,
                    dir: Some(dir),
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "scheduled backup failed");
                LastBackup {
                    at_ms: now_ms(),
                    ok: false,
                    dir: None,
                    error: Some(format!("{e:#}")),
                }
            }
        };
        status.set(last);
    }
}

/// One backup, verified, then the old ones pruned. Answers its directory.
fn back_up_once(data_dir: &Path, schedule: &ScheduledBackups) -> anyhow::Result<PathBuf> {
    let name = format!(
        "{PREFIX}{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let dir = schedule.dir.join(name);
    let rate = schedule.max_rate_mib_s;
    let made = super::create(data_dir, &dir, rate).and_then(|_| super::verify_paced(&dir, rate));
    if let Err(e) = made {
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(e);
    }
    prune(&schedule.dir, schedule.keep)?;
    Ok(dir)
}

/// Removes the oldest of this schedule's complete backups (those with a manifest) past `keep`.
fn prune(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let mut backups: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX))
                && p.join(super::MANIFEST).is_file()
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in &backups[..excess] {
        std::fs::remove_dir_all(old)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_complete_backups_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "dispatch-1",
            "dispatch-2",
            "dispatch-3",
            "dispatch-4",
            "other",
        ] {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(super::super::MANIFEST), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("dispatch-0-incomplete")).unwrap();
        prune(dir.path(), 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["dispatch-0-incomplete", "dispatch-3", "dispatch-4", "other"]
        );
    }
}
