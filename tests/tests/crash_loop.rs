//! Crash loop: `dispatchd` is killed with SIGKILL twenty times in the middle of a fan-out of
//! orders to fifty devices that accept or decline and clear them as they arrive. After every
//! restart each order the database holds reached its device's application exactly once, every
//! order a 2xx confirmed is in the database, and the timeline matches the orders' states.
//! Also here: the escalation ladder under repeated kills, and a tablet killed right after its
//! application saw an order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dispatch_protocol::ReportedStatus;
use dispatch_tests::checker::{self, AppLayer, Database};
use dispatch_tests::{
    free_addr, quick_reconnect, within, Device, Operator, ServerProcess, ADMIN, ADMIN_PASSWORD,
    PATIENCE,
};
use field_client::{Client, Event};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinSet;

const DEVICES: usize = 50;
const CYCLES: usize = 20;
/// Delay between the starts of two orders of a fan-out.
const STAGGER_MS: u64 = 8;

/// Problems the devices ran into (refused actions, fatal closes); must stay empty.
type Trouble = Arc<Mutex<Vec<String>>>;

/// The officer on each tablet: every order that surfaces is recorded, then declined (one in
/// four) or accepted and cleared, which makes the unit available for the next cycle.
async fn officer(mut device: Device, app: AppLayer, trouble: Trouble) {
    while let Some(event) = device.events.recv().await {
        match event {
            Event::Order(order) => {
                let id = order.order.order_id;
                app.record(device.device_id, id);
                let queued = if id % 4 == 0 {
                    device.client.decline(id, "busy", None).await
                } else {
                    match device.client.accept(id).await {
                        Ok(_) => {
                            device
                                .client
                                .status(ReportedStatus::Cleared, Some(id))
                                .await
                        }
                        Err(e) => Err(e),
                    }
                };
                if let Err(e) = queued {
                    trouble.lock().unwrap().push(format!("order {id}: {e}"));
                }
            }
            Event::ActionRejected {
                action_id,
                code,
                message,
            } => trouble.lock().unwrap().push(format!(
                "device {}: action {action_id} rejected: {code} {message}",
                device.device_id
            )),
            Event::Fatal { code, reason } => trouble.lock().unwrap().push(format!(
                "device {}: fatal close {code} {reason}",
                device.device_id
            )),
            _ => {}
        }
    }
}

/// Creates an incident and assigns `unit_id` to it without panicking when the server dies
/// under the requests; returns the order id once the server confirmed it with a 2xx.
async fn try_dispatch(op: &Operator, unit_id: i64, address: String) -> Result<i64, String> {
    async fn post(op: &Operator, path: &str, body: Value) -> Result<Value, String> {
        let res = op
            .http
            .post(format!("{}{path}", op.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status();
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }
    let incident = post(
        op,
        "/api/incidents",
        json!({ "kind": "burglary", "priority": 1, "lat": 60.17, "lon": 24.94, "address": address }),
    )
    .await?;
    let order = post(
        op,
        &format!("/api/incidents/{}/assignments", incident["id"]),
        json!({ "unit_id": unit_id }),
    )
    .await?;
    order["id"]
        .as_i64()
        .ok_or_else(|| format!("no order id in {order}"))
}

/// Sends one order to every unit at once and kills the server with SIGKILL as soon as
/// `kill_after` of them were confirmed (or all requests ended); returns the confirmed orders.
async fn fan_out_and_kill(
    op: &Operator,
    units: &[i64],
    cycle: usize,
    kill_after: usize,
    server: ServerProcess,
) -> Vec<i64> {
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let progress = Arc::new(Notify::new());
    let mut requests = JoinSet::new();
    for (i, &unit) in units.iter().enumerate() {
        let (op, confirmed, progress) = (op.clone(), confirmed.clone(), progress.clone());
        // Staggered, so that at the kill earlier orders are at every stage on their devices.
        let stagger = Duration::from_millis(STAGGER_MS * u64::try_from(i).unwrap());
        requests.spawn(async move {
            tokio::time::sleep(stagger).await;
            let address = format!("Crash loop {cycle}, unit {unit}");
            if let Ok(order) = try_dispatch(&op, unit, address).await {
                confirmed.lock().unwrap().push(order);
            }
            progress.notify_one();
        });
    }
    within("the kill point", async {
        while confirmed.lock().unwrap().len() < kill_after && !requests.is_empty() {
            tokio::select! {
                () = progress.notified() => {}
                done = requests.join_next() => if done.is_none() { break },
            }
        }
    })
    .await;
    server.kill9().await;
    within("requests cut by the kill", async {
        while requests.join_next().await.is_some() {}
    })
    .await;
    let confirmed = confirmed.lock().unwrap().clone();
    confirmed
}

/// Orders that are not finished yet, or units that are not available yet.
async fn unsettled(db: &Database) -> Option<String> {
    let orders = checker::committed_orders(db).await;
    let open: Vec<_> = orders
        .iter()
        .filter(|o| o.state != "completed" && o.state != "declined")
        .map(|o| (o.id, o.state.clone()))
        .collect();
    if !open.is_empty() {
        return Some(format!("orders not finished: {open:?}"));
    }
    let busy = db
        .rows("SELECT call_sign, status FROM units WHERE status != 'available'")
        .await;
    (!busy.is_empty()).then(|| format!("units not available: {busy:?}"))
}

/// Waits until every order the database holds is finished and every unit is free again, or
/// until [`PATIENCE`] ran out (the check that follows then says what went wrong).
async fn settle(db: &Database) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let Some(why) = unsettled(db).await else {
            return;
        };
        if tokio::time::Instant::now() > deadline {
            eprintln!("not settled after {PATIENCE:?}: {why}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Settles, then checks exactly-once delivery, the confirmed orders and the timeline.
async fn check_after_restart(
    label: &str,
    db: &Database,
    app: &AppLayer,
    confirmed: &BTreeSet<i64>,
    trouble: &Trouble,
) -> usize {
    settle(db).await;
    let (report, problems) = checker::check(db, &app.snapshot()).await;
    println!("{label}: {report}");
    assert!(report.is_clean(), "{label}: {report}");
    assert_eq!(problems, Vec::<String>::new(), "{label}: timeline");
    let committed: BTreeSet<i64> = checker::committed_orders(db)
        .await
        .iter()
        .map(|o| o.id)
        .collect();
    let missing: Vec<_> = confirmed.difference(&committed).collect();
    assert!(
        missing.is_empty(),
        "{label}: orders confirmed with 2xx are not in the database: {missing:?}"
    );
    assert_eq!(*trouble.lock().unwrap(), Vec::<String>::new(), "{label}");
    if let Some(why) = unsettled(db).await {
        panic!("{label}: {why}");
    }
    report.ok
}

async fn connected_devices(base: &str) -> Option<u64> {
    let (_, body) = Operator::anonymous(base).get("/readyz").await;
    body["connected_devices"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kill_9_during_a_fan_out_to_fifty_devices_lose_and_duplicate_nothing() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut server = ServerProcess::start(data.path(), addr).await.unwrap();
    let db = server.database_at();
    let fingerprint = server.fingerprint();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let app = AppLayer::default();
    let trouble: Trouble = Arc::default();
    let mut units = Vec::new();
    let mut clients: BTreeMap<i64, Client> = BTreeMap::new();
    let mut officers = JoinSet::new();
    for i in 0..DEVICES {
        let device = admin
            .unit_with_device_using(
                &fingerprint,
                &format!("CL-{i:02}"),
                &["patrol"],
                quick_reconnect,
            )
            .await;
        units.push(device.unit_id);
        clients.insert(device.device_id, device.client.clone());
        officers.spawn(officer(device, app.clone(), trouble.clone()));
    }
    within("every device connected", async {
        while connected_devices(&server.base).await != Some(DEVICES as u64) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let mut confirmed = BTreeSet::new();
    for cycle in 1..=CYCLES {
        let seen_before: BTreeSet<i64> = checker::committed_orders(&db)
            .await
            .iter()
            .map(|o| o.id)
            .collect();
        let op = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
            .await
            .unwrap();
        // Spread the kill over the fan-out: right at its start, midway, near its end.
        let kill_after = (cycle * 17) % (DEVICES - 1);
        let got = fan_out_and_kill(&op, &units, cycle, kill_after, server).await;
        assert!(
            got.len() >= kill_after,
            "cycle {cycle}: only {} of the {kill_after} orders before the kill were confirmed",
            got.len()
        );
        confirmed.extend(got.iter().copied());
        // Where the kill caught this cycle's orders.
        let mut at_kill: BTreeMap<String, usize> = BTreeMap::new();
        for o in checker::committed_orders(&db).await {
            if !seen_before.contains(&o.id) {
                *at_kill.entry(o.state).or_default() += 1;
            }
        }
        server = ServerProcess::start(data.path(), addr).await.unwrap();
        check_after_restart(
            &format!(
                "cycle {cycle:2}: killed after {kill_after:2} confirmed, orders then {at_kill:?}"
            ),
            &db,
            &app,
            &confirmed,
            &trouble,
        )
        .await;
    }

    // The inboxes on the devices' disks agree with what their applications were told.
    for (device_id, client) in &clients {
        let inbox: Vec<i64> = client
            .orders()
            .await
            .unwrap()
            .iter()
            .map(|o| o.order.order_id)
            .collect();
        let told = app.snapshot().remove(device_id).unwrap_or_default();
        assert_eq!(
            inbox, told,
            "device {device_id}: inbox and application differ"
        );
    }
    let total = check_after_restart("final", &db, &app, &confirmed, &trouble).await;
    assert!(
        total >= confirmed.len() && confirmed.len() >= DEVICES * CYCLES / 4,
        "too few orders to prove anything: {total} delivered, {} confirmed",
        confirmed.len()
    );
    println!(
        "crash loop: {CYCLES} kills, {} orders confirmed, {total} delivered exactly once",
        confirmed.len()
    );
    officers.abort_all();
    server.kill9().await;
}

/// The device side of the same promise: a tablet whose process dies right after its
/// application was handed an order must not hand it over again after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_killed_right_after_its_app_saw_an_order_does_not_surface_it_again() {
    let app = dispatch_tests::spawn_app().await;
    let admin = app.admin().await;
    let seen = AppLayer::default();
    for i in 0..5 {
        let mut device = admin
            .unit_with_device(&app.fingerprint, &format!("DK-{i}"), &["patrol"])
            .await;
        let device_id = device.device_id;
        let (_, order) = admin.dispatch_to(device.unit_id, "Kaisaniemenkatu 1").await;
        device
            .wait_for("the order", |e| match e {
                Event::Order(o) if o.order.order_id == order => Some(()),
                _ => None,
            })
            .await;
        seen.record(device_id, order);
        // The process dies the moment the officer has the order on screen.
        let dir = device.crash().await;
        let mut device = Device::start(dir).await;
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            device.wait_for("nothing", |e| {
                if let Event::Order(o) = e {
                    seen.record(device_id, o.order.order_id);
                }
                None::<()>
            }),
        )
        .await;
    }
    let (report, problems) = checker::check(&app.database_at(), &seen.snapshot()).await;
    println!("tablet kills: {report}");
    assert!(report.is_clean(), "{report}");
    assert_eq!(problems, Vec::<String>::new());
    app.stop().await;
}

/// The escalation ladder under SIGKILL: orders to tablets that never connect escalate for the
/// missing receipt, then for the missing acknowledgement, then expire, while the server is
/// killed and restarted again and again. Each step is recorded once and never early (server
/// clock), and the units are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_escalation_ladder_runs_once_per_order_across_kill_9() {
    const UNITS: usize = 5;
    let (receipt_s, acknowledge_s, expire_s) = (1, 2, 3);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("dispatchd.toml");
    std::fs::write(
        &config,
        format!(
            "[escalation]\nreceipt_secs = {r:?}\nacknowledge_secs = {a:?}\nexpire_secs = {e:?}\n\
             sweep_millis = 50\n",
            r = [receipt_s; 5],
            a = [acknowledge_s; 5],
            e = [expire_s; 5]
        ),
    )
    .unwrap();
    let data_dir = data.path().join("data");
    let addr = free_addr();
    let mut server = ServerProcess::start_configured(&data_dir, addr, &config)
        .await
        .unwrap();
    let db = server.database_at();
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    let trust = field_client::Trust::pin(&server.fingerprint()).unwrap();
    let mut orders = Vec::new();
    for i in 0..UNITS {
        let unit = admin.create_unit(&format!("LD-{i}"), &["patrol"]).await;
        let code = admin.enrolment_code(unit).await;
        // Enrolled, but the tablet is switched off: nothing ever confirms the order.
        field_client::enroll(&server.base, &trust, &code, None)
            .await
            .unwrap();
        orders.push(admin.dispatch_to(unit, "Unioninkatu 2").await.1);
    }

    let (server, kills) = within("every order to expire across the kills", async {
        let mut kills = 0;
        loop {
            let states = checker::committed_orders(&db).await;
            if states.iter().all(|o| o.state == "expired") {
                return (server, kills);
            }
            // Kill at varying moments of the sweep.
            tokio::time::sleep(Duration::from_millis(100 + 70 * (kills % 5))).await;
            server.kill9().await;
            kills += 1;
            server = ServerProcess::start_configured(&data_dir, addr, &config)
                .await
                .unwrap();
        }
    })
    .await;
    assert!(kills >= 3, "only {kills} kills happened on the ladder");

    let events = checker::order_events(&db).await;
    let committed = checker::committed_orders(&db).await;
    assert_eq!(
        checker::timeline_problems(&committed, &events),
        Vec::<String>::new()
    );
    let admin = Operator::login(&server.base, ADMIN, ADMIN_PASSWORD)
        .await
        .unwrap();
    for order in &orders {
        let (_, o) = admin.get(&format!("/api/orders/{order}")).await;
        let created = o["created_at_ms"].as_i64().unwrap();
        let (_, timeline) = admin
            .get(&format!("/api/incidents/{}/timeline", o["incident_id"]))
            .await;
        let steps: Vec<(String, i64)> = timeline
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "order_escalated" || e["kind"] == "order_expired")
            .map(|e| {
                let step = e["detail"]["stage"]
                    .as_str()
                    .unwrap_or(e["kind"].as_str().unwrap())
                    .to_owned();
                (step, e["at_ms"].as_i64().unwrap() - created)
            })
            .collect();
        let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            names,
            ["no_receipt", "no_acknowledgement", "order_expired"],
            "order {order}: {steps:?}"
        );
        for ((step, after), secs) in steps.iter().zip([receipt_s, acknowledge_s, expire_s]) {
            assert!(
                *after >= secs * 1000,
                "order {order}: {step} after {after} ms, before its {secs} s"
            );
        }
        let (_, unit) = admin.get(&format!("/api/units/{}", o["unit_id"])).await;
        assert_eq!(unit["status"], "available", "{unit}");
    }
    println!("escalation ladder: {UNITS} orders expired once each across {kills} kills");
    server.kill9().await;
}
