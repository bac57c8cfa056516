//! GPS sources of the tablet agent, end to end: `field-client run --gps …` reads positions and
//! the server sees them as the unit's position. One source is a fake gpsd (a TCP listener
//! speaking gpsd's JSON protocol), the other a recorded NMEA 0183 file.

use std::time::Duration;

use dispatch_tests::{enroll_with_binary, spawn_app, within, AgentProcess, Operator};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Waits until the server's position of the unit is (lat, lon); returns it.
async fn wait_position(admin: &Operator, unit_id: i64, lat: f64, lon: f64) -> Value {
    within(&format!("position {lat},{lon}"), async {
        loop {
            let (_, unit) = admin.get(&format!("/api/units/{unit_id}")).await;
            let p = &unit["position"];
            let close = |v: &Value, want: f64| v.as_f64().is_some_and(|x| (x - want).abs() < 1e-6);
            if close(&p["lat"], lat) && close(&p["lon"], lon) {
                return p.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn enrolled_unit(
    call_sign: &str,
) -> (dispatch_tests::TestApp, Operator, i64, tempfile::TempDir) {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let unit_id = admin.create_unit(call_sign, &["patrol"]).await;
    let code = admin.enrolment_code(unit_id).await;
    let state = enroll_with_binary(&app.base, &app.fingerprint, &code).await;
    (app, admin, unit_id, state)
}

#[tokio::test]
async fn positions_from_a_fake_gpsd_reach_the_server() {
    let (_app, admin, unit_id, state) = enrolled_unit("P-81").await;
    let gpsd = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gpsd.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (socket, _) = gpsd.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write
            .write_all(b"{\"class\":\"VERSION\",\"release\":\"3.25\",\"proto_major\":3,\"proto_minor\":15}\n")
            .await
            .unwrap();
        let watch = lines.next_line().await.unwrap().unwrap();
        let reports = [
            r#"{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0"}]}"#,
            r#"{"class":"WATCH","enable":true,"json":true}"#,
            // No fix yet: must be ignored.
            r#"{"class":"TPV","device":"/dev/ttyACM0","mode":1}"#,
            r#"{"class":"SKY","satellites":[]}"#,
            r#"{"class":"TPV","device":"/dev/ttyACM0","mode":3,"time":"2026-11-22T05:00:00.000Z","lat":60.1612,"lon":24.9311,"speed":8.0,"track":90.0,"eph":6.5}"#,
        ];
        for report in reports {
            write.write_all(report.as_bytes()).await.unwrap();
            write.write_all(b"\n").await.unwrap();
        }
        // Keep the connection open as gpsd does.
        tokio::time::sleep(Duration::from_secs(60)).await;
        watch
    });
    let spec = format!("gpsd:{addr}");
    let _agent = AgentProcess::spawn(state.path(), &["--gps", &spec], &[]);
    let position = wait_position(&admin, unit_id, 60.1612, 24.9311).await;
    assert_eq!(position["accuracy_m"], 6.5);
    assert_eq!(position["fix_time_ms"], 1_795_323_600_000_i64);
    fake.abort();
}

#[tokio::test]
async fn the_client_asks_gpsd_for_json_reports() {
    let gpsd = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = gpsd.local_addr().unwrap().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let follow = tokio::spawn(async move { field_client::gps::gpsd::follow(&addr, &tx).await });
    let (socket, _) = within("the client to connect", gpsd.accept())
        .await
        .unwrap();
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let watch = within("the WATCH command", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(watch, r#"?WATCH={"enable":true,"json":true};"#);
    write
        .write_all(b"{\"class\":\"TPV\",\"mode\":2,\"lat\":60.2,\"lon\":24.8}\n")
        .await
        .unwrap();
    let fix = within("a fix", rx.recv()).await.unwrap();
    assert_eq!((fix.lat, fix.lon), (60.2, 24.8));
    // gpsd goes away: the follower ends cleanly and the source would reconnect.
    drop(write);
    drop(lines);
    within("the follower to end", follow)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn positions_from_an_nmea_file_reach_the_server() {
    let (_app, admin, unit_id, state) = enrolled_unit("P-82").await;
    let recording = state.path().join("drive.nmea");
    // Two good fixes, one with a broken checksum and one void fix between them.
    std::fs::write(
        &recording,
        "$GPGGA,123519,6010.194,N,02456.304,E,1,08,0.9,545.4,M,46.9,M,,*4C\n\
         $GPRMC,123519,A,6010.194,N,02456.304,E,022.4,084.4,230394,003.1,W*61\n\
         $GPRMC,123520,A,6011.000,N,02457.000,E,022.4,084.4,230394,003.1,W*00\n\
         $GPRMC,123521,V,,,,,,,230394,,*00\n\
         $GPRMC,123522,A,6010.300,N,02456.500,E,010.0,090.0,230394,003.1,W*60\n",
    )
    .unwrap();
    let spec = format!("nmea:{}", recording.display());
    let _agent = AgentProcess::spawn(state.path(), &["--gps", &spec], &[]);
    let position = wait_position(
        &admin,
        unit_id,
        60.171_666_666_666_67,
        24.941_666_666_666_67,
    )
    .await;
    // 1994-03-23T12:35:22Z, with the accuracy from GGA's HDOP 0.9.
    assert_eq!(position["fix_time_ms"], 764_426_122_000_i64);
    assert!((position["accuracy_m"].as_f64().unwrap() - 4.5).abs() < 1e-9);
}
