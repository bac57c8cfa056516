//! A Patroni cluster of a test's own on loopback: one etcd member and two PostgreSQL servers
//! under Patroni in synchronous mode, made with the machine's `etcd`, `patroni` and PostgreSQL
//! server binaries. The test kills the leader's machine (Patroni and PostgreSQL, with SIGKILL)
//! and Patroni, not the test, promotes the synchronous standby once the leader's lock in etcd
//! expires: the failover a deployment gets. Like [`crate::pg_cluster`], whose way of running
//! the servers it follows (as the postgres account when we are root, which Patroni and
//! PostgreSQL require).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::pg_cluster::{free_ports, postgres_command, server_binaries, stdout_of};

/// The Patroni cluster's name (its `scope`, the key prefix in etcd).
const SCOPE: &str = "dispatch";

/// How long etcd and Patroni may take to form the cluster before the harness gives up.
const BOOTSTRAP_PATIENCE: Duration = Duration::from_secs(120);

/// How long the survivor may take to replace a lost leader (the lock's ttl, then the
/// promotion) before the harness gives up.
const FAILOVER_PATIENCE: Duration = Duration::from_secs(90);

/// The leader lock's time to live in etcd (Patroni's minimum, 20 s): a lost leader keeps its
/// lock, and the standby waits, until `TTL_SECS` after the lock's last renewal.
pub const TTL_SECS: u64 = 20;

/// How often Patroni's loop runs: the leader renews its lock every `LOOP_WAIT_SECS`.
pub const LOOP_WAIT_SECS: u64 = 2;

/// etcd and two Patroni nodes, stopped and deleted on drop.
#[derive(Debug)]
pub struct PatroniCluster {
    bin: PathBuf,
    root: PathBuf,
    as_postgres: bool,
    etcd: Option<Child>,
    nodes: Vec<Node>,
    http: reqwest::Client,
}

/// One Patroni node and the PostgreSQL server it runs.
#[derive(Debug)]
struct Node {
    name: String,
    pg_port: u16,
    api_port: u16,
    patroni: Option<Child>,
    /// Killed by [`PatroniCluster::kill_leader`].
    lost: bool,
}

impl PatroniCluster {
    /// Starts etcd and both Patroni nodes and waits until one leads and the other is its
    /// streaming synchronous standby. `None` when `patroni`, `etcd` or the PostgreSQL server
    /// binaries are not installed.
    ///
    /// # Errors
    /// When a step fails or the cluster does not form in time (the logs' ends are in the error).
    pub async fn start() -> anyhow::Result<Option<Self>> {
        let Some(bin) = server_binaries() else {
            return Ok(None);
        };
        if !on_path("patroni") || !on_path("etcd") {
            return Ok(None);
        }
        // initdb, PostgreSQL and Patroni refuse to run as root: they run as postgres then.
        let as_postgres = running_as_root()?;
        let [pg_1, pg_2, api_1, api_2, etcd_client, etcd_peer] = free_ports()?;
        let mut cluster = Self {
            bin,
            root: PathBuf::new(),
            as_postgres,
            etcd: None,
            nodes: vec![
                Node::new("node1", pg_1, api_1),
                Node::new("node2", pg_2, api_2),
            ],
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        };
        cluster.root = PathBuf::from(
            run(cluster
                .command("mktemp")
                .args(["-d", "/tmp/dispatch-patroni.XXXXXX"]))?
            .trim(),
        );
        cluster.start_etcd(etcd_client, etcd_peer).await?;
        for index in 0..cluster.nodes.len() {
            cluster.start_patroni(index, etcd_client)?;
        }
        cluster
            .until_formed()
            .await
            .with_context(|| cluster.logs())?;
        Ok(Some(cluster))
    }

    /// The URL naming both PostgreSQL servers, for `database`.
    pub fn url(&self, database: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.pg_port))
            .collect();
        format!("postgres://postgres@{}/{database}", hosts.join(","))
    }

    /// Runs `sql` with psql on the server at `port`; returns its unaligned output.
    ///
    /// # Errors
    /// When psql fails.
    pub async fn psql(&self, port: u16, database: &str, sql: &str) -> anyhow::Result<String> {
        let mut command = tokio::process::Command::from(self.command("psql"));
        command
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-U", "postgres", "-d", database])
            .args(["-c", sql])
            .stdin(Stdio::null());
        let out = command
            .output()
            .await
            .with_context(|| format!("cannot run {command:?}"))?;
        anyhow::ensure!(
            out.status.success(),
            "psql on port {port} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The PostgreSQL port of the node Patroni names leader, if there is one now.
    ///
    /// # Errors
    /// When no surviving node's REST API answers.
    pub async fn leader_port(&self) -> anyhow::Result<Option<u16>> {
        let members = self.members().await?;
        Ok(members
            .iter()
            .find(|member| member["role"] == "leader" && member["state"] == "running")
            .and_then(|member| member["port"].as_u64())
            .and_then(|port| u16::try_from(port).ok()))
    }

    /// SIGKILL, all at once, to the leader's Patroni, its postmaster and every process of that
    /// postmaster, as when its machine is lost. Returns the lost leader's PostgreSQL port.
    ///
    /// # Errors
    /// When there is no leader, or its processes cannot be found or killed.
    pub async fn kill_leader(&mut self) -> anyhow::Result<u16> {
        let port = self.leader_port().await?.context("no leader to kill")?;
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.pg_port == port)
            .context("the leader is none of our nodes")?;
        let data_dir = self.root.join(&node.name);
        let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid"))?;
        let postmaster = pid_file
            .lines()
            .next()
            .context("empty postmaster.pid")?
            .trim()
            .to_owned();
        let children = run(Command::new("pgrep").args(["-P", &postmaster])).unwrap_or_default();
        let patroni = node.patroni.as_ref().context("Patroni is not running")?;
        // Patroni runs in a process group of its own (with runuser, when there is one).
        let patroni_group = format!("-{}", patroni.id());
        run(Command::new("kill")
            .args(["-9", "--", &patroni_group, &postmaster])
            .args(children.split_whitespace()))?;
        node.lost = true;
        if let Some(mut patroni) = node.patroni.take() {
            patroni.wait()?;
        }
        Ok(port)
    }

    /// Waits until a node that was not killed is the leader and its PostgreSQL accepts writes;
    /// returns its port.
    ///
    /// # Errors
    /// When no node takes over in time.
    pub async fn wait_new_leader(&self) -> anyhow::Result<u16> {
        let deadline = Instant::now() + FAILOVER_PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(port)) = self.leader_port().await {
                let survivor = self.nodes.iter().any(|n| n.pg_port == port && !n.lost);
                let writable = self
                    .psql(port, "postgres", "SELECT pg_is_in_recovery()")
                    .await
                    .is_ok_and(|out| out.trim() == "f");
                if survivor && writable {
                    return Ok(port);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow::anyhow!("no node took over from the lost leader")).context(self.logs())
    }

    /// Starts the etcd member (as us: etcd does not mind root) and waits until it is healthy.
    async fn start_etcd(&mut self, client_port: u16, peer_port: u16) -> anyhow::Result<()> {
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = File::create(self.root.join("etcd.log"))?;
        let mut etcd = Command::new("etcd");
        etcd.args(["--name", "etcd", "--data-dir"])
            .arg(self.root.join("etcd"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("etcd={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        self.etcd = Some(etcd.spawn().context("cannot start etcd")?);
        let deadline = Instant::now() + BOOTSTRAP_PATIENCE;
        while Instant::now() < deadline {
            let health = self.get_json(&format!("{client}/health")).await;
            if health.is_ok_and(|health| health["health"] == "true") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow::anyhow!("etcd did not become healthy")).context(self.logs())
    }

    /// Writes the node's configuration and starts its Patroni, which bootstraps or joins the
    /// cluster by itself.
    fn start_patroni(&mut self, index: usize, etcd_port: u16) -> anyhow::Result<()> {
        let config_path = self.root.join(format!("{}.yml", self.nodes[index].name));
        std::fs::write(&config_path, self.config(&self.nodes[index], etcd_port))?;
        let log = File::create(self.root.join(format!("{}.log", self.nodes[index].name)))?;
        let mut patroni = self.command("patroni");
        patroni
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        self.nodes[index].patroni = Some(patroni.spawn().context("cannot start patroni")?);
        Ok(())
    }

    /// The node's Patroni configuration: etcd's v3 API; the bootstrap settings of the cluster
    /// (synchronous mode, not strict, so a leader left alone still commits); trust for the
    /// superuser and replication on loopback.
    fn config(&self, node: &Node, etcd_port: u16) -> String {
        let root = self.root.display();
        let bin = self.bin.display();
        let (name, pg_port, api_port) = (&node.name, node.pg_port, node.api_port);
        format!(
            "scope: {SCOPE}
name: {name}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  host: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: {TTL_SECS}
    loop_wait: {LOOP_WAIT_SECS}
    retry_timeout: 5
    maximum_lag_on_failover: 1073741824
    synchronous_mode: true
    synchronous_mode_strict: false
    postgresql:
      use_pg_rewind: false
      parameters:
        fsync: 'on'
        synchronous_commit: 'on'
        shared_buffers: 32MB
  initdb:
  - encoding: UTF8
  - auth: trust
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {root}/{name}
  bin_dir: {bin}
  pgpass: {root}/{name}.pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: {root}
  pg_hba:
  - local all all trust
  - host all all 127.0.0.1/32 trust
  - host replication all 127.0.0.1/32 trust
"
        )
    }

    /// Waits until a node leads and the other streams to it as its synchronous standby.
    async fn until_formed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + BOOTSTRAP_PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(leader)) = self.leader_port().await {
                let sync = self
                    .psql(
                        leader,
                        "postgres",
                        "SELECT count(*) FROM pg_stat_replication \
                         WHERE sync_state = 'sync' AND state = 'streaming'",
                    )
                    .await;
                if sync.is_ok_and(|count| count.trim() == "1") {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("Patroni did not form a leader with a synchronous standby")
    }

    /// The cluster's members as the first surviving node's REST API (`GET /cluster`) lists them.
    async fn members(&self) -> anyhow::Result<Vec<Value>> {
        let mut last_error = anyhow::anyhow!("no surviving node");
        for node in self.nodes.iter().filter(|node| !node.lost) {
            let url = format!("http://127.0.0.1:{}/cluster", node.api_port);
            match self.get_json(&url).await {
                Ok(cluster) => {
                    return Ok(cluster["members"].as_array().cloned().unwrap_or_default())
                }
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(url).send().await?.json().await?)
    }

    /// The last lines of etcd's and each node's log, for an error.
    fn logs(&self) -> String {
        let mut logs = String::new();
        for name in std::iter::once("etcd").chain(self.nodes.iter().map(|n| n.name.as_str())) {
            let text =
                std::fs::read_to_string(self.root.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            logs.push_str(&format!("--- {name}.log (end)\n{tail}\n"));
        }
        logs
    }

    fn command(&self, program: &str) -> Command {
        postgres_command(&self.bin, self.as_postgres, program)
    }
}

impl Node {
    fn new(name: &str, pg_port: u16, api_port: u16) -> Self {
        Self {
            name: name.to_owned(),
            pg_port,
            api_port,
            patroni: None,
            lost: false,
        }
    }
}

impl Drop for PatroniCluster {
    /// SIGKILL to every Patroni (so none restarts its PostgreSQL), an immediate stop of every
    /// PostgreSQL, SIGKILL to etcd, and the directory deleted.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut patroni) = node.patroni.take() {
                kill_group(&patroni);
                let _ = patroni.wait();
            }
        }
        if self.root.as_os_str().is_empty() {
            return;
        }
        for node in &self.nodes {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.root.join(&node.name))
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut etcd) = self.etcd.take() {
            kill_group(&etcd);
            let _ = etcd.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// SIGKILL to the process group `child` leads.
fn kill_group(child: &Child) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
}

/// Whether we run as root (`id -u` is 0).
fn running_as_root() -> anyhow::Result<bool> {
    Ok(run(Command::new("id").arg("-u"))?.trim() == "0")
}

/// Whether `program` is on the PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Runs `command` to completion; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    stdout_of(command, &out)
}
