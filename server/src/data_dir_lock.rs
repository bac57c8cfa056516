//! One server per data directory. `dispatchd` holds an exclusive lock on `DATA_DIR/dispatchd.lock`
//! (`flock`, released by the kernel when the process ends, kill -9 included) for as long as it
//! serves: a second server on the same directory, which would run a second writer and a second
//! view of the devices beside the first, is refused at start, and so is `dispatchd import`, which
//! would write behind a running server's back. The file holds the holder's pid, for the message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::Context;
use rustix::fs::{flock, FlockOperation};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "dispatchd.lock";

/// Held while alive.
#[derive(Debug)]
pub struct DataDirLock {
    _file: Option<File>,
}

impl DataDirLock {
    /// Takes the data directory's lock for `what` (said in the refusal) without waiting. On
    /// read-only or full storage, where no lock file can be made (and nothing written), it goes
    /// on without one; the pid is written when there is room.
    ///
    /// # Errors
    /// When another process holds the lock (the message names its pid), or the file cannot be
    /// opened for another reason.
    pub fn acquire(data_dir: &Path, what: &str) -> anyhow::Result<Self> {
        let path = data_dir.join(LOCK_FILE);
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e)
                if [rustix::io::Errno::ROFS, rustix::io::Errno::NOSPC]
                    .iter()
                    .any(|errno| e.raw_os_error() == Some(errno.raw_os_error())) =>
            {
                tracing::warn!(path = %path.display(), error = %e, "no data directory lock");
                return Ok(Self { _file: None });
            }
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_owned(),
                pid => format!("another dispatchd (pid {pid})"),
            };
            anyhow::bail!(
                "{holder} is serving {}: stop it before {what}",
                data_dir.display()
            );
        }
        let pid = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        if let Err(e) = pid {
            tracing::warn!(path = %path.display(), error = %e, "the lock file holds no pid");
        }
        Ok(Self { _file: Some(file) })
    }
}

#[cfg(test)]
mod tests {
    use super::DataDirLock;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path(), "starting").unwrap();
        let refused = DataDirLock::acquire(dir.path(), "importing").unwrap_err();
        let message = refused.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id()))
                && message.contains("stop it before importing"),
            "{message}"
        );
        drop(first);
        DataDirLock::acquire(dir.path(), "starting again").unwrap();
    }
}
