//! The open-format export with the real binaries: an export taken while the server runs with
//! traffic validates with other tools' readers (EIDO JSON Schema, GeoJSON, CAP 1.2 XSD, CSV);
//! imported into an empty data directory and exported again it gives the same files; a damaged,
//! incomplete or partial export is refused naming the problem and imports nothing; the
//! supervisor's console downloads the same export as a tar, and the download is audited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dispatch_protocol::Location;
use dispatch_tests::{
    dispatchd, free_addr, quick_reconnect, Device, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD,
};
use field_client::{Event, Trust};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The checker of `tests/scripts/check_export.py` on an export: answers what it printed, and
/// whether it passed.
fn check_export(dir: &Path) -> (bool, String) {
    let out = std::process::Command::new("python3")
        .arg(repo_path("tests/scripts/check_export.py"))
        .arg(dir)
        .arg(repo_path("docs/schemas"))
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every file of a directory (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                let name = entry
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string();
                found.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
    }
    found
}

/// The manifest without its export time.
fn manifest_without_time(bytes: &[u8]) -> Value {
    let mut manifest: Value = serde_json::from_slice(bytes).unwrap();
    manifest.as_object_mut().unwrap().remove("exported_at");
    manifest
}

/// A server with the traffic of a shift: units, a tablet with positions, an accepted order,
/// callers and notes, texts, broadcasts to all and to an area, premises.
async fn server_with_traffic(data: &Path) -> (ServerProcess, Operator, Device) {
    let server = ServerProcess::start(data, free_addr()).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let unit_id = admin.create_unit("P-71", &["patrol"]).await;
    admin.create_unit("K-9", &["dog"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let device_dir = tempfile::tempdir().unwrap();
    field_client::enroll(
        &server.base,
        &Trust::pin(&server.fingerprint()).unwrap(),
        &code,
        None,
    )
    .await
    .unwrap()
    .save(device_dir.path())
    .unwrap();
    let mut device = Device::start_with(device_dir, quick_reconnect).await;
    for (i, (lat, lon)) in [(60.1699, 24.9384), (60.1702, 24.9391), (60.1706, 24.9399)]
        .into_iter()
        .enumerate()
    {
        device
            .client
            .location(Location {
                lat,
                lon,
                accuracy_m: Some(8.5),
                heading_deg: None,
                speed_mps: None,
                fix_time_ms: dispatch_server::domain::now_ms() - 3_000 + i as i64 * 1_000,
            })
            .await
            .unwrap();
    }
    let (incident_id, order_id) = admin.dispatch_to(unit_id, "Mannerheimintie 5").await;
    let got = device
        .wait_for("the order", |e| match e {
            Event::Order(o) => Some(o.order.order_id),
            _ => None,
        })
        .await;
    assert_eq!(got, order_id);
    device.client.accept(order_id).await.unwrap();
    admin.wait_order_state(order_id, "accepted").await;
    for (path, body) in [
        (
            format!("/api/units/{unit_id}/messages"),
            json!({ "text": "Export drill: \"confirm\" <now> & report." }),
        ),
        (
            "/api/broadcasts".to_owned(),
            json!({ "target": { "all": true }, "urgency": "Immediate", "severity": "Severe",
                    "certainty": "Likely", "headline": "BOLO: grey van 12가 3456",
                    "description": "Two occupants.\nHeading north.", "expires_in_secs": 3600 }),
        ),
        (
            "/api/broadcasts".to_owned(),
            json!({ "target": { "polygon": [[60.169, 24.937], [60.169, 24.941],
                                            [60.171, 24.941], [60.171, 24.937]] },
                    "urgency": "Expected", "severity": "Moderate", "certainty": "Possible",
                    "headline": "Crowd forming", "instruction": "Keep the road open" }),
        ),
        (
            format!("/api/incidents/{incident_id}/narrative"),
            json!({ "text": "Caller says two people left by car." }),
        ),
        (
            format!("/api/incidents/{incident_id}/callers"),
            json!({ "caller": "Second witness", "callback": "+358 40 123 4567",
                    "text": "Saw the car turn left." }),
        ),
        (
            "/api/premises".to_owned(),
            json!({ "label": "Dog", "text": "Aggressive dog", "severity": "danger",
                    "lat": 60.1687, "lon": 24.9316, "radius_m": 40 }),
        ),
        (
            "/api/premises".to_owned(),
            json!({ "label": "Estate", "text": "Gate code 4321", "severity": "info",
                    "polygon": [[60.168, 24.930], [60.168, 24.933], [60.170, 24.933],
                                [60.170, 24.930]] }),
        ),
        (
            "/api/incidents".to_owned(),
            json!({ "kind": "theft", "priority": 3, "lat": 60.17, "lon": 24.94,
                    "address": "Aleksanterinkatu 52, Helsinki", "caller": "Shop, \"Stockmann\"",
                    "callback": "+358 9 1211", "notes": "=SUM(A1) not a formula" }),
        ),
    ] {
        let (status, answer) = admin.post(&path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
    (server, admin, device)
}

#[tokio::test]
async fn an_export_validates_and_an_import_of_it_exports_the_same_files() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("site-a");
    let (server, admin, _device) = server_with_traffic(&data).await;
    // Writers keep going while the export runs: it reads one consistent snapshot.
    let writer = tokio::spawn(async move {
        for i in 0..20 {
            let (status, _) = admin
                .post(
                    "/api/incidents",
                    json!({ "kind": "theft", "priority": 3, "lat": 60.17, "lon": 24.94,
                            "notes": format!("during export {i}") }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    });
    let first = root.path().join("export-1");
    let (ok, out) = dispatchd(&data, &["export", "--to", first.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    writer.await.unwrap();
    // One server per data directory: while it serves, a second server and an import are
    // refused, naming it.
    let whole = first.to_str().unwrap();
    for args in [["--listen", "127.0.0.1:0"], ["import", whole]] {
        let (ok, out) = dispatch_tests::within("a refusal", dispatchd(&data, &args)).await;
        assert!(
            !ok && out.contains("another dispatchd (pid") && out.contains("is serving"),
            "{args:?}: {out}"
        );
    }
    server.kill9().await;

    let (ok, report) = check_export(&first);
    assert!(ok, "{report}");
    assert!(report.contains("broadcasts 2"), "{report}");
    assert!(report.contains("premises.geojson 2"), "{report}");
    assert!(report.contains("unit-tracks.geojson 1"), "{report}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(first.join("manifest.json")).unwrap()).unwrap();
    let records = |name: &str| {
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["records"].as_u64().unwrap())
            .unwrap()
    };
    let incidents = records("incidents.eido.jsonl");
    assert!(incidents >= 2, "{manifest}");
    assert_eq!(records("statistics.csv"), incidents);
    assert_eq!(records("incidents.geojson"), incidents);
    let eido = std::fs::read_to_string(first.join("incidents.eido.jsonl")).unwrap();
    let dispatched: Value = serde_json::from_str(eido.lines().next().unwrap()).unwrap();
    assert_eq!(
        dispatched["emergencyResourceComponent"][0]["dispositionText"],
        "accepted"
    );
    let callers: Vec<&str> = dispatched["callComponent"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["callerNameText"].as_str())
        .collect();
    assert!(callers.contains(&"Second witness"), "{dispatched}");
    let kinds: Vec<&str> = dispatched["statusChangeComponent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"order_queued") && kinds.contains(&"order_accepted"),
        "{kinds:?}"
    );
    let users = std::fs::read_to_string(first.join("users.jsonl")).unwrap();
    assert!(!users.contains("argon2"), "no password hashes: {users}");

    // The checker is not a formality: a CAP alert with an urgency CAP does not know fails it.
    let broken = root.path().join("broken");
    copy_dir(&first, &broken);
    let alert = std::fs::read_dir(broken.join("broadcasts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&alert).unwrap();
    std::fs::write(&alert, text.replace("<urgency>", "<urgency>Very")).unwrap();
    let (ok, report) = check_export(&broken);
    assert!(!ok && report.contains("CAP"), "{report}");

    // Into an empty data directory at another site; a second import is refused.
    let site_b = root.path().join("site-b");
    let (ok, out) = dispatchd(&site_b, &["import", first.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    assert!(out.contains("reset-password"), "{out}");
    let (ok, out) = dispatchd(&site_b, &["import", first.to_str().unwrap()]).await;
    assert!(!ok && out.contains("already holds data"), "{out}");
    let (ok, out) = dispatchd(&site_b, &["audit", "verify"]).await;
    assert!(
        ok && out.starts_with("OK"),
        "the imported audit chain verifies: {out}"
    );

    let second = root.path().join("export-2");
    let (ok, out) = dispatchd(&site_b, &["export", "--to", second.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    let (mut a, mut b) = (files(&first), files(&second));
    assert_eq!(
        manifest_without_time(&a.remove("manifest.json").unwrap()),
        manifest_without_time(&b.remove("manifest.json").unwrap())
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &a {
        assert!(
            b[name] == *bytes,
            "{name} differs after export → import → export"
        );
    }

    // The imported server runs: the admin gets a one-time password and sees the incidents.
    let (ok, out) = dispatchd(&site_b, &["user", "reset-password", ADMIN]).await;
    assert!(ok, "{out}");
    let one_time = out
        .split_whitespace()
        .find(|w| w.len() == 19 && w.matches('-').count() == 3)
        .unwrap_or_else(|| panic!("a one-time password in {out:?}"))
        .to_owned();
    let server = ServerProcess::start(&site_b, free_addr()).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, &one_time)
        .await
        .unwrap();
    let (status, _) = admin
        .post(
            "/api/password",
            json!({ "current_password": one_time, "new_password": "quiet orchard lantern 2027" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, timeline) = admin.get("/api/incidents/1/timeline").await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    server.kill9().await;
}

fn copy_dir(from: &Path, to: &Path) {
    for (name, bytes) in files(from) {
        let dest = to.join(&name);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
}

#[tokio::test]
async fn a_damaged_incomplete_or_partial_export_is_refused_and_imports_nothing() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("site-a");
    let (server, admin, _device) = server_with_traffic(&data).await;
    drop(admin);
    let whole = root.path().join("whole");
    let (ok, out) = dispatchd(&data, &["export", "--to", whole.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    let partial = root.path().join("partial");
    let (ok, out) = dispatchd(
        &data,
        &[
            "export",
            "--to",
            partial.to_str().unwrap(),
            "--from",
            "2020-01-01T00:00:00Z",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = dispatchd(&data, &["export", "--to", whole.to_str().unwrap()]).await;
    assert!(!ok && out.contains("not empty"), "{out}");
    let (ok, out) = dispatchd(&data, &["export", "--to", "x", "--from", "yesterday"]).await;
    assert!(!ok && out.contains("RFC 3339"), "{out}");
    server.kill9().await;

    let site_b = root.path().join("site-b");
    let damaged = |name: &str, change: &dyn Fn(&Path)| {
        let dir = root.path().join(name);
        copy_dir(&whole, &dir);
        change(&dir);
        dir
    };
    let one_byte = damaged("one-byte", &|dir| {
        let path = dir.join("events.jsonl");
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(path, bytes).unwrap();
    });
    let missing = damaged("missing", &|dir| {
        let alert = std::fs::read_dir(dir.join("broadcasts"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::remove_file(alert).unwrap();
    });
    let extra = damaged("extra", &|dir| {
        std::fs::write(dir.join("broadcasts/broadcast-99.xml"), "<alert/>").unwrap();
    });
    let no_manifest = damaged("no-manifest", &|dir| {
        std::fs::remove_file(dir.join("manifest.json")).unwrap();
    });
    for (dir, expected) in [
        (&one_byte, "events.jsonl does not match its SHA-256"),
        (&missing, "is missing"),
        (
            &extra,
            "broadcast-99.xml is in the export directory but not in its manifest",
        ),
        (&no_manifest, "manifest.json is missing"),
        (&partial, "windowed export"),
    ] {
        let (ok, out) = dispatchd(&site_b, &["import", dir.to_str().unwrap()]).await;
        assert!(!ok && out.contains(expected), "{expected:?} in {out}");
    }
    // Nothing went in: the whole export still imports.
    let (ok, out) = dispatchd(&site_b, &["import", whole.to_str().unwrap()]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn the_console_downloads_the_export_as_a_tar_and_the_download_is_audited() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let (server, admin, _device) = server_with_traffic(&data).await;
    let operator = admin
        .add_user("duty-operator", "amber kettle window 88", "operator")
        .await;
    let (status, body) = operator.get("/api/export/archive").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = admin
        .get("/api/export/archive?since_ms=20&until_ms=10")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("until_ms"),
        "{body}"
    );

    let response = admin
        .http
        .get(format!("{}/api/export/archive", admin.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"dispatch-export_"),
        "{disposition}"
    );
    let bytes = response.bytes().await.unwrap();
    let unpacked = root.path().join("unpacked");
    tar::Archive::new(bytes.as_ref()).unpack(&unpacked).unwrap();
    let (ok, report) = check_export(&unpacked.join("dispatch-export"));
    assert!(ok, "{report}");
    let names: Vec<String> = files(&unpacked.join("dispatch-export"))
        .into_keys()
        .collect();
    for name in [
        "manifest.json",
        "README.md",
        "incidents.eido.jsonl",
        "events.jsonl",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("export-"))
        .collect();
    assert!(leftovers.is_empty(), "staging removed: {leftovers:?}");
    let (_, audit) = admin.get("/api/audit?after=0&limit=5000").await;
    let exported: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "records_exported")
        .collect();
    assert_eq!(exported.len(), 1, "{audit}");
    assert_eq!(exported[0]["actor"], format!("operator:{ADMIN}"));
    server.kill9().await;
}
