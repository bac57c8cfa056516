//! A real `dispatchd` release binary as a child process on a temporary data directory: start,
//! admin login over HTTPS, resident memory, kill -9 and restart on the same data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub const ADMIN: &str = "bench-admin";
pub const ADMIN_PASSWORD: &str = "silver comet harbour 27";

/// The running server.
#[derive(Debug)]
pub struct Dispatchd {
    child: tokio::process::Child,
    pub base: String,
    pub data_dir: PathBuf,
}

/// `dispatchd` next to this benchmark's own executable (`cargo build --release` builds both).
///
/// # Errors
/// When it is missing.
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("executable has no directory")?
        .join("dispatchd");
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run `cargo build --release -p dispatch-server --bin dispatchd`",
        path.display()
    );
    Ok(path)
}

/// A free port on loopback.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Dispatchd {
    /// Creates the admin (if missing) and starts the server `bin` (with the configuration file
    /// `config`, if any); returns once `/readyz` answers.
    ///
    /// # Errors
    /// When the binary is missing, the process fails or does not become ready in 60 s.
    pub async fn start(
        bin: &Path,
        data_dir: &Path,
        addr: SocketAddr,
        config: Option<&Path>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(bin.exists(), "{} is missing", bin.display());
        let mut add_admin = tokio::process::Command::new(bin);
        if let Some(config) = config {
            add_admin.arg("--config").arg(config);
        }
        let status = add_admin
            .arg("--data-dir")
            .arg(data_dir)
            .args(["user", "add", "--username", ADMIN, "--role", "admin"])
            .arg("--exists-ok")
            .env("DISPATCH_NEW_PASSWORD", ADMIN_PASSWORD)
            .stdout(std::process::Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "dispatchd user add failed: {status}");
        let mut command = tokio::process::Command::new(bin);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addr.to_string())
            .env("RUST_LOG", "error")
            // The benchmark's admin logs in with a password alone.
            .env("DISPATCH_SECOND_FACTOR_ROLES", "none")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let server = Self {
            child,
            base: format!("https://{addr}"),
            data_dir: data_dir.to_owned(),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "dispatchd did not become ready in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The pinned certificate's SHA-256 fingerprint.
    ///
    /// # Errors
    /// When the file is missing.
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        let path = self.data_dir.join("tls").join("cert.sha256");
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned())
    }

    /// Resident memory of the server process, in bytes.
    ///
    /// # Errors
    /// When the process is gone.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_of(self.child.id().context("dispatchd has exited")?)
    }

    /// `kill -9`, waits for the process to be gone.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?; // SIGKILL on Unix
        self.child.wait().await?;
        Ok(())
    }

    /// A session cookie (`name=value`) of the admin, for the console's live channel.
    ///
    /// # Errors
    /// When login fails.
    pub async fn session_cookie(&self) -> anyhow::Result<String> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()?;
        let res = self.login(&http).await?;
        let cookie = res
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .context("login set no cookie")?
            .to_str()?;
        Ok(cookie.split(';').next().unwrap_or_default().to_owned())
    }

    /// An HTTPS client logged in as the admin (which may also act as operator).
    ///
    /// # Errors
    /// When login fails.
    pub async fn admin(&self) -> anyhow::Result<reqwest::Client> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .pool_max_idle_per_host(256)
            .build()?;
        self.login(&http).await?;
        Ok(http)
    }

    /// Logs `http` in as the admin; the answer carries the session cookie.
    async fn login(&self, http: &reqwest::Client) -> anyhow::Result<reqwest::Response> {
        let res = http
            .post(format!("{}/api/login", self.base))
            .json(&serde_json::json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
            .send()
            .await?;
        anyhow::ensure!(res.status().is_success(), "login: {}", res.status());
        Ok(res)
    }
}

/// `VmRSS` of a process, in bytes.
///
/// # Errors
/// When `/proc/<pid>/status` cannot be read or has no `VmRSS`.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("malformed VmRSS")?
        .parse()?;
    Ok(kb * 1024)
}

/// POSTs JSON and returns the body when the status is `201 Created`.
///
/// # Errors
/// On a transport error or any other status (named with the server's error body).
pub async fn post_created(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let res = http.post(url).json(body).send().await?;
    let status = res.status();
    let text = res.text().await?;
    anyhow::ensure!(
        status == reqwest::StatusCode::CREATED,
        "POST {url}: {status}: {text}"
    );
    Ok(serde_json::from_str(&text)?)
}
