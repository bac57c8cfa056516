//! End-to-end test harness: the real server (in-process on a random port, or as a `dispatchd`
//! process that tests can kill -9), operator HTTP clients, enrolled field clients, raw channel
//! sockets and database snapshots.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dispatch_server::domain::{Actor, Role};
use dispatch_server::{auth, Application, Config};
use field_client::{Client, ClientOptions, Event, Trust};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "granite harbour signal 41";

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `fut` with [`PATIENCE`], failing with `what` if it takes longer.
///
/// # Panics
/// On timeout.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The server running inside the test process.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub fingerprint: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The server's PostgreSQL database, when the tests run on PostgreSQL ([`backend`]).
    database: Option<backend::TestDatabase>,
    backend: &'static str,
}

/// Starts a server on 127.0.0.1:0 with a fresh data directory and one admin.
///
/// # Panics
/// When the server cannot start.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The Helsinki extract shipped in `data/`.
pub fn helsinki_map() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/helsinki.osm.pbf")
}

/// Like [`spawn_app`], with the configuration adjusted by `adjust` first.
///
/// # Panics
/// When the server cannot start.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&dir);
    adjust(&mut config);
    let database = backend::TestDatabase::for_config(&mut config).await;
    start_app(config, dir, database, true).await
}

/// The two nodes of a cluster on `database`, each a server in this process as [`spawn_app`]
/// starts it; the admin is created once, through the first.
///
/// # Panics
/// When a server cannot start.
pub async fn spawn_cluster(database: backend::TestDatabase) -> (TestApp, TestApp) {
    spawn_cluster_with(database, |_| {}).await
}

/// Like [`spawn_cluster`], with both nodes' configuration adjusted by `adjust` first.
///
/// # Panics
/// When a server cannot start.
pub async fn spawn_cluster_with(
    database: backend::TestDatabase,
    adjust: impl Fn(&mut Config),
) -> (TestApp, TestApp) {
    let (mut first, second) = cluster_on(&database.url(), adjust).await;
    first.database = Some(database);
    (first, second)
}

/// [`spawn_cluster`] on the database at `url` (which may name several hosts), which the
/// caller owns.
///
/// # Panics
/// When a server cannot start.
pub async fn spawn_cluster_on(url: &str) -> (TestApp, TestApp) {
    cluster_on(url, |_| {}).await
}

async fn cluster_on(url: &str, adjust: impl Fn(&mut Config)) -> (TestApp, TestApp) {
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut first, mut second) = (test_config(&first_dir), test_config(&second_dir));
    for config in [&mut first, &mut second] {
        config.store.backend = dispatch_server::config::Backend::Postgres;
        config.store.postgres_url = Some(url.to_owned());
        adjust(config);
    }
    let first = start_app(first, first_dir, None, true).await;
    let second = start_app(second, second_dir, None, false).await;
    (first, second)
}

/// A test server's configuration, its data directory in `dir`.
fn test_config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        heartbeat_secs: 5,
        ..Config::default()
    };
    // Tests log in with a password alone unless they test the second factor themselves.
    config.accounts.second_factor_roles.clear();
    config
}

async fn start_app(
    config: Config,
    dir: tempfile::TempDir,
    database: Option<backend::TestDatabase>,
    add_admin: bool,
) -> TestApp {
    let backend = match config.store.backend {
        dispatch_server::config::Backend::Sqlite => "sqlite",
        dispatch_server::config::Backend::Postgres => "postgres",
    };
    let app = Application::build(config).await.unwrap();
    if add_admin {
        let hash = auth::hash_password(ADMIN_PASSWORD).unwrap();
        app.state()
            .dispatch
            .store
            .create_operator(ADMIN, &hash, Role::Admin, &Actor::System, None)
            .await
            .unwrap();
    }
    let addr = app.local_addr().unwrap();
    let fingerprint = app.fingerprint().to_owned();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("https://{addr}"),
        fingerprint,
        dir,
        shutdown: Some(tx),
        task: Some(task),
        database,
        backend,
    }
}

impl TestApp {
    /// The storage backend the server runs on: `sqlite` or `postgres` (its `/metrics` label).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data").join("dispatch.sqlite")
    }

    /// Where the server keeps its data, to read it behind its back.
    pub fn database_at(&self) -> checker::Database {
        match &self.database {
            Some(database) => checker::Database::Postgres(database.url()),
            None => checker::Database::Sqlite(self.db_path()),
        }
    }

    /// The one text value each of `queries` selects, from the server's database (either
    /// backend), on one connection.
    ///
    /// # Panics
    /// When the database cannot be read.
    pub async fn query_texts(&self, queries: Vec<String>) -> Vec<String> {
        if let Some(database) = &self.database {
            return database.query_texts(queries).await;
        }
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.db_path())
            .read_only(true)
            .connect()
            .await
            .unwrap();
        let mut values = Vec::with_capacity(queries.len());
        for sql in &queries {
            values.push(sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap());
        }
        values
    }

    /// Logs in as the admin.
    pub async fn admin(&self) -> Operator {
        Operator::login(&self.base, ADMIN, ADMIN_PASSWORD)
            .await
            .unwrap()
    }

    /// Stops the server gracefully.
    ///
    /// # Panics
    /// When the server ended with an error.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            within("server shutdown", task).await.unwrap().unwrap();
        }
    }
}

/// A `dispatchd` child process with its own data directory, for crash tests.
pub struct ServerProcess {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    pub base: String,
    pub data_dir: PathBuf,
    /// The URL of its PostgreSQL database, when the tests run on PostgreSQL.
    postgres: Option<String>,
}

/// Path of a workspace binary built next to the test executable (`make test` builds them).
///
/// # Panics
/// When the binary has not been built.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs `dispatchd --data-dir DATA ARGS…` (a command beside the server: backup, export, …);
/// answers whether it succeeded and what it printed on both outputs.
///
/// # Panics
/// When the binary cannot be started.
pub async fn dispatchd(data: &Path, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(binary("dispatchd"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A free port on loopback.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl ServerProcess {
    /// Creates the admin in `data_dir` (if missing) and starts the server on `addr`.
    ///
    /// # Errors
    /// When the process does not start or does not become healthy.
    pub async fn start(data_dir: &Path, addr: SocketAddr) -> anyhow::Result<Self> {
        Self::launch(data_dir, addr, None).await
    }

    /// The certificate fingerprint the server wrote to its data directory.
    ///
    /// # Panics
    /// When the file is missing.
    pub fn fingerprint(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("tls").join("cert.sha256"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// SIGKILL: no shutdown code runs.
    ///
    /// # Panics
    /// When the process cannot be killed.
    pub async fn kill9(mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("dispatch.sqlite")
    }

    /// Where the server keeps its data, to read it behind its back.
    pub fn database_at(&self) -> checker::Database {
        match &self.postgres {
            Some(url) => checker::Database::Postgres(url.clone()),
            None => checker::Database::Sqlite(self.db_path()),
        }
    }
}

/// A logged-in console user speaking the JSON API.
#[derive(Clone)]
pub struct Operator {
    pub http: reqwest::Client,
    pub base: String,
}

/// A status and JSON body.
pub type Reply = (StatusCode, Value);

impl Operator {
    /// An HTTP client that trusts any certificate (tests only) and keeps cookies.
    ///
    /// # Panics
    /// When the client cannot be built.
    pub fn anonymous(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .cookie_store(true)
            .build()
            .unwrap();
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// # Errors
    /// When the login is refused.
    pub async fn login(base: &str, username: &str, password: &str) -> anyhow::Result<Self> {
        let op = Self::anonymous(base);
        let (status, body) = op
            .post(
                "/api/login",
                json!({ "username": username, "password": password }),
            )
            .await;
        anyhow::ensure!(status == StatusCode::OK, "login failed: {status} {body}");
        Ok(op)
    }

    /// Sends a request built by hand (other headers, another cookie) and reads the answer.
    ///
    /// # Panics
    /// When the request cannot be sent.
    pub async fn reply(r: reqwest::RequestBuilder) -> Reply {
        let res = r.send().await.expect("request failed");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Reply {
        Self::reply(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        Self::reply(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    /// Posts a body as it is, for malformed-input tests.
    pub async fn post_raw(&self, path: &str, body: &str) -> Reply {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        Self::reply(r).await
    }

    /// Posts with an `Idempotency-Key`.
    pub async fn post_keyed(&self, path: &str, key: &str, body: Value) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("idempotency-key", key)
            .json(&body);
        Self::reply(request).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        Self::reply(self.http.patch(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        Self::reply(self.http.put(format!("{}{path}", self.base)).json(&body)).await
    }

    /// Creates an account (as this admin) and logs it in.
    ///
    /// # Panics
    /// When the server refuses either.
    pub async fn add_user(&self, username: &str, password: &str, role: &str) -> Operator {
        let (status, body) = self
            .post(
                "/api/users",
                json!({ "username": username, "password": password, "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Operator::login(&self.base, username, password)
            .await
            .expect("the new account logs in")
    }

    /// Creates a unit and returns its id.
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn create_unit(&self, call_sign: &str, capabilities: &[&str]) -> i64 {
        let (status, body) = self
            .post("/api/units", json!({ "call_sign": call_sign, "kind": "patrol_car", "capabilities": capabilities }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Creates a burglary at `address` (central Helsinki) and assigns `unit_id` to it; returns
    /// the incident and order ids.
    ///
    /// # Panics
    /// When the server refuses either request.
    pub async fn dispatch_to(&self, unit_id: i64, address: &str) -> (i64, i64) {
        let (status, incident) = self
            .post("/api/incidents", json!({ "kind": "burglary", "priority": 1, "lat": 60.17, "lon": 24.94, "address": address }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{incident}");
        let incident_id = incident["id"].as_i64().unwrap();
        let (status, order) = self
            .post(
                &format!("/api/incidents/{incident_id}/assignments"),
                json!({ "unit_id": unit_id }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        assert_eq!(order["state"], "queued");
        (incident_id, order["id"].as_i64().unwrap())
    }

    /// Polls the order until it reaches `state`; returns it.
    pub async fn wait_order_state(&self, order_id: i64, state: &str) -> Value {
        within(&format!("order {order_id} to be {state}"), async {
            loop {
                let (_, order) = self.get(&format!("/api/orders/{order_id}")).await;
                if order["state"] == state {
                    return order;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// The kinds of an incident's timeline events, in order.
    ///
    /// # Panics
    /// When the timeline cannot be read.
    pub async fn timeline_kinds(&self, incident_id: i64) -> Vec<String> {
        let (status, timeline) = self
            .get(&format!("/api/incidents/{incident_id}/timeline"))
            .await;
        assert_eq!(status, StatusCode::OK, "{timeline}");
        timeline
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    }

    /// # Panics
    /// When the server refuses.
    pub async fn enrolment_code(&self, unit_id: i64) -> String {
        let (status, body) = self
            .post(&format!("/api/units/{unit_id}/enrolment-code"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["code"].as_str().unwrap().to_owned()
    }

    /// Creates a unit, enrols a device for it and starts its client.
    pub async fn unit_with_device(
        &self,
        fingerprint: &str,
        call_sign: &str,
        capabilities: &[&str],
    ) -> Device {
        let unit_id = self.create_unit(call_sign, capabilities).await;
        let code = self.enrolment_code(unit_id).await;
        let dir = tempfile::tempdir().unwrap();
        let trust = Trust::pin(fingerprint).unwrap();
        let credential = field_client::enroll(&self.base, &trust, &code, Some(call_sign))
            .await
            .unwrap();
        credential.save(dir.path()).unwrap();
        Device::start(dir).await
    }
}

impl Operator {
    /// Like [`Operator::unit_with_device`], with the device reporting a fix at `(lat, lon)`;
    /// returns once the server has it.
    pub async fn unit_at(
        &self,
        fingerprint: &str,
        call_sign: &str,
        capabilities: &[&str],
        (lat, lon): (f64, f64),
    ) -> Device {
        let device = self
            .unit_with_device(fingerprint, call_sign, capabilities)
            .await;
        let fix = dispatch_protocol::Location {
            lat,
            lon,
            accuracy_m: Some(5.0),
            heading_deg: None,
            speed_mps: None,
            fix_time_ms: field_client::unix_ms(),
        };
        device.client.location(fix).await.unwrap();
        within("the unit's first fix", async {
            loop {
                let (_, unit) = self.get(&format!("/api/units/{}", device.unit_id)).await;
                if !unit["position"].is_null() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        device
    }
}

/// An enrolled field client running its event loop.
pub struct Device {
    pub client: Client,
    pub events: mpsc::Receiver<Event>,
    pub dir: tempfile::TempDir,
    pub unit_id: i64,
    pub device_id: i64,
    task: JoinHandle<()>,
}

impl Device {
    /// Starts the client of the credential saved in `dir`.
    ///
    /// # Panics
    /// When the client cannot start.
    pub async fn start(dir: tempfile::TempDir) -> Self {
        let options = ClientOptions::load(dir.path()).unwrap();
        let (unit_id, device_id) = (options.credential.unit_id, options.credential.device_id);
        let (client, event_loop) = Client::new(options).await.unwrap();
        let (tx, events) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let _ = event_loop.run(tx).await;
        });
        Self {
            client,
            events,
            dir,
            unit_id,
            device_id,
            task,
        }
    }

    /// The next event matching `pick`, skipping others.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> T {
        within(what, async {
            loop {
                let e = self
                    .events
                    .recv()
                    .await
                    .unwrap_or_else(|| panic!("event loop ended waiting for {what}"));
                if let Some(t) = pick(&e) {
                    return t;
                }
            }
        })
        .await
    }

    /// Stops the client as a crash would: the task is aborted wherever it is.
    pub async fn crash(self) -> tempfile::TempDir {
        self.task.abort();
        let _ = self.task.await;
        drop(self.client);
        self.dir
    }
}

/// Row counts of every table, and the newest event id: equal snapshots mean nothing changed.
/// The audit records of refusals themselves (a failed login, a denied role, throttling) are not
/// counted: a refused request records that it was refused, and changes nothing else.
///
/// # Panics
/// When the database cannot be read.
pub async fn db_snapshot(app: &TestApp) -> BTreeMap<String, i64> {
    let tables = [
        "operators",
        "units",
        "devices",
        "enrolment_codes",
        "incidents",
        "orders",
        "deliveries",
        "device_actions",
        "events WHERE kind NOT IN ('login_failed', 'access_denied', 'login_throttled')",
    ];
    let mut queries: Vec<(String, String)> = tables
        .iter()
        .map(|table| {
            let name = table.split(' ').next().unwrap_or(table).to_owned();
            (name, format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"))
        })
        .collect();
    // Every order's state and receipt, and every unit's status, as one text each.
    let list = |row: &str, table: &str| match app.database {
        Some(_) => format!("SELECT COALESCE(string_agg({row}, ',' ORDER BY id), '') FROM {table}"),
        None => format!("SELECT COALESCE(group_concat({row}), '') FROM {table}"),
    };
    queries.push((
        "orders:".into(),
        list(
            "id || ':' || state || ':' || COALESCE(CAST(delivered_at AS TEXT), '')",
            "orders",
        ),
    ));
    queries.push(("units:".into(), list("id || ':' || status", "units")));
    let (names, sql): (Vec<String>, Vec<String>) = queries.into_iter().unzip();
    let values = app.query_texts(sql).await;
    let mut out = BTreeMap::new();
    for (name, value) in names.into_iter().zip(values) {
        if name.ends_with(':') {
            out.insert(format!("{name}{value}"), 0);
        } else {
            out.insert(name, value.parse().unwrap());
        }
    }
    out
}

/// A raw device-channel socket, for sending frames no well-behaved client would.
pub type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens the device channel without saying hello.
///
/// # Errors
/// When the connection or handshake fails.
pub async fn raw_channel(addr: SocketAddr, fingerprint: &str) -> anyhow::Result<RawSocket> {
    let config = Trust::pin(fingerprint)?.client_config()?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let url = format!("wss://{addr}{}", dispatch_protocol::DEVICE_CHANNEL_PATH);
    let (ws, _) = tokio_tungstenite::client_async(url, tls)
        .await
        .context("websocket handshake")?;
    Ok(ws)
}

/// Reads frames until the server closes; returns the close code and reason.
///
/// # Panics
/// When the socket ends without a close frame or the wait times out.
pub async fn expect_close(ws: &mut RawSocket) -> (u16, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    within("close frame", async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(Some(frame))) = m {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            if m.is_err() {
                break;
            }
        }
        panic!("socket ended without a close frame");
    })
    .await
}

/// Sends a text frame.
///
/// # Panics
/// When sending fails.
pub async fn send_text(ws: &mut RawSocket, text: &str) {
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
        .await
        .unwrap();
}

pub mod backend;
pub mod checker;
pub mod dispatching;
pub mod patroni;
pub mod pg_cluster;
pub mod proxy;

/// The next text frame from the server as JSON, skipping pings.
///
/// # Panics
/// When anything else arrives or the wait times out.
pub async fn next_frame(ws: &mut RawSocket) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    within("a frame from the server", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Ping(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    })
    .await
}

/// Sends a device frame and returns the server's answer to its `action_id`, skipping other
/// frames.
pub async fn act(ws: &mut RawSocket, frame: Value) -> Value {
    send_text(ws, &frame.to_string()).await;
    loop {
        let reply = next_frame(ws).await;
        if reply["action_id"] == frame["action_id"] {
            return reply;
        }
    }
}

/// A unit with a device enrolled over HTTP, without a client holding its channel: the unit's
/// id, the device's id and its token.
///
/// # Panics
/// When the server refuses.
pub async fn enrolled(app: &TestApp, admin: &Operator, call_sign: &str) -> (i64, i64, String) {
    let unit_id = admin.create_unit(call_sign, &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let trust = Trust::pin(&app.fingerprint).unwrap();
    let credential = field_client::enroll(&app.base, &trust, &code, None)
        .await
        .unwrap();
    (unit_id, credential.device_id, credential.token)
}

impl Operator {
    /// Enrols a device for `unit_id` over HTTP (`POST /api/devices/enroll`); returns the
    /// device's id and token.
    ///
    /// # Panics
    /// When the server refuses.
    pub async fn enroll_device(&self, unit_id: i64) -> (i64, String) {
        let code = self.enrolment_code(unit_id).await;
        let (status, body) = self
            .post("/api/devices/enroll", json!({ "code": code }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (
            body["device_id"].as_i64().unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }
}

/// Opens the device channel and says hello; returns the socket and the welcome (the `pins`
/// frame that follows it is read and checked too).
///
/// # Panics
/// When the connection fails, the answer is not `welcome`, or `pins` does not follow it with
/// the server's fingerprint.
pub async fn say_hello(
    app: &TestApp,
    device_id: i64,
    token: &str,
    epoch: Option<&str>,
    ack_floor: u64,
) -> (RawSocket, Value) {
    let mut ws = raw_channel(app.addr, &app.fingerprint).await.unwrap();
    let hello = json!({ "type": "hello", "protocol": 1, "device_id": device_id, "token": token,
                        "epoch": epoch, "ack_floor": ack_floor });
    send_text(&mut ws, &hello.to_string()).await;
    let welcome = next_frame(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let pins = next_frame(&mut ws).await;
    assert_eq!(pins, json!({ "type": "pins", "pins": [app.fingerprint] }));
    (ws, welcome)
}

/// Tunes a client for tests: reconnects within half a second and gives up a handshake after
/// two seconds, so a restarted server or a healed link is found again quickly.
pub fn quick_reconnect(options: &mut ClientOptions) {
    options.backoff = field_client::backoff::Backoff {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(500),
    };
    options.connect_timeout = Duration::from_secs(2);
}

impl Device {
    /// Like [`Device::start`], with the client options (backoff, server address…) adjusted by
    /// `adjust` first.
    ///
    /// # Panics
    /// When the client cannot start.
    pub async fn start_with(
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut ClientOptions),
    ) -> Self {
        let mut options = ClientOptions::load(dir.path()).unwrap();
        adjust(&mut options);
        let (unit_id, device_id) = (options.credential.unit_id, options.credential.device_id);
        let (client, event_loop) = Client::new(options).await.unwrap();
        let (tx, events) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            let _ = event_loop.run(tx).await;
        });
        Self {
            client,
            events,
            dir,
            unit_id,
            device_id,
            task,
        }
    }
}

impl Operator {
    /// Like [`Operator::unit_with_device`], with the client options adjusted by `adjust`.
    pub async fn unit_with_device_using(
        &self,
        fingerprint: &str,
        call_sign: &str,
        capabilities: &[&str],
        adjust: impl FnOnce(&mut ClientOptions),
    ) -> Device {
        let unit_id = self.create_unit(call_sign, capabilities).await;
        let code = self.enrolment_code(unit_id).await;
        let dir = tempfile::tempdir().unwrap();
        let trust = Trust::pin(fingerprint).unwrap();
        let credential = field_client::enroll(&self.base, &trust, &code, Some(call_sign))
            .await
            .unwrap();
        credential.save(dir.path()).unwrap();
        Device::start_with(dir, adjust).await
    }
}

impl ServerProcess {
    /// Like [`ServerProcess::start`], with the configuration file `config` (`--config`); the
    /// flags still set the data directory and the address.
    ///
    /// # Errors
    /// When the process does not start or does not become healthy.
    pub async fn start_configured(
        data_dir: &Path,
        addr: SocketAddr,
        config: &Path,
    ) -> anyhow::Result<Self> {
        Self::launch(data_dir, addr, Some(config)).await
    }

    /// Adds the test admin, starts `dispatchd` (with `config` when given) and waits until it
    /// is ready, failing early if it exits.
    async fn launch(
        data_dir: &Path,
        addr: SocketAddr,
        config: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let launch = Launch {
            config,
            ..Launch::default()
        };
        Self::launch_with(data_dir, addr, &launch).await
    }

    /// Starts `dispatchd` as `launch` says and waits until it answers `/healthz` (and, when
    /// `launch.wait_ready`, `/readyz`), failing early if it exits.
    ///
    /// # Errors
    /// When the process does not start or does not become healthy.
    pub async fn launch_with(
        data_dir: &Path,
        addr: SocketAddr,
        launch: &Launch<'_>,
    ) -> anyhow::Result<Self> {
        let postgres = backend::url_for_data_dir(data_dir).await;
        let dispatchd = |wrapped: bool| {
            let mut command = match launch.wrapper.split_first() {
                Some((program, args)) if wrapped => {
                    let mut c = tokio::process::Command::new(program);
                    c.args(args).arg(binary("dispatchd"));
                    c
                }
                _ => tokio::process::Command::new(binary("dispatchd")),
            };
            if let Some(config) = launch.config {
                command.arg("--config").arg(config);
            }
            command.arg("--data-dir").arg(data_dir);
            // Tests log in with a password alone (a config file may still ask for more).
            command.env("DISPATCH_SECOND_FACTOR_ROLES", "none");
            if let Some(url) = &postgres {
                command
                    .env("DISPATCH_STORE_BACKEND", "postgres")
                    .env("DISPATCH_POSTGRES_URL", url);
            }
            command
        };
        if launch.add_admin {
            let status = dispatchd(false)
                .args([
                    "user",
                    "add",
                    "--username",
                    ADMIN,
                    "--role",
                    "admin",
                    "--exists-ok",
                ])
                .env("DISPATCH_NEW_PASSWORD", ADMIN_PASSWORD)
                .stdout(std::process::Stdio::null())
                .status()
                .await?;
            anyhow::ensure!(status.success(), "dispatchd user add failed");
        }
        let mut server = Self {
            child: dispatchd(true)
                .arg("--listen")
                .arg(addr.to_string())
                .env("RUST_LOG", "warn")
                .kill_on_drop(true)
                .spawn()?,
            addr,
            base: format!("https://{addr}"),
            data_dir: data_dir.to_owned(),
            postgres,
        };
        let http = Operator::anonymous(&server.base).http;
        let probe = if launch.wait_ready {
            "readyz"
        } else {
            "healthz"
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(exit) = server.child.try_wait()? {
                anyhow::bail!("dispatchd exited at start with {exit}");
            }
            let ready = http.get(format!("{}/{probe}", server.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(server);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "dispatchd did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id of `dispatchd` (also when it runs under a wrapper that execs it).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// How [`ServerProcess::launch_with`] starts `dispatchd`.
#[derive(Debug, Clone, Copy)]
pub struct Launch<'a> {
    /// `--config` file.
    pub config: Option<&'a Path>,
    /// A program (and its arguments) that runs `dispatchd`, e.g. `fiu-run -x`.
    pub wrapper: &'a [&'a str],
    /// Create the test admin first (`dispatchd user add`), which writes to the database.
    pub add_admin: bool,
    /// Wait for `/readyz` (storage writable), not only `/healthz`.
    pub wait_ready: bool,
}

impl Default for Launch<'_> {
    fn default() -> Self {
        Self {
            config: None,
            wrapper: &[],
            add_admin: true,
            wait_ready: true,
        }
    }
}

/// Logs in and returns the session cookie as `name=value`, for clients that set headers
/// themselves (the console's WebSocket).
///
/// # Panics
/// When the login is refused.
pub async fn session_cookie(base: &str, username: &str, password: &str) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let res = http
        .post(format!("{base}/api/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "login failed");
    let cookie = res
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("login sets a cookie")
        .to_str()
        .unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// Opens the console's live channel with a cookie and, optionally, an `Origin` header.
///
/// # Errors
/// When the connection or handshake fails (e.g. 401 without a session).
pub async fn console_socket(
    addr: SocketAddr,
    fingerprint: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
) -> anyhow::Result<RawSocket> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let config = Trust::pin(fingerprint)?.client_config()?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let mut request = format!("wss://{addr}/api/console/live").into_client_request()?;
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse()?);
    }
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse()?);
    }
    let (ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .context("websocket handshake")?;
    Ok(ws)
}

/// The next JSON text frame of a socket matching `pick`, skipping others.
///
/// # Panics
/// When the socket ends or the wait times out.
pub async fn next_json_matching(
    ws: &mut RawSocket,
    what: &str,
    mut pick: impl FnMut(&Value) -> bool,
) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    within(what, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if pick(&v) {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended waiting for {what}: {other:?}"),
            }
        }
    })
    .await
}

/// Enrols a new device with `code` by running `field-client enroll`; returns its state
/// directory.
///
/// # Panics
/// When enrolment fails.
pub async fn enroll_with_binary(base: &str, fingerprint: &str, code: &str) -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(binary("field-client"))
        .args([
            "enroll",
            "--server",
            base,
            "--pin",
            fingerprint,
            "--code",
            code,
            "--state-dir",
        ])
        .arg(state.path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "enroll failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    state
}

/// A `field-client run` process and its stdout lines.
pub struct AgentProcess {
    pub child: tokio::process::Child,
    pub stdin: tokio::process::ChildStdin,
    pub lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl AgentProcess {
    /// Starts `field-client run --state-dir DIR ARGS…` with extra environment variables.
    ///
    /// # Panics
    /// When the process cannot start.
    pub fn spawn(state_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(binary("field-client"))
            .args(["run", "--state-dir"])
            .arg(state_dir)
            .args(args)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// The next stdout line for which `pick` holds (others are skipped); `None` when the
    /// process closed stdout first.
    pub async fn line_matching(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&str) -> bool,
    ) -> Option<String> {
        within(what, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if pick(&line) {
                    return Some(line);
                }
            }
            None
        })
        .await
    }

    /// Every remaining stdout line until the process exits; and its exit status.
    pub async fn finish(mut self) -> (Vec<String>, std::process::ExitStatus) {
        let mut rest = Vec::new();
        within("the agent to exit", async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                rest.push(line);
            }
        })
        .await;
        let status = within("the agent's exit status", self.child.wait())
            .await
            .unwrap();
        (rest, status)
    }
}
