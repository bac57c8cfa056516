//! PostgreSQL servers of a test's own on loopback, made with the machine's PostgreSQL server
//! binaries: a primary whose commits wait for a synchronous standby, the standby streaming from
//! it, a SIGKILL for the primary and its processes (the machine lost), and the standby's
//! promotion, which is what Patroni does on losing the primary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

/// A primary and its synchronous standby, stopped and deleted on drop.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    root: PathBuf,
    as_postgres: bool,
    pub primary_port: u16,
    pub standby_port: u16,
}

impl PgCluster {
    /// Starts the primary, copies it into a standby with `pg_basebackup`, starts that and waits
    /// until the primary counts it as its synchronous standby. `None` when the PostgreSQL server
    /// binaries are not installed.
    ///
    /// # Errors
    /// When a step fails (its output is in the error).
    pub async fn start() -> anyhow::Result<Option<Self>> {
        let Some(bin) = server_binaries() else {
            return Ok(None);
        };
        // initdb refuses to run as root: the servers run as the postgres account then.
        let as_postgres = output(Command::new("id").arg("-u")).await?.trim() == "0";
        let [primary_port, standby_port] = free_ports()?;
        let mut cluster = Self {
            bin,
            root: PathBuf::new(),
            as_postgres,
            primary_port,
            standby_port,
        };
        cluster.root = PathBuf::from(
            cluster
                .run("mktemp", &["-d", "/tmp/dispatch-pg.XXXXXX"])
                .await?
                .trim(),
        );
        let primary = cluster.dir("primary");
        cluster
            .run(
                "initdb",
                &["-D", &primary, "-A", "trust", "-U", "postgres", "--no-sync"],
            )
            .await?;
        cluster.configure(
            "primary",
            cluster.primary_port,
            "synchronous_standby_names = '*'",
        )?;
        cluster.pg_ctl("primary", "start").await?;
        let standby = cluster.dir("standby");
        let port = cluster.primary_port.to_string();
        cluster
            .run(
                "pg_basebackup",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-D",
                    &standby,
                    "-R",
                    "-X",
                    "stream",
                ],
            )
            .await?;
        // Promoted with no standby of its own, it must not wait for one (Patroni clears the
        // setting the same way when no synchronous candidate is left).
        cluster.configure(
            "standby",
            cluster.standby_port,
            "synchronous_standby_names = ''",
        )?;
        cluster.pg_ctl("standby", "start").await?;
        for _ in 0..600 {
            let sync = cluster
                .psql(
                    cluster.primary_port,
                    "postgres",
                    "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                )
                .await?;
            if sync.trim() == "1" {
                return Ok(Some(cluster));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the standby did not become synchronous")
    }

    /// The URL naming both servers, primary first, for `database`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}",
            self.primary_port, self.standby_port
        )
    }

    /// Runs `sql` with psql on the server at `port`; returns its unaligned output.
    ///
    /// # Errors
    /// When psql fails.
    pub async fn psql(&self, port: u16, database: &str, sql: &str) -> anyhow::Result<String> {
        let port = port.to_string();
        self.run(
            "psql",
            &[
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
        )
        .await
    }

    /// SIGKILL to the primary's postmaster and every process of it at once, as when its machine
    /// is lost.
    ///
    /// # Errors
    /// When its processes cannot be found or killed.
    pub async fn kill_primary(&self) -> anyhow::Result<()> {
        let pid_file =
            std::fs::read_to_string(Path::new(&self.dir("primary")).join("postmaster.pid"))?;
        let postmaster = pid_file
            .lines()
            .next()
            .context("empty postmaster.pid")?
            .trim()
            .to_owned();
        let children = output(Command::new("pgrep").args(["-P", &postmaster]))
            .await
            .unwrap_or_default();
        let mut kill = Command::new("kill");
        kill.arg("-9")
            .arg(&postmaster)
            .args(children.split_whitespace());
        output(&mut kill).await?;
        Ok(())
    }

    /// Promotes the standby and waits until it accepts writes.
    ///
    /// # Errors
    /// When `pg_ctl promote` fails.
    pub async fn promote_standby(&self) -> anyhow::Result<()> {
        self.pg_ctl("standby", "promote").await.map(drop)
    }

    fn dir(&self, node: &str) -> String {
        self.root.join(node).display().to_string()
    }

    /// Appends the node's settings to its `postgresql.conf`.
    fn configure(&self, node: &str, port: u16, extra: &str) -> anyhow::Result<()> {
        let settings = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             shared_buffers = '32MB'\nfsync = on\nsynchronous_commit = on\n{extra}\n",
            self.root.display()
        );
        let conf = format!("{}/postgresql.conf", self.dir(node));
        let mut file = std::fs::OpenOptions::new().append(true).open(&conf)?;
        std::io::Write::write_all(&mut file, settings.as_bytes())?;
        Ok(())
    }

    async fn pg_ctl(&self, node: &str, action: &str) -> anyhow::Result<String> {
        let dir = self.dir(node);
        let log = format!("{dir}.log");
        self.run(
            "pg_ctl",
            &["-D", &dir, "-l", &log, "-w", "-t", "60", action],
        )
        .await
    }

    /// Runs a PostgreSQL program (or a plain command) as the postgres account if we are root.
    async fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::from(self.command(program));
        command.args(args).stdin(std::process::Stdio::null());
        output(&mut command).await
    }

    fn command(&self, program: &str) -> std::process::Command {
        postgres_command(&self.bin, self.as_postgres, program)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.root.as_os_str().is_empty() {
            return;
        }
        for node in ["primary", "standby"] {
            let _ = self
                .command("pg_ctl")
                .args(["-D", &self.dir(node), "-m", "immediate", "stop"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `program` from the server binaries in `bin` if it is one of them, run through `runuser` as
/// the postgres account when `as_postgres` (we are root: initdb, the servers and Patroni refuse
/// root).
pub(crate) fn postgres_command(
    bin: &Path,
    as_postgres: bool,
    program: &str,
) -> std::process::Command {
    let path = bin.join(program);
    let program = if path.exists() {
        path.display().to_string()
    } else {
        program.to_owned()
    };
    if as_postgres {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--", &program]);
        command
    } else {
        std::process::Command::new(&program)
    }
}

/// The newest installed PostgreSQL's server binaries (Debian keeps them off the PATH).
pub(crate) fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `N` distinct free ports on loopback (all held until every one is chosen).
pub(crate) fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// Runs `command`; its stdout, or an error with its stderr.
async fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .await
        .with_context(|| format!("cannot run {command:?}"))?;
    stdout_of(command, &out)
}

/// The stdout of `command`, which ended as `out`, or an error with its stderr when it failed.
pub(crate) fn stdout_of(
    command: &impl std::fmt::Debug,
    out: &std::process::Output,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        out.status.success(),
        "{command:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
