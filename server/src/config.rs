//! Server configuration: a TOML file, overridden by `DISPATCH_*` environment variables and
//! command-line flags (flag > environment > file > default). See `dispatchd.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Unit kinds when the configuration names none.
pub const DEFAULT_UNIT_KINDS: [&str; 6] = [
    "patrol_car",
    "motorcycle",
    "foot",
    "ambulance",
    "fire_engine",
    "k9",
];

/// The effective configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTPS + WSS listener.
    pub listen: SocketAddr,
    /// Where the database, the generated certificate and other state live.
    pub data_dir: PathBuf,
    /// PEM certificate chain; when unset a self-signed certificate is generated in
    /// `<data_dir>/tls/` at first start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// OpenStreetMap extract (`.osm.pbf`) whose car roads time recommendations; without it
    /// ETAs are straight-line estimates.
    pub map: Option<PathBuf>,
    /// An MBTiles file of vector tiles to serve as the basemap instead of tiles generated
    /// from `map`.
    pub tiles_mbtiles: Option<PathBuf>,
    /// A PMTiles (v3) file of vector tiles to serve the same way, instead of `tiles_mbtiles`.
    pub tiles_pmtiles: Option<PathBuf>,
    /// Extra DNS names or IP addresses for the generated certificate.
    pub tls_names: Vec<String>,
    /// A fix older than this is stale: the unit is not recommended.
    pub stale_fix_secs: u64,
    /// The kinds a unit may be created or edited with (codes, the console translates the known
    /// ones); existing units keep theirs if it leaves the list.
    pub unit_kinds: Vec<String>,
    /// Interval of WebSocket pings on the device channel.
    pub heartbeat_secs: u64,
    /// How long an enrolment code stays valid.
    pub enrolment_code_ttl_secs: u64,
    /// How long an operator session lasts at most, however active (its absolute lifetime).
    pub session_ttl_secs: u64,
    /// Login protection, idle sessions and the password policy.
    pub accounts: Accounts,
    /// At most one trail point per unit per this many seconds.
    pub trail_sample_secs: u64,
    /// At most this many deliveries sent to a device and not yet acknowledged; the rest wait
    /// for its receipts, so a slow link is never flooded.
    pub inflight_window: u32,
    /// When an order that nobody answers escalates, and when it expires.
    pub escalation: Escalation,
    /// When an incident needs an operator's attention (reviewed with every escalation sweep).
    pub attention: Attention,
    /// Which earlier incidents intake shows as possible duplicates of a new call.
    pub intake: Intake,
    /// A unit whose tablet has had no live connection for this long is marked as without a
    /// link (shown so on the console) and is not recommended until it connects again.
    pub link_lost_secs: u64,
    /// The SMS gateway used as the fallback channel; unset means no fallback.
    pub sms: Option<SmsGateway>,
    /// Scheduled backups; unset means none (take them with `dispatchd backup`).
    pub backup: Option<ScheduledBackups>,
    /// Which database keeps the data: the SQLite file in `data_dir` (the default) or PostgreSQL.
    pub store: Store,
    /// Every address the service may be reached at by tablets (`https://HOST[:PORT]`), e.g. a
    /// standby machine: handed to each tablet at enrolment, so that it moves to the next when
    /// the one it uses cannot be reached. Empty: none.
    pub server_urls: Vec<String>,
    /// The bearer token a Prometheus scraper sends to `GET /metrics`; unset: no metrics are
    /// served.
    pub metrics_token: Option<String>,
    /// How many units with which capabilities each incident kind (and priority) needs.
    pub response_plans: Vec<crate::domain::ResponsePlan>,

    // --- Public address (the basemap style's absolute tile URLs) ---
    /// `https://HOST[:PORT]` at which consoles reach this server, for absolute URLs the server
    /// hands out (the map style's tiles); never taken from a request's `Host` header. At start
    /// it is replaced with the resolved origin ([`Config::public_origin`]), which is what the
    /// handlers read.
    pub public_url: Option<String>,
}

/// Where the data is kept (see docs/operations.md, "PostgreSQL").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Store {
    pub backend: Backend,
    /// For `backend = "postgres"`: a libpq URL or key=value string, possibly with several hosts
    /// (`postgres://dispatch@db1,db2/dispatch`); the one that accepts writes is used. Prefer
    /// the environment (`DISPATCH_POSTGRES_URL`) for a password.
    pub postgres_url: Option<String>,
    /// For `backend = "postgres"`: refuse to start unless the primary's COMMIT waits for a
    /// synchronous standby then (a high-availability installation, where a confirmed order must
    /// survive the loss of the primary).
    pub require_synchronous_standby: bool,
}

/// The database backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// One SQLite file, `dispatch.sqlite` in the data directory.
    #[default]
    Sqlite,
    /// A PostgreSQL server (under Patroni for failover), at `postgres_url`.
    Postgres,
}

impl Store {
    /// The PostgreSQL connection settings, for `backend = "postgres"`.
    ///
    /// # Errors
    /// When the backend is SQLite, or `postgres_url` is unset or invalid.
    pub fn postgres(&self) -> anyhow::Result<crate::store::postgres::PostgresSettings> {
        anyhow::ensure!(
            self.backend == Backend::Postgres,
            "the store is SQLite ([store] backend), not PostgreSQL"
        );
        let url = self.postgres_url.as_deref().ok_or_else(|| {
            anyhow::anyhow!(
                "[store] backend = \"postgres\" needs postgres_url (or DISPATCH_POSTGRES_URL)"
            )
        })?;
        crate::store::postgres::PostgresSettings::parse(url)
    }

    fn validate(&self, backup: Option<&ScheduledBackups>) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            self.postgres()?;
            anyhow::ensure!(
                backup.is_none(),
                "[backup] copies the SQLite file; with [store] backend = \"postgres\" back up \
                 PostgreSQL itself (pg_basebackup and WAL archiving, docs/operations.md)"
            );
        }
        Ok(())
    }
}

/// Shortest `metrics_token` accepted: a secret that cannot be guessed.
pub const MIN_METRICS_TOKEN_CHARS: usize = 32;

/// The escalation ladder, per incident priority (index 0 = priority 0, the most urgent).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Escalation {
    /// No device receipt within this many seconds: console alert and the SMS fallback.
    pub receipt_secs: [u64; 5],
    /// No acknowledgement by the officer within this many seconds: console alert and the next
    /// recommended unit proposed.
    pub acknowledge_secs: [u64; 5],
    /// Still undecided after this many seconds: the order expires and the unit is released.
    pub expire_secs: [u64; 5],
    /// How often the server looks for orders due to escalate, in milliseconds.
    pub sweep_millis: u64,
}

impl Default for Escalation {
    fn default() -> Self {
        Self {
            receipt_secs: [10, 15, 20, 30, 60],
            acknowledge_secs: [30, 45, 60, 90, 180],
            expire_secs: [600, 900, 1200, 1800, 3600],
            sweep_millis: 1000,
        }
    }
}

impl Escalation {
    /// Seconds of `ladder` for `priority` (priorities above 4 use the last step).
    pub fn for_priority(ladder: &[u64; 5], priority: i64) -> u64 {
        ladder[usize::try_from(priority.clamp(0, 4)).unwrap_or(4)]
    }

    fn validate(&self) -> anyhow::Result<()> {
        for p in 0..5 {
            let (r, a, e) = (
                self.receipt_secs[p],
                self.acknowledge_secs[p],
                self.expire_secs[p],
            );
            anyhow::ensure!(
                r >= 1 && r <= a && a < e,
                "escalation for priority {p}: need 1 <= receipt_secs ({r}) <= acknowledge_secs ({a}) < expire_secs ({e})"
            );
        }
        anyhow::ensure!(
            (50..=60_000).contains(&self.sweep_millis),
            "escalation.sweep_millis must be 50 to 60000"
        );
        Ok(())
    }
}

/// When the attention review raises an incident (see `domain::attention::Reason`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Attention {
    /// An incident with no order at all past this many seconds (per priority, 0 first) raises
    /// `dispatch_overdue`.
    pub dispatch_target_secs: [u64; 5],
    /// A unit on scene that sent nothing (no status, text or decision) for this many seconds
    /// raises `welfare_check`; an operator acknowledging that alert restarts the timer.
    pub welfare_check_secs: u64,
}

impl Default for Attention {
    fn default() -> Self {
        Self {
            dispatch_target_secs: [30, 60, 180, 600, 1800],
            welfare_check_secs: 20 * 60,
        }
    }
}

impl Attention {
    fn validate(&self) -> anyhow::Result<()> {
        for (p, secs) in self.dispatch_target_secs.iter().enumerate() {
            anyhow::ensure!(
                *secs >= 1,
                "attention.dispatch_target_secs for priority {p} must be at least 1"
            );
        }
        anyhow::ensure!(
            self.welfare_check_secs >= 1,
            "attention.welfare_check_secs must be at least 1"
        );
        Ok(())
    }
}

/// Which earlier incidents a new call may duplicate: every open one, and the ones closed or
/// created within the window, when within the radius or at the same address.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Intake {
    pub duplicate_window_secs: u64,
    pub duplicate_radius_m: f64,
}

impl Default for Intake {
    fn default() -> Self {
        Self {
            duplicate_window_secs: 3600,
            duplicate_radius_m: 150.0,
        }
    }
}

impl Intake {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=7 * 24 * 3600).contains(&self.duplicate_window_secs),
            "intake.duplicate_window_secs must be 1 to 604800"
        );
        anyhow::ensure!(
            (1.0..=10_000.0).contains(&self.duplicate_radius_m),
            "intake.duplicate_radius_m must be 1 to 10000"
        );
        Ok(())
    }
}

/// Login protection and session limits (see docs/operations.md, "Accounts and sessions").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Accounts {
    /// This many wrong passwords in a row lock the account.
    pub lockout_failures: u32,
    /// For this long; 0 keeps it locked until an admin unlocks it.
    pub lockout_secs: u64,
    /// Login attempts one source address may make per minute; past them it gets 429.
    pub login_attempts_per_minute: u32,
    /// Password checks (argon2) run on this many threads at most, off the request path, so a
    /// login flood cannot starve dispatch (default: half the cores, at least one).
    pub password_workers: usize,
    /// Password checks started per second across all workers at most (0: no cap): what a login
    /// flood from many addresses can take from dispatch, whose cores it shares.
    pub password_checks_per_second: u32,
    /// A session with no request for this long ends, per role.
    pub idle_timeout_secs: PerRole,
    /// New passwords need at least this many characters (12 or more).
    pub minimum_password_chars: usize,
    /// Roles that must log in with a second factor (TOTP): an account of such a role without
    /// one can only enrol one until it has.
    pub second_factor_roles: Vec<crate::domain::Role>,
}

/// A value for each operator role.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerRole {
    pub operator: u64,
    pub supervisor: u64,
    pub admin: u64,
}

impl PerRole {
    pub fn of(&self, role: crate::domain::Role) -> u64 {
        match role {
            crate::domain::Role::Operator => self.operator,
            crate::domain::Role::Supervisor => self.supervisor,
            crate::domain::Role::Admin => self.admin,
        }
    }
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            lockout_failures: 5,
            lockout_secs: 15 * 60,
            login_attempts_per_minute: 20,
            password_workers: std::thread::available_parallelism()
                .map_or(1, |n| (n.get() / 2).max(1)),
            password_checks_per_second: 2,
            idle_timeout_secs: PerRole {
                operator: 30 * 60,
                supervisor: 30 * 60,
                admin: 30 * 60,
            },
            minimum_password_chars: 12,
            second_factor_roles: vec![crate::domain::Role::Supervisor, crate::domain::Role::Admin],
        }
    }
}

impl Accounts {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=100).contains(&self.lockout_failures),
            "accounts.lockout_failures must be 1 to 100"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.login_attempts_per_minute),
            "accounts.login_attempts_per_minute must be 1 to 10000"
        );
        anyhow::ensure!(
            (1..=64).contains(&self.password_workers),
            "accounts.password_workers must be 1 to 64"
        );
        anyhow::ensure!(
            self.password_checks_per_second <= 1000,
            "accounts.password_checks_per_second must be 0 (no cap) to 1000"
        );
        for (role, secs) in [
            ("operator", self.idle_timeout_secs.operator),
            ("supervisor", self.idle_timeout_secs.supervisor),
            ("admin", self.idle_timeout_secs.admin),
        ] {
            anyhow::ensure!(
                secs >= 1,
                "accounts.idle_timeout_secs.{role} must be at least 1"
            );
        }
        anyhow::ensure!(
            (12..=128).contains(&self.minimum_password_chars),
            "accounts.minimum_password_chars must be 12 to 128"
        );
        Ok(())
    }
}

/// Backups the server takes itself, each verified, the oldest removed past `keep`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledBackups {
    /// Where each backup gets a directory of its own (`dispatch-<UTC time>`).
    pub dir: PathBuf,
    /// Seconds between backups (the first comes this long after start).
    #[serde(default = "default_backup_every")]
    pub every_secs: u64,
    /// Verified backups kept; older ones are removed.
    #[serde(default = "default_backup_keep")]
    pub keep: usize,
    /// The most MiB a second a backup copies and hashes (0: no limit), so that it leaves
    /// dispatch its share of the disk and the cores.
    #[serde(default = "default_backup_max_rate")]
    pub max_rate_mib_s: u32,
}

fn default_backup_max_rate() -> u32 {
    crate::backup::pace::DEFAULT_MIB_PER_S
}

fn default_backup_every() -> u64 {
    3600
}

fn default_backup_keep() -> usize {
    48
}

/// An SMS gateway inside the agency's network, reached by HTTP POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsGateway {
    /// Where to POST `{"to": "<number>", "text": "<message>", "reference": "<id>"}`.
    pub url: String,
    /// The text, with `{call_sign}`, `{kind}`, `{priority}`, `{address}`, `{incident_id}`,
    /// `{order_id}` filled in.
    #[serde(default = "default_sms_template")]
    pub template: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default)]
    pub token: Option<String>,
    /// Attempts before the message is marked failed.
    #[serde(default = "default_sms_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_sms_timeout")]
    pub timeout_secs: u64,
    /// Accept the gateway's certificate without verification (a gateway with a self-signed
    /// certificate on an isolated network). Plain `http://` URLs need no TLS at all.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

fn default_sms_template() -> String {
    "112 ORDER {call_sign}: {kind} (P{priority}) at {address}. Incident {incident_id}, order {order_id}. Open the tablet.".to_owned()
}

fn default_sms_attempts() -> u32 {
    3
}

fn default_sms_timeout() -> u64 {
    5
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            data_dir: PathBuf::from("dispatch-data"),
            tls_cert: None,
            tls_key: None,
            map: None,
            tiles_mbtiles: None,
            tiles_pmtiles: None,
            tls_names: Vec::new(),
            stale_fix_secs: 120,
            unit_kinds: DEFAULT_UNIT_KINDS.iter().map(|k| (*k).to_owned()).collect(),
            heartbeat_secs: 20,
            enrolment_code_ttl_secs: 900,
            session_ttl_secs: 12 * 3600,
            accounts: Accounts::default(),
            trail_sample_secs: 10,
            inflight_window: 64,
            escalation: Escalation::default(),
            attention: Attention::default(),
            intake: Intake::default(),
            link_lost_secs: 60,
            sms: None,
            backup: None,
            store: Store::default(),
            server_urls: Vec::new(),
            metrics_token: None,
            response_plans: Vec::new(),
            public_url: None,
        }
    }
}

/// Overrides from flags or the environment; `None` keeps the file's value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 0.0.0.0:8443.
    #[arg(long, env = "DISPATCH_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and generated certificate.
    #[arg(long, env = "DISPATCH_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain (default: self-signed, generated in the data directory).
    #[arg(long, env = "DISPATCH_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "DISPATCH_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// OpenStreetMap extract (.osm.pbf) for drive-time recommendations.
    #[arg(long, env = "DISPATCH_MAP", global = true)]
    pub map: Option<PathBuf>,
    /// Roles that must log in with a second factor, comma-separated, or `none`
    /// (`[accounts] second_factor_roles`; default supervisor,admin).
    #[arg(long, env = "DISPATCH_SECOND_FACTOR_ROLES", global = true)]
    pub second_factor_roles: Option<String>,
    /// The bearer token `GET /metrics` needs (`metrics_token`); prefer the environment variable,
    /// which other users cannot read in the process list.
    #[arg(
        long,
        env = "DISPATCH_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// The PostgreSQL URL (`[store] postgres_url`, which `[store] backend = "postgres"` uses);
    /// prefer the environment variable for a password.
    #[arg(
        long,
        env = "DISPATCH_POSTGRES_URL",
        global = true,
        hide_env_values = true
    )]
    pub postgres_url: Option<String>,
    /// The storage backend (`[store] backend`): `sqlite` or `postgres`.
    #[arg(long, env = "DISPATCH_STORE_BACKEND", global = true, value_enum)]
    pub store_backend: Option<Backend>,
}

impl Config {
    /// Creates the data directory readable by its owner only (mode 0700), unless it exists.
    ///
    /// # Errors
    /// When it cannot be created.
    pub fn prepare_data_dir(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))
    }

    /// Reads `path` if given (a missing explicit file is an error), then applies `overrides`.
    ///
    /// # Errors
    /// When the file cannot be read or parsed, or a value is out of range.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => Self::default(),
        };
        if let Some(v) = overrides.listen {
            config.listen = v;
        }
        if let Some(v) = &overrides.data_dir {
            config.data_dir.clone_from(v);
        }
        if let Some(v) = &overrides.tls_cert {
            config.tls_cert = Some(v.clone());
        }
        if let Some(v) = &overrides.tls_key {
            config.tls_key = Some(v.clone());
        }
        if let Some(v) = &overrides.map {
            config.map = Some(v.clone());
        }
        if let Some(v) = &overrides.metrics_token {
            config.metrics_token = Some(v.clone());
        }
        if let Some(v) = &overrides.postgres_url {
            config.store.postgres_url = Some(v.clone());
        }
        if let Some(v) = overrides.store_backend {
            config.store.backend = v;
        }
        if let Some(v) = &overrides.second_factor_roles {
            config.accounts.second_factor_roles = match v.trim() {
                "none" | "" => Vec::new(),
                list => list
                    .split(',')
                    .map(|r| crate::domain::Role::parse(r.trim()))
                    .collect::<Result<_, _>>()
                    .context("--second-factor-roles")?,
            };
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "tls_cert and tls_key must be given together"
        );
        anyhow::ensure!(
            self.heartbeat_secs >= 1,
            "heartbeat_secs must be at least 1"
        );
        anyhow::ensure!(
            self.stale_fix_secs >= 1,
            "stale_fix_secs must be at least 1"
        );
        anyhow::ensure!(
            !self.unit_kinds.is_empty(),
            "unit_kinds must name at least one kind"
        );
        for kind in &self.unit_kinds {
            crate::domain::code("unit_kinds", kind).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        anyhow::ensure!(
            (1..=10_000).contains(&self.inflight_window),
            "inflight_window must be 1 to 10000"
        );
        self.escalation.validate()?;
        self.attention.validate()?;
        self.intake.validate()?;
        self.accounts.validate()?;
        self.store.validate(self.backup.as_ref())?;
        anyhow::ensure!(
            self.session_ttl_secs >= 60,
            "session_ttl_secs must be at least 60"
        );
        anyhow::ensure!(
            self.link_lost_secs >= 1,
            "link_lost_secs must be at least 1"
        );
        if let Some(sms) = &self.sms {
            anyhow::ensure!(
                sms.url.starts_with("http://") || sms.url.starts_with("https://"),
                "sms.url must be an http:// or https:// URL"
            );
            anyhow::ensure!(sms.max_attempts >= 1, "sms.max_attempts must be at least 1");
        }
        if let Some(backup) = &self.backup {
            anyhow::ensure!(
                backup.every_secs >= 1,
                "backup.every_secs must be at least 1"
            );
            anyhow::ensure!(
                (1..=10_000).contains(&backup.keep),
                "backup.keep must be 1 to 10000"
            );
        }
        for url in &self.server_urls {
            anyhow::ensure!(
                plain_origin(url, &["https"]).is_some(),
                "server_urls: {url:?} must look like https://HOST[:PORT] with no path"
            );
        }
        if let Some(token) = &self.metrics_token {
            anyhow::ensure!(
                token.len() >= MIN_METRICS_TOKEN_CHARS && token.chars().all(|c| c.is_ascii_graphic()),
                "metrics_token must be at least {MIN_METRICS_TOKEN_CHARS} printable ASCII characters without spaces"
            );
        }
        for plan in &self.response_plans {
            plan.validate()?;
        }
        if let Some(url) = &self.public_url {
            parse_public_url(url)?;
        }
        Ok(())
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("dispatch.sqlite")
    }
}

impl Config {
    /// The origin for absolute URLs: `public_url` when set; otherwise `https://` with the
    /// first of `tls_names` and the bound port, or else the bound address itself; `None` when
    /// the listener is on an unspecified address (0.0.0.0, ::) and no name is configured, as
    /// no one address would be right for every console (URLs are then relative).
    ///
    /// # Errors
    /// When `public_url` is set and malformed (also refused when the configuration loads).
    pub fn public_origin(&self, bound: SocketAddr) -> anyhow::Result<Option<String>> {
        if let Some(url) = &self.public_url {
            return parse_public_url(url).map(Some);
        }
        let port = bound.port();
        Ok(match self.tls_names.first() {
            Some(name) if name.parse::<std::net::Ipv6Addr>().is_ok() => {
                Some(format!("https://[{name}]:{port}"))
            }
            Some(name) => Some(format!("https://{name}:{port}")),
            None if bound.ip().is_unspecified() => None,
            None => Some(format!("https://{bound}")),
        })
    }
}

/// `public_url` as an origin (`scheme://host[:port]`, no trailing slash).
fn parse_public_url(url: &str) -> anyhow::Result<String> {
    let bad = || {
        anyhow::anyhow!("public_url must look like https://HOST[:PORT] with no path, got {url:?}")
    };
    plain_origin(url, &["https", "http"]).ok_or_else(bad)
}

/// `url` as an origin (`scheme://host[:port]`) when it is one of `schemes` with a host and
/// nothing else (no path, query, fragment or user).
fn plain_origin(url: &str, schemes: &[&str]) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let plain = schemes.contains(&parsed.scheme())
        && parsed.host_str().is_some()
        && parsed.path() == "/"
        && parsed.query().is_none()
        && parsed.fragment().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none();
    plain.then(|| parsed.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_origin_is_configured_or_derived_never_guessed() {
        let bound: SocketAddr = "10.0.0.5:8443".parse().unwrap();
        let mut c = Config {
            public_url: Some("https://cad.police.example:9443/".into()),
            tls_names: vec!["other.example".into()],
            ..Config::default()
        };
        c.validate().unwrap();
        let origin = |c: &Config, bound| c.public_origin(bound).unwrap();
        assert_eq!(
            origin(&c, bound).as_deref(),
            Some("https://cad.police.example:9443")
        );
        c.public_url = None;
        assert_eq!(
            origin(&c, bound).as_deref(),
            Some("https://other.example:8443")
        );
        c.tls_names = vec!["fd00::5".into()];
        assert_eq!(origin(&c, bound).as_deref(), Some("https://[fd00::5]:8443"));
        c.tls_names.clear();
        assert_eq!(origin(&c, bound).as_deref(), Some("https://10.0.0.5:8443"));
        assert_eq!(origin(&c, "0.0.0.0:8443".parse().unwrap()), None);
        for bad in [
            "cad.example",
            "ftp://cad.example",
            "https://cad.example/console",
            "https://cad.example/?a=1",
            "https://user@cad.example",
        ] {
            c.public_url = Some(bad.into());
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains("public_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dispatchd.example.toml");
        let c = Config::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 8443);
        assert!(c.response_plans.iter().any(|p| p.kind == "burglary"));
        assert_eq!(c.unit_kinds, DEFAULT_UNIT_KINDS);
    }

    #[test]
    fn server_urls_and_the_metrics_token_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        for (toml, problem) in [
            ("server_urls = [\"http://10.0.0.5:8443\"]", "server_urls"),
            (
                "server_urls = [\"https://10.0.0.5:8443/api\"]",
                "server_urls",
            ),
            ("metrics_token = \"short\"", "metrics_token"),
            (
                "metrics_token = \"a token with spaces that is long enough\"",
                "metrics_token",
            ),
        ] {
            std::fs::write(&p, toml).unwrap();
            let e = Config::load(Some(&p), &Overrides::default()).unwrap_err();
            assert!(format!("{e:#}").contains(problem), "{toml}: {e:#}");
        }
        let good = "server_urls = [\"https://10.0.0.5:8443\", \"https://standby\"]\n\
                    metrics_token = \"0123456789abcdef0123456789abcdef\"";
        std::fs::write(&p, good).unwrap();
        let c = Config::load(Some(&p), &Overrides::default()).unwrap();
        assert_eq!(c.server_urls.len(), 2);
    }

    #[test]
    fn unit_kinds_must_be_codes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        for (toml, problem) in [
            ("unit_kinds = []", "at least one kind"),
            (
                "unit_kinds = [\"patrol_car\", \"Boat!\"]",
                "`unit_kinds` must be",
            ),
        ] {
            std::fs::write(&p, toml).unwrap();
            let e = Config::load(Some(&p), &Overrides::default()).unwrap_err();
            assert!(format!("{e:#}").contains(problem), "{toml}: {e:#}");
        }
        std::fs::write(&p, "unit_kinds = [\"boat\"]").unwrap();
        let c = Config::load(Some(&p), &Overrides::default()).unwrap();
        assert_eq!(c.unit_kinds, ["boat"]);
    }

    #[test]
    fn overrides_win_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:1\"\n").unwrap();
        let o = Overrides {
            listen: Some("127.0.0.1:2".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(Config::load(Some(&p), &o).unwrap().listen.port(), 2);
        std::fs::write(&p, "lisen = \"127.0.0.1:1\"\n").unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&p), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("lisen"), "{e}");
    }
}
