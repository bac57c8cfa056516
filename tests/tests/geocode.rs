//! Geocoding over HTTP: search and reverse lookups answered from the Helsinki extract, bad
//! input refused with a 4xx naming the field, and a clear 409 when no map is configured.

use dispatch_tests::{helsinki_map, spawn_app, spawn_app_with};
use reqwest::StatusCode;
use serde_json::Value;

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or(""),
        body["error"]["message"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn search_and_reverse_on_the_helsinki_map() {
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let admin = app.admin().await;

    let (status, body) = admin.get("/api/geocode?q=Aleksanterinkatu%2052").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = &body[0];
    assert_eq!(first["kind"], "address", "{body}");
    assert_eq!(first["street"], "Aleksanterinkatu", "{body}");
    assert_eq!(first["housenumber"], "52", "{body}");
    assert!(first["label"]
        .as_str()
        .unwrap()
        .starts_with("Aleksanterinkatu 52"));
    let (lat, lon) = (
        first["lat"].as_f64().unwrap(),
        first["lon"].as_f64().unwrap(),
    );
    assert!(
        (60.1..60.2).contains(&lat) && (24.9..25.0).contains(&lon),
        "{body}"
    );

    // Forgiving: other case, number first, no diacritics, a limit.
    let (status, body) = admin
        .get("/api/geocode?q=52%20ALEKSANTERINKATU&limit=1")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["housenumber"], "52", "{body}");

    let (status, body) = admin
        .get(&format!("/api/geocode/reverse?lat={lat}&lon={lon}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["kind"], "address", "{body}");
    assert_eq!(body["street"], "Aleksanterinkatu", "{body}");
    assert_eq!(body["housenumber"], "52", "{body}");
    assert!(body["distance_m"].as_f64().unwrap() < 1.0, "{body}");

    // Far out at sea there is nothing to name.
    let (status, body) = admin.get("/api/geocode/reverse?lat=59.5&lon=24.0").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn bad_geocode_input_is_refused() {
    let app = spawn_app_with(|c| c.map = Some(helsinki_map())).await;
    let admin = app.admin().await;
    let long = "a".repeat(201);
    let cases = [
        ("/api/geocode?q=", StatusCode::UNPROCESSABLE_ENTITY, "`q`"),
        (
            "/api/geocode?q=%20%20%20",
            StatusCode::UNPROCESSABLE_ENTITY,
            "`q`",
        ),
        ("/api/geocode", StatusCode::UNPROCESSABLE_ENTITY, "`q`"),
        (
            &format!("/api/geocode?q={long}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "`q`",
        ),
        (
            "/api/geocode?q=Bulevardi&limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "`limit`",
        ),
        (
            "/api/geocode?q=Bulevardi&limit=51",
            StatusCode::UNPROCESSABLE_ENTITY,
            "`limit`",
        ),
        (
            "/api/geocode?q=Bulevardi&limit=ten",
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "/api/geocode/reverse?lat=91&lon=24.9",
            StatusCode::UNPROCESSABLE_ENTITY,
            "lat",
        ),
        (
            "/api/geocode/reverse?lat=60.1&lon=181",
            StatusCode::UNPROCESSABLE_ENTITY,
            "lon",
        ),
        (
            "/api/geocode/reverse?lat=north&lon=24.9",
            StatusCode::BAD_REQUEST,
            "lat",
        ),
        (
            "/api/geocode/reverse?lat=60.1",
            StatusCode::BAD_REQUEST,
            "lon",
        ),
    ];
    for (path, expected, field) in cases {
        let (status, body) = admin.get(path).await;
        assert_eq!(status, expected, "{path}: {body}");
        let (_, message) = error_of(&body);
        assert!(message.contains(field), "{path}: {body}");
    }
    // Operators only.
    let anonymous = dispatch_tests::Operator::anonymous(&app.base);
    let (status, _) = anonymous.get("/api/geocode?q=Bulevardi").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn without_a_map_geocoding_is_a_conflict() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for path in [
        "/api/geocode?q=Aleksanterinkatu%2052",
        "/api/geocode/reverse?lat=60.17&lon=24.94",
    ] {
        let (status, body) = admin.get(path).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        assert_eq!(error_of(&body).0, "no_map", "{body}");
    }
    app.stop().await;
}
