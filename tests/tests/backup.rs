//! Backup and restore with the real binaries: a backup taken while the server runs with traffic
//! verifies, restores into another data directory with a new identity, serves the same
//! incidents and timelines, and a connected tablet resynchronises without a second copy of its
//! order; a backup with a changed byte, a missing file or a truncated database is refused by
//! `verify` and by `restore`, naming the problem.

use dispatch_tests::{
    dispatchd, free_addr, quick_reconnect, Device, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD,
};
use field_client::{Event, Trust};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_backup_taken_under_traffic_restores_and_the_tablet_resynchronises_once() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let fingerprint = server.fingerprint();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let unit_id = admin.create_unit("P-61", &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let device_dir = tempfile::tempdir().unwrap();
    field_client::enroll(
        &server.base,
        &Trust::pin(&fingerprint).unwrap(),
        &code,
        None,
    )
    .await
    .unwrap()
    .save(device_dir.path())
    .unwrap();
    let mut device = Device::start_with(device_dir, quick_reconnect).await;
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
            json!({ "text": "Backup drill: confirm." }),
        ),
        (
            "/api/broadcasts".to_owned(),
            json!({ "target": { "all": true }, "urgency": "Immediate", "severity": "Severe",
                    "certainty": "Likely", "headline": "Drill" }),
        ),
        (
            format!("/api/incidents/{incident_id}/narrative"),
            json!({ "text": "Caller says two people left by car." }),
        ),
    ] {
        let (status, answer) = admin.post(&path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    }
    // More traffic while the backup runs: it must not stop writers or see half of anything.
    let writer = {
        let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
            .await
            .unwrap();
        tokio::spawn(async move {
            for i in 0..20 {
                let (status, _) = admin
                    .post(
                        "/api/incidents",
                        json!({ "kind": "theft", "priority": 3,
                        "lat": 60.17, "lon": 24.94, "notes": format!("during backup {i}") }),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED);
            }
        })
    };
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("b1");
    let (ok, out) = dispatchd(data.path(), &["backup", "--to", backup.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    writer.await.unwrap();
    let (ok, out) = dispatchd(data.path(), &["backup", "verify", backup.to_str().unwrap()]).await;
    assert!(ok && out.starts_with("OK"), "{out}");

    let (_, before) = admin
        .get(&format!("/api/incidents/{incident_id}/timeline"))
        .await;
    server.kill9().await;

    let restored = tempfile::tempdir().unwrap();
    let restored_data = restored.path().join("data");
    let (ok, out) = dispatchd(
        &restored_data,
        &["restore", "--from", backup.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = dispatchd(
        &restored_data,
        &["restore", "--from", backup.to_str().unwrap()],
    )
    .await;
    assert!(!ok && out.contains("already has a database"), "{out}");

    let server = ServerProcess::start(&restored_data, addr).await.unwrap();
    assert_eq!(
        server.fingerprint(),
        fingerprint,
        "the tablets' pin still holds"
    );
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let (_, after) = admin
        .get(&format!("/api/incidents/{incident_id}/timeline"))
        .await;
    assert_eq!(after, before, "the same timeline");
    let (_, order) = admin.get(&format!("/api/orders/{order_id}")).await;
    assert_eq!(order["state"], "accepted", "{order}");
    let (_, restored_events) = admin.get("/api/audit?after=0&limit=5000").await;
    let kinds: Vec<&str> = restored_events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"restored"), "{kinds:?}");

    // The tablet meets a database with a new identity: it resynchronises, and its order is
    // still there once.
    let welcome = device
        .wait_for("the reconnect to the restored server", |e| match e {
            Event::Connected(w) => Some(w.clone()),
            _ => None,
        })
        .await;
    assert!(
        welcome.resync,
        "a restored database makes the tablet resync: {welcome:?}"
    );
    let status = device
        .client
        .status(dispatch_protocol::ReportedStatus::EnRoute, Some(order_id))
        .await
        .unwrap();
    loop {
        let event = device
            .wait_for("the status to be recorded", |e| Some(e.clone()))
            .await;
        match event {
            Event::Order(o) => panic!(
                "order {} surfaced again after the restore",
                o.order.order_id
            ),
            Event::ActionDone { action_id } if action_id == status => break,
            Event::ActionRejected { message, .. } => panic!("status refused: {message}"),
            _ => {}
        }
    }
    let orders = device.client.orders().await.unwrap();
    assert_eq!(orders.len(), 1, "{orders:?}");
    server.kill9().await;
}

#[tokio::test]
async fn a_damaged_or_incomplete_backup_is_refused_naming_the_problem() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let server = ServerProcess::start(data.path(), addr).await.unwrap();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    for i in 0..30 {
        let (status, _) = admin
            .post(
                "/api/incidents",
                json!({ "kind": "theft", "priority": 3, "lat": 60.17,
                "lon": 24.94, "notes": format!("incident {i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let backups = tempfile::tempdir().unwrap();
    let good = backups.path().join("good");
    let (ok, out) = dispatchd(data.path(), &["backup", "--to", good.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    server.kill9().await;
    let (ok, out) = dispatchd(data.path(), &["backup", "--to", good.to_str().unwrap()]).await;
    assert!(!ok && out.contains("not empty"), "{out}");

    let copy = |name: &str| {
        let dir = backups.path().join(name);
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        for file in [
            "manifest.json",
            "dispatch.sqlite",
            "tls/cert.pem",
            "tls/key.pem",
            "tls/cert.sha256",
        ] {
            std::fs::copy(good.join(file), dir.join(file)).unwrap();
        }
        dir
    };
    let flipped = copy("flipped");
    let db = flipped.join("dispatch.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&db, bytes).unwrap();
    let missing = copy("missing");
    std::fs::remove_file(missing.join("tls/key.pem")).unwrap();
    let truncated = copy("truncated");
    let db = truncated.join("dispatch.sqlite");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let no_manifest = copy("no-manifest");
    std::fs::remove_file(no_manifest.join("manifest.json")).unwrap();

    for (dir, problem) in [
        (&flipped, "dispatch.sqlite does not match its SHA-256"),
        (&missing, "tls/key.pem is missing"),
        (&truncated, "dispatch.sqlite has"),
        (&no_manifest, "manifest.json is missing"),
    ] {
        let (ok, out) = dispatchd(data.path(), &["backup", "verify", dir.to_str().unwrap()]).await;
        assert!(
            !ok && out.contains(problem),
            "verify {}: {out}",
            dir.display()
        );
        let target = backups.path().join(format!(
            "restore-{}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        let (ok, out) = dispatchd(&target, &["restore", "--from", dir.to_str().unwrap()]).await;
        assert!(
            !ok && out.contains(problem),
            "restore {}: {out}",
            dir.display()
        );
        assert!(!target.join("dispatch.sqlite").exists(), "nothing restored");
    }
    let (ok, out) = dispatchd(data.path(), &["backup", "verify", good.to_str().unwrap()]).await;
    assert!(ok, "the untouched backup still verifies: {out}");
}

#[tokio::test]
async fn scheduled_backups_are_verified_reported_and_pruned() {
    let backups = tempfile::tempdir().unwrap();
    let root = backups.path().to_owned();
    let app = dispatch_tests::spawn_app_with(|c| {
        c.backup = Some(dispatch_server::config::ScheduledBackups {
            dir: root.clone(),
            every_secs: 1,
            keep: 2,
            max_rate_mib_s: dispatch_server::backup::pace::DEFAULT_MIB_PER_S,
        });
    })
    .await;
    let admin = app.admin().await;
    let anonymous = Operator::anonymous(&app.base);
    let mut seen = std::collections::BTreeSet::new();
    dispatch_tests::within("three scheduled backups", async {
        while seen.len() < 3 {
            let (_, status) = admin.get("/api/admin/backups").await;
            assert_eq!(status["schedule"]["keep"], 2, "{status}");
            if let Some(dir) = status["last"]["dir"].as_str() {
                assert_eq!(status["last"]["ok"], true, "{status}");
                seen.insert(dir.to_owned());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    let (_, ready) = anonymous.get("/readyz").await;
    assert_eq!(ready["last_backup"]["ok"], true, "{ready}");
    assert!(
        ready["last_backup"].get("dir").is_none(),
        "paths are for admins: {ready}"
    );
    let kept: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        (1..=3).contains(&kept.len()),
        "keep 2 (a third may be in the making): {kept:?}"
    );
    for dir in kept.iter().filter(|d| d.join("manifest.json").is_file()) {
        dispatch_server::backup::verify(dir).unwrap();
    }
    app.stop().await;
}
