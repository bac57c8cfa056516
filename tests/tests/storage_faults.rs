//! Never a false success, with real storage faults under a real `dispatchd`: its data directory
//! on a small tmpfs that fills up, I/O errors on write and fsync injected with libfiu
//! (`fiu-run`), and a read-only file system. Clients drive logins, incidents, assignments,
//! enrolment codes and device actions through every fault; each answer is written down. After
//! the fault, writes work again by themselves; then the server is killed with -9 and restarted,
//! and every write answered with success must be there, every refused one absent, and no id
//! given twice.
//!
//! Mounting needs root (CI runs as root). Where it is impossible these tests fail saying so:
//! they never pass without having tested anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dispatch_tests::{
    free_addr, raw_channel, send_text, Launch, Operator, RawSocket, ServerProcess, ADMIN,
    ADMIN_PASSWORD,
};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Longest time writes may take to work again after the storage recovers (the bound;
/// they normally work at the very next attempt).
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// A tmpfs mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "STORAGE-FAULT TESTS CANNOT RUN: mounting a tmpfs failed ({}). They need root \
             (CI runs as root); they do not pass without testing.",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { _dir: dir, path }
    }

    fn remount(&self, options: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount {options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Fills the file system of `dir` with one file until it refuses more; returns the file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    let mut small = [0u8; 512];
    small.fill(0x5A);
    while file.write(&small).is_ok_and(|n| n > 0) {}
    let _ = file.sync_all();
    path
}

/// What one write was answered.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// A success, with what it created.
    Saved(Value),
    /// A refusal because of the storage (507, 503, close 1013).
    Refused(u16),
}

/// Every write the clients made, and how it was answered.
#[derive(Debug, Default)]
struct Ledger {
    /// Incident note marker → answer (the incident's id when saved).
    incidents: BTreeMap<String, Answer>,
    /// Session cookie (when saved) → answer.
    logins: Vec<(Option<String>, Answer)>,
    /// Enrolment code (when saved) → answer.
    codes: Vec<(Option<String>, Answer)>,
    /// Unit → answer of its assignment to `incident`.
    assignments: BTreeMap<i64, (i64, Answer)>,
    /// Text from the device → answer (`done`, or the close code).
    texts: BTreeMap<String, Answer>,
    /// Answers that were neither a success nor a storage refusal.
    unexpected: Vec<String>,
}

impl Ledger {
    fn refused(&self) -> usize {
        let refused = |a: &Answer| matches!(a, Answer::Refused(_));
        self.incidents.values().filter(|a| refused(a)).count()
            + self.logins.iter().filter(|(_, a)| refused(a)).count()
            + self.codes.iter().filter(|(_, a)| refused(a)).count()
            + self
                .assignments
                .values()
                .filter(|(_, a)| refused(a))
                .count()
            + self.texts.values().filter(|a| refused(a)).count()
    }

    fn saved(&self) -> usize {
        let saved = |a: &Answer| matches!(a, Answer::Saved(_));
        self.incidents.values().filter(|a| saved(a)).count()
            + self.logins.iter().filter(|(_, a)| saved(a)).count()
            + self.codes.iter().filter(|(_, a)| saved(a)).count()
            + self.assignments.values().filter(|(_, a)| saved(a)).count()
            + self.texts.values().filter(|a| saved(a)).count()
    }

    /// Sorts an HTTP answer: success, storage refusal, or something else (recorded apart).
    fn answer(&mut self, what: &str, status: StatusCode, body: &Value) -> Option<Answer> {
        if status.is_success() {
            return Some(Answer::Saved(body.clone()));
        }
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let storage = matches!(
            (status.as_u16(), code),
            (507, "storage_full") | (503, "storage_unavailable")
        );
        if storage {
            return Some(Answer::Refused(status.as_u16()));
        }
        self.unexpected.push(format!("{what}: {status} {body}"));
        None
    }
}

/// The clients: an admin session, units with enrolled devices waiting to be assigned, and one
/// device connected over a raw socket sending texts.
struct Clients {
    admin: Operator,
    base: String,
    fingerprint: String,
    addr: std::net::SocketAddr,
    /// Units with a device, not yet assigned, and the incident to assign them to.
    free_units: Vec<i64>,
    incident: i64,
    /// The texting unit's device credential.
    texter: (i64, String),
    socket: Option<RawSocket>,
    /// The unit whose enrolment codes are issued.
    code_unit: i64,
    round: usize,
}

impl Clients {
    /// Creates `units` units with enrolled devices, an incident to assign them to, and the
    /// texting device.
    async fn prepare(server: &ServerProcess, units: usize) -> Self {
        let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
            .await
            .unwrap();
        let mut free_units = Vec::new();
        for n in 0..units {
            let unit = admin.create_unit(&format!("F-{n}"), &["patrol"]).await;
            admin.enroll_device(unit).await;
            free_units.push(unit);
        }
        let (status, incident) = admin
            .post(
                "/api/incidents",
                json!({ "kind": "fire", "priority": 1, "lat": 60.17, "lon": 24.94 }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{incident}");
        let texting_unit = admin.create_unit("T-1", &[]).await;
        let texter = admin.enroll_device(texting_unit).await;
        let code_unit = admin.create_unit("C-1", &[]).await;
        Self {
            admin,
            base: server.base.clone(),
            fingerprint: server.fingerprint(),
            addr: server.addr,
            free_units,
            incident: incident["id"].as_i64().unwrap(),
            texter,
            socket: None,
            code_unit,
            round: 0,
        }
    }

    /// One write of each kind.
    async fn round(&mut self, ledger: &mut Ledger, tag: &str) {
        self.round += 1;
        let n = self.round;
        // An incident with a large note, so that the log grows fast.
        let marker = format!("{tag}-{n}");
        let notes = format!("{marker} {}", "x".repeat(3000));
        let (status, body) = self
            .admin
            .post_keyed(
                "/api/incidents",
                &format!("incident-{marker}"),
                json!({ "kind": "theft", "priority": 2, "lat": 60.17, "lon": 24.94,
                        "notes": notes }),
            )
            .await;
        if let Some(answer) = ledger.answer("incident", status, &body) {
            ledger.incidents.insert(marker, answer);
        }
        // A login.
        let login = Operator::anonymous(&self.base);
        let response = login
            .http
            .post(format!("{}/api/login", self.base))
            .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
            .send()
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .map(str::to_owned);
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if let Some(answer) = ledger.answer("login", status, &body) {
            let cookie = matches!(answer, Answer::Saved(_))
                .then_some(cookie)
                .flatten();
            ledger.logins.push((cookie, answer));
        }
        // An enrolment code.
        let (status, body) = self
            .admin
            .post(
                &format!("/api/units/{}/enrolment-code", self.code_unit),
                json!({}),
            )
            .await;
        if let Some(answer) = ledger.answer("enrolment code", status, &body) {
            let code = body["code"].as_str().map(str::to_owned);
            ledger.codes.push((code, answer));
        }
        // An assignment.
        if let Some(unit) = self.free_units.pop() {
            let (status, body) = self
                .admin
                .post(
                    &format!("/api/incidents/{}/assignments", self.incident),
                    json!({ "unit_id": unit }),
                )
                .await;
            if let Some(answer) = ledger.answer("assignment", status, &body) {
                ledger.assignments.insert(unit, (self.incident, answer));
            }
        }
        // A device action.
        let text = format!("{tag} text {n}");
        let answer = self.text(&text).await;
        ledger.texts.insert(text, answer);
    }

    /// Sends a text from the device; `done` is a success, close 1013 a refusal.
    async fn text(&mut self, text: &str) -> Answer {
        if self.socket.is_none() {
            self.socket = Some(self.connect().await);
        }
        let socket = self.socket.as_mut().unwrap();
        let action_id = format!("t-{}", self.round);
        send_text(
            socket,
            &json!({ "type": "text", "action_id": action_id, "text": text }).to_string(),
        )
        .await;
        let answer = dispatch_tests::within("the text's answer", async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(frame))) => {
                        let v: Value = serde_json::from_str(&frame).unwrap();
                        if v["action_id"] == action_id.as_str() {
                            assert_eq!(v["type"], "done", "{v}");
                            return Answer::Saved(v);
                        }
                    }
                    Some(Ok(Message::Close(Some(frame)))) => {
                        let code = u16::from(frame.code);
                        assert_eq!(code, 1013, "closed with {code}: {}", frame.reason);
                        return Answer::Refused(code);
                    }
                    Some(Ok(_)) => {}
                    other => panic!("the device socket ended: {other:?}"),
                }
            }
        })
        .await;
        if matches!(answer, Answer::Refused(_)) {
            self.socket = None;
        }
        answer
    }

    async fn connect(&self) -> RawSocket {
        let mut socket = raw_channel(self.addr, &self.fingerprint).await.unwrap();
        let (device_id, token) = &self.texter;
        send_text(
            &mut socket,
            &json!({ "type": "hello", "protocol": 1, "device_id": device_id, "token": token })
                .to_string(),
        )
        .await;
        socket
    }
}

/// Polls an incident creation until it is answered 201; returns how long that took.
async fn time_to_first_write(admin: &Operator) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = admin
            .post(
                "/api/incidents",
                json!({ "kind": "recovery", "priority": 3, "lat": 60.17, "lon": 24.94 }),
            )
            .await;
        if status == StatusCode::CREATED {
            return started.elapsed();
        }
        assert!(
            matches!(status.as_u16(), 503 | 507),
            "while recovering: {status} {body}"
        );
        assert!(
            started.elapsed() < RECOVERY_BOUND,
            "writes did not work again within {RECOVERY_BOUND:?} of the storage recovering: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After a kill -9 and a restart: every saved write is there, every refused one absent, no id
/// given twice.
async fn verify(server: &ServerProcess, clients: &Clients, ledger: &Ledger) {
    assert!(ledger.unexpected.is_empty(), "{:#?}", ledger.unexpected);
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    // Incidents, found by the marker in their notes.
    let (_, stored) = admin.get("/api/incidents?limit=1000").await;
    let mut stored_by_marker = BTreeMap::new();
    for incident in stored.as_array().unwrap() {
        if let Some(marker) = incident["notes"].as_str().and_then(|n| n.split(' ').next()) {
            let previous = stored_by_marker.insert(marker.to_owned(), incident["id"].clone());
            assert!(previous.is_none(), "two incidents for {marker}");
        }
    }
    let mut ids = std::collections::BTreeSet::new();
    for (marker, answer) in &ledger.incidents {
        match answer {
            Answer::Saved(body) => {
                assert_eq!(
                    stored_by_marker.get(marker),
                    Some(&body["id"]),
                    "incident {marker} answered 201 as {} is not stored as such",
                    body["id"]
                );
                assert!(ids.insert(body["id"].as_i64().unwrap()), "id given twice");
            }
            Answer::Refused(status) => assert!(
                !stored_by_marker.contains_key(marker),
                "incident {marker} was refused with {status} but is stored"
            ),
        }
    }
    let (status, newer) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "after", "priority": 3, "lat": 60.17, "lon": 24.94 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{newer}");
    let newest = newer["id"].as_i64().unwrap();
    assert!(
        ids.iter().all(|id| *id < newest),
        "a new incident reused an id answered before ({newest})"
    );
    // Logins: a session answered 200 still works.
    for (cookie, answer) in &ledger.logins {
        if let (Some(cookie), Answer::Saved(_)) = (cookie, answer) {
            let status = admin
                .http
                .get(format!("{}/api/me", server.base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::OK, "a session answered 200 was lost");
        }
    }
    // Enrolment codes: the last code answered 201 still enrols a device.
    if let Some((Some(code), _)) = ledger
        .codes
        .iter()
        .rev()
        .find(|(_, a)| matches!(a, Answer::Saved(_)))
    {
        let (status, body) = admin
            .post("/api/devices/enroll", json!({ "code": code }))
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "a code answered 201 was lost: {body}"
        );
    }
    // Assignments.
    let (_, orders) = admin
        .get(&format!("/api/incidents/{}/assignments", clients.incident))
        .await;
    let ordered: BTreeMap<i64, Value> = orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["unit_id"].as_i64().unwrap(), o["id"].clone()))
        .collect();
    for (unit, (_, answer)) in &ledger.assignments {
        match answer {
            Answer::Saved(order) => assert_eq!(
                ordered.get(unit),
                Some(&order["id"]),
                "order {} answered 201 is not stored",
                order["id"]
            ),
            Answer::Refused(status) => {
                assert!(
                    !ordered.contains_key(unit),
                    "an assignment refused with {status} is stored"
                );
                let (_, stored) = admin.get(&format!("/api/units/{unit}")).await;
                assert_eq!(stored["status"], "available", "{stored}");
            }
        }
    }
    // Device actions.
    let texting_unit = {
        let (_, units) = admin.get("/api/units").await;
        units
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["call_sign"] == "T-1")
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (_, texts) = admin
        .get(&format!("/api/units/{texting_unit}/messages?limit=1000"))
        .await;
    let texts: Vec<&str> = texts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["text"].as_str())
        .collect();
    for (text, answer) in &ledger.texts {
        let stored = texts.iter().filter(|t| *t == text).count();
        match answer {
            Answer::Saved(_) => assert_eq!(stored, 1, "{text:?} answered done"),
            Answer::Refused(code) => assert_eq!(stored, 0, "{text:?} was refused ({code})"),
        }
    }
}

/// A configuration that lets the ledger's clients log in as often as their rounds need (the
/// default throttle, 20 attempts a minute per address, would answer 429 to the login writes).
fn many_logins(dir: &Path) -> PathBuf {
    let path = dir.join("dispatchd.toml");
    std::fs::write(&path, "[accounts]\nlogin_attempts_per_minute = 10000\n").unwrap();
    path
}

/// The disk fills while clients write; everything answered with success survives kill -9;
/// writes work again by themselves once space returns. Then the same database on a read-only
/// file system: reads work, writes are refused clearly, `/readyz` is not ready, `/healthz` is,
/// and a restart on the file system made writable again serves writes.
#[tokio::test]
async fn a_full_disk_and_a_read_only_disk_never_get_a_false_success() {
    let tmpfs = Tmpfs::mount("24m");
    let data = tmpfs.path.join("data");
    let addr = free_addr();
    let config_dir = tempfile::tempdir().unwrap();
    let config = many_logins(config_dir.path());
    let server = ServerProcess::start_configured(&data, addr, &config)
        .await
        .unwrap();
    let mut clients = Clients::prepare(&server, 60).await;
    let mut ledger = Ledger::default();
    for _ in 0..3 {
        clients.round(&mut ledger, "before").await;
    }

    let filler = fill(&tmpfs.path);
    let (mut rounds, mut unready) = (0, 0);
    while ledger.refused() < 20 && rounds < 200 {
        clients.round(&mut ledger, "full").await;
        rounds += 1;
        // Ready means a write reaches the disk now; a write may still slip into log space
        // SQLite reuses, so the answer can change from one round to the next.
        let (status, _) = clients.admin.get("/readyz").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            unready += 1;
        }
    }
    assert!(
        ledger.refused() >= 20,
        "the full disk refused only {} writes in {rounds} rounds",
        ledger.refused()
    );
    assert!(
        ledger
            .incidents
            .values()
            .any(|a| *a == Answer::Refused(507)),
        "no incident was answered 507 storage_full: {:?}",
        ledger.incidents
    );
    // Reads keep working, and the node said it was not ready.
    let (status, _) = clients
        .admin
        .get(&format!("/api/incidents/{}", clients.incident))
        .await;
    assert_eq!(status, StatusCode::OK, "reads work on a full disk");
    assert!(
        unready > 0,
        "/readyz never said the full disk made it unready"
    );
    let (status, _) = clients.admin.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);

    std::fs::remove_file(&filler).unwrap();
    let recovered = time_to_first_write(&clients.admin).await;
    eprintln!("storage_faults: writes worked again {recovered:?} after space returned");
    let (status, ready) = clients.admin.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    for _ in 0..3 {
        clients.round(&mut ledger, "after").await;
    }
    eprintln!(
        "storage_faults: disk full: {} writes saved, {} refused",
        ledger.saved(),
        ledger.refused()
    );

    server.kill9().await;
    let server = ServerProcess::start_configured(&data, addr, &config)
        .await
        .unwrap();
    verify(&server, &clients, &ledger).await;
    let cookie = ledger
        .logins
        .iter()
        .rev()
        .find_map(|(c, a)| matches!(a, Answer::Saved(_)).then(|| c.clone()).flatten())
        .expect("a saved login");
    server.kill9().await;

    // Read-only: reads with an existing session, no writes, not ready, alive.
    tmpfs.remount("ro");
    let launch = Launch {
        add_admin: false,
        wait_ready: false,
        config: Some(&config),
        ..Launch::default()
    };
    let server = ServerProcess::launch_with(&data, addr, &launch)
        .await
        .unwrap();
    let http = Operator::anonymous(&server.base).http;
    let get = |path: String| {
        http.get(format!("{}{path}", server.base))
            .header("cookie", &cookie)
            .send()
    };
    assert_eq!(
        get("/healthz".into()).await.unwrap().status(),
        StatusCode::OK
    );
    let ready = get("/readyz".into()).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let incidents = get("/api/incidents".into()).await.unwrap();
    assert_eq!(
        incidents.status(),
        StatusCode::OK,
        "reads work on a read-only disk"
    );
    let (status, body) = Operator::reply(
        http.post(format!("{}/api/incidents", server.base))
            .header("cookie", &cookie)
            .json(&json!({ "kind": "theft", "priority": 2, "lat": 60.17, "lon": 24.94 })),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only")),
        "the error names the cause: {body}"
    );
    server.kill9().await;
    // Writable again: a restart serves writes.
    tmpfs.remount("rw");
    let server = ServerProcess::start_configured(&data, addr, &config)
        .await
        .unwrap();
    let (status, body) = Operator::reply(
        http.post(format!("{}/api/incidents", server.base))
            .header("cookie", &cookie)
            .json(&json!({ "kind": "theft", "priority": 2, "lat": 60.17, "lon": 24.94 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.kill9().await;
}

/// Runs `fiu-ctrl -c COMMAND PID`.
fn fiu_ctrl(pid: u32, command: &str) {
    let out = std::process::Command::new("fiu-ctrl")
        .args(["-c", command, &pid.to_string()])
        .output()
        .expect("fiu-ctrl (Debian package fiu-utils) runs");
    assert!(
        out.status.success(),
        "fiu-ctrl -c {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Write and fsync errors injected into the running server with libfiu: nothing they break is
/// answered as a success, everything answered as a success survives kill -9, and writes work
/// again as soon as the faults stop.
#[tokio::test]
async fn injected_write_and_fsync_errors_never_get_a_false_success() {
    assert!(
        std::process::Command::new("fiu-run")
            .arg("-h")
            .output()
            .is_ok(),
        "STORAGE-FAULT TESTS CANNOT RUN: fiu-run (Debian package fiu-utils) is missing; \
         make test installs it"
    );
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config_dir = tempfile::tempdir().unwrap();
    let config = many_logins(config_dir.path());
    let launch = Launch {
        wrapper: &["fiu-run", "-x"],
        config: Some(&config),
        ..Launch::default()
    };
    let server = ServerProcess::launch_with(data.path(), addr, &launch)
        .await
        .unwrap();
    let pid = server.pid().unwrap();
    let mut clients = Clients::prepare(&server, 40).await;
    let mut ledger = Ledger::default();
    clients.round(&mut ledger, "before").await;

    // fsync fails every time: nothing can be made durable, so nothing may be confirmed.
    for point in ["posix/io/sync/fsync", "posix/io/sync/fdatasync"] {
        fiu_ctrl(pid, &format!("enable name={point}"));
    }
    for _ in 0..5 {
        clients.round(&mut ledger, "nosync").await;
    }
    let refused_on_fsync = ledger.refused();
    assert!(
        refused_on_fsync >= 25,
        "with every fsync failing, only {refused_on_fsync} writes were refused: {ledger:#?}"
    );
    for point in ["posix/io/sync/fsync", "posix/io/sync/fdatasync"] {
        fiu_ctrl(pid, &format!("disable name={point}"));
    }
    // Writes (pwrite) fail now and then: some writes are refused, the rest saved.
    fiu_ctrl(
        pid,
        "enable_random name=posix/io/rw/pwrite,probability=0.05",
    );
    for _ in 0..15 {
        clients.round(&mut ledger, "flaky").await;
    }
    fiu_ctrl(pid, "disable name=posix/io/rw/pwrite");
    let recovered = time_to_first_write(&clients.admin).await;
    eprintln!("storage_faults: writes worked again {recovered:?} after the faults stopped");
    clients.round(&mut ledger, "after").await;
    eprintln!(
        "storage_faults: injected faults: {} writes saved, {} refused",
        ledger.saved(),
        ledger.refused()
    );
    assert!(
        ledger.refused() > refused_on_fsync,
        "no write failed while pwrite failed 1 time in 20"
    );

    server.kill9().await;
    let server = ServerProcess::start_configured(data.path(), addr, &config)
        .await
        .unwrap();
    verify(&server, &clients, &ledger).await;
    server.kill9().await;

    // A COMMIT whose fsync failed, and a crash before anything else is written: what that
    // COMMIT left in the log must not come back as if it had been saved.
    let server = ServerProcess::launch_with(data.path(), addr, &launch)
        .await
        .unwrap();
    let pid = server.pid().unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    for point in ["posix/io/sync/fsync", "posix/io/sync/fdatasync"] {
        fiu_ctrl(pid, &format!("enable name={point}"));
    }
    let (status, body) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "unsynced", "priority": 2, "lat": 60.17, "lon": 24.94 }),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    server.kill9().await;
    let server = ServerProcess::start_configured(data.path(), addr, &config)
        .await
        .unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let (_, stored) = admin.get("/api/incidents?limit=1000").await;
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["kind"] != "unsynced"),
        "an incident answered 503 (its fsync failed) came back after the restart"
    );
    server.kill9().await;
}
