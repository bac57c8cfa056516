//! Premise information against a real server and a real field client: the agency imports its
//! hazards and notes (CSV and GeoJSON, whole files or nothing), intake finds the ones at a
//! call's location, the order carries them to the tablet, and removed or expired entries are
//! shown to nobody. Only admins change them; bad files are refused naming the line.

use dispatch_tests::{db_snapshot, spawn_app, Operator};
use field_client::Event;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A flat with a dangerous dog (Kamppi) and an estate with a gate code (a square around it).
const DOG: (f64, f64) = (60.1687, 24.9316);

async fn import(admin: &Operator, content_type: &str, body: String) -> (StatusCode, Value) {
    let request = admin
        .http
        .post(format!("{}/api/premises/import", admin.base))
        .header("content-type", content_type)
        .body(body);
    Operator::reply(request).await
}

fn labels(found: &Value) -> Vec<&str> {
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn hazards_reach_intake_and_the_tablet_until_removed() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let csv = format!(
        "label,text,severity,lat,lon,radius_m,expires\n\
         Dog,\"Aggressive dog, \"\"Rex\"\"\",danger,{},{},40,\n\
         Old warning,Expired long ago,caution,{},{},40,2001-01-01T00:00:00Z\n",
        DOG.0, DOG.1, DOG.0, DOG.1
    );
    let (status, body) = import(&admin, "text/csv", csv).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["added"], 2);
    let geojson = json!({ "type": "FeatureCollection", "features": [{
        "type": "Feature",
        "geometry": { "type": "Polygon", "coordinates": [[
            [24.930, 60.168], [24.933, 60.168], [24.933, 60.170], [24.930, 60.170], [24.930, 60.168]
        ]] },
        "properties": { "label": "Estate", "text": "Gate code 4321", "severity": "info" }
    }]});
    let (status, body) = import(&admin, "application/geo+json", geojson.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Intake at the flat: the dog first, then the estate; the expired entry nowhere.
    let (status, here) = admin
        .get(&format!("/api/premises/at?lat={}&lon={}", DOG.0, DOG.1))
        .await;
    assert_eq!(status, StatusCode::OK, "{here}");
    assert_eq!(labels(&here), ["Dog", "Estate"]);
    let (_, away) = admin.get("/api/premises/at?lat=60.1750&lon=24.9400").await;
    assert!(labels(&away).is_empty(), "{away}");
    let (_, all) = admin.get("/api/premises").await;
    assert_eq!(labels(&all), ["Estate", "Dog"]);

    // The order carries them to the tablet.
    let mut device = admin
        .unit_with_device(&app.fingerprint, "P-31", &["patrol"])
        .await;
    let (_, incident) = admin
        .post(
            "/api/incidents",
            json!({ "kind": "domestic_violence", "priority": 0, "lat": DOG.0, "lon": DOG.1 }),
        )
        .await;
    let incident_id = incident["id"].as_i64().unwrap();
    let (status, order) = admin
        .post(
            &format!("/api/incidents/{incident_id}/assignments"),
            json!({ "unit_id": device.unit_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let delivered = device
        .wait_for("the order", |e| match e {
            Event::Order(o) => Some(o.order.clone()),
            _ => None,
        })
        .await;
    let hazards: Vec<(&str, &str)> = delivered
        .incident
        .hazards
        .iter()
        .map(|h| (h.label.as_str(), h.severity.as_str()))
        .collect();
    assert_eq!(hazards, [("Dog", "danger"), ("Estate", "info")]);
    assert_eq!(
        delivered.incident.hazards[0].text,
        "Aggressive dog, \"Rex\""
    );

    // Removed: shown to nobody, kept for the record.
    let dog = here[0]["id"].as_i64().unwrap();
    let (status, body) = admin
        .post(&format!("/api/premises/{dog}/remove"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, here) = admin
        .get(&format!("/api/premises/at?lat={}&lon={}", DOG.0, DOG.1))
        .await;
    assert_eq!(labels(&here), ["Estate"]);
    let (status, body) = admin
        .post(&format!("/api/premises/{dog}/remove"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, audit) = admin.get("/api/audit?after=0&limit=1000").await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| k.starts_with("premise"))
        .collect();
    assert_eq!(
        kinds,
        ["premises_added", "premises_added", "premise_removed"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bad_file_or_a_non_admin_changes_nothing_and_a_large_file_is_taken() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let operator = admin
        .add_user("olli", "amber kettle drifting 58", "operator")
        .await;
    let before = db_snapshot(&app).await;

    let good_row = "Dog,x,danger,60.17,24.94,30,\n";
    let cases = [
        (
            "text/csv",
            format!("label,text,severity,lat,lon,radius_m,expires\n{good_row}Cat,y,danger,95,24.94,30,\n"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "line 3: `lat`",
        ),
        (
            "text/csv",
            format!("label,text,severity,lat,lon,radius_m,expires\n{good_row}Cat,y,danger,60,24,30,next week\n"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "line 3: `expires`",
        ),
        (
            "application/geo+json",
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[24.9,60.1]},"properties":{"label":"A","text":"B","severity":"grave"}}]}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "feature 0: `severity`",
        ),
        ("application/geo+json", "{not json".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "GeoJSON"),
        ("text/plain", good_row.to_owned(), StatusCode::BAD_REQUEST, "Content-Type"),
        ("text/csv", "label,text,severity,lat,lon\n".to_owned(), StatusCode::UNPROCESSABLE_ENTITY, "no entries"),
    ];
    for (content_type, file, want, named) in cases {
        let (status, body) = import(&admin, content_type, file.clone()).await;
        assert_eq!(status, want, "{content_type} {file}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(named),
            "{content_type}: {body}"
        );
    }
    let (status, body) = import(
        &operator,
        "text/csv",
        format!("label,text,severity,lat,lon\n{good_row}"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = admin
        .post(
            "/api/premises",
            json!({ "label": "A", "text": "B", "severity": "info" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(db_snapshot(&app).await, before);

    // A file far over the JSON body limit (64 KiB) is taken whole: 3,000 rows, about 150 KiB.
    let mut file = String::from("label,text,severity,lat,lon,radius_m,expires\n");
    for n in 0..3000_u32 {
        // 111 m apart from north to south.
        let lat = 59.0 + f64::from(n) * 0.001;
        file.push_str(&format!(
            "Entrance {n},Use the side door of building {n},info,{lat:.4},24.9,20,\n"
        ));
    }
    let (status, body) = import(&admin, "text/csv", file).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["added"], 3000);
    let (_, at) = operator.get("/api/premises/at?lat=59.1230&lon=24.9").await;
    assert_eq!(labels(&at), ["Entrance 123"]);
    app.stop().await;
}
