//! Reaching the database: of the configured hosts, the one that accepts writes (libpq's
//! `target_session_attrs=read-write`: a standby, or a primary being demoted, is passed over),
//! with bounded waits so a dead host costs seconds, not minutes, and a check that COMMIT is
//! durable there before anything is written.

use std::str::FromStr;
use std::time::Duration;

use postgres::config::TargetSessionAttrs;
use postgres::{Client, Config, NoTls};

/// How long one host may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long sent data may stay unacknowledged before the connection counts as lost (a host
/// that vanished from the network, not one that closed the socket).
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the database is: a libpq URL or key=value string, possibly with several hosts
/// (`postgres://dispatch@db1:5432,db2:5432/dispatch`).
#[derive(Clone)]
pub struct PostgresSettings {
    config: Config,
    /// This process's name among the nodes of a cluster: its notices carry it, and its
    /// listening connection's `application_name` is it while the node lives.
    node: String,
}

impl std::fmt::Debug for PostgresSettings {
    /// Hosts and database only: never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .field("node", &self.node)
            .finish()
    }
}

impl PostgresSettings {
    /// Reads a connection string; whatever it says, only a read-write server is accepted.
    ///
    /// # Errors
    /// When the string is not a libpq URL or key=value list, or names no host.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let mut config = Config::from_str(url)
            .map_err(|e| anyhow::anyhow!("the PostgreSQL connection string is invalid: {e}"))?;
        anyhow::ensure!(
            !config.get_hosts().is_empty(),
            "the PostgreSQL connection string names no host"
        );
        config
            .target_session_attrs(TargetSessionAttrs::ReadWrite)
            .application_name("dispatchd")
            .tcp_user_timeout(TCP_USER_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let node = format!("dispatchd-{:016x}", rand::random::<u64>());
        Ok(Self { config, node })
    }

    /// This process's name among the nodes (new at every start).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The same settings for connections named `application_name`.
    pub(super) fn named(&self, application_name: &str) -> Self {
        let mut named = self.clone();
        named.config.application_name(application_name);
        named
    }
}

/// How durable a COMMIT is on the server we are connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// `synchronous_commit`: `on`, `remote_apply`, `remote_write` or `local` (COMMIT waits for
    /// the standbys only with the first three; `off` is refused at connection).
    pub synchronous_commit: String,
    /// Standbys that COMMIT waits for now (`sync` or `quorum` in `pg_stat_replication`).
    pub synchronous_standbys: i64,
}

/// Connects to the first of the configured hosts that accepts writes and checks that its
/// commits are flushed to disk (`fsync` on, `synchronous_commit` not `off`).
///
/// # Errors
/// When no host accepts writes (all down, or all standbys), or the server's settings would let
/// a confirmed COMMIT be lost.
pub fn connect_primary(settings: &PostgresSettings) -> anyhow::Result<(Client, Durability)> {
    let mut client = settings
        .config
        .connect(NoTls)
        .map_err(|e| anyhow::anyhow!("no PostgreSQL host of {settings:?} accepts writes: {e}"))?;
    let durability = durability(&mut client)?;
    Ok((client, durability))
}

/// Reads the durability settings and refuses those that would lose confirmed commits.
fn durability(client: &mut Client) -> anyhow::Result<Durability> {
    let row = client.query_one(
        "SELECT current_setting('fsync'), current_setting('synchronous_commit'),
                (SELECT count(*) FROM pg_stat_replication
                 WHERE sync_state IN ('sync', 'quorum'))",
        &[],
    )?;
    let (fsync, synchronous_commit): (String, String) = (row.get(0), row.get(1));
    anyhow::ensure!(
        fsync == "on",
        "PostgreSQL runs with fsync = {fsync}: a crash could lose confirmed writes"
    );
    anyhow::ensure!(
        synchronous_commit != "off",
        "PostgreSQL runs with synchronous_commit = off: a crash could lose confirmed writes"
    );
    Ok(Durability {
        synchronous_commit,
        synchronous_standbys: row.get(2),
    })
}
