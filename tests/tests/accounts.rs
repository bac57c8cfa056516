//! Accounts, sessions and the same-origin rule against a real server over HTTPS: lockout after
//! repeated wrong passwords, throttling, idle expiry, ending sessions (the console socket closes),
//! disabled accounts, the password policy, an admin's reset, role changes, cross-origin
//! refusals, the security headers, the `dispatchd user` commands, and an audit row for each.

use std::time::Duration;

use dispatch_server::config::PerRole;
use dispatch_tests::{
    binary, console_socket, expect_close, next_json_matching, session_cookie, spawn_app,
    spawn_app_with, Operator, ADMIN, ADMIN_PASSWORD,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

const OLLI_PASSWORD: &str = "amber kettle drifting 58";

/// Creates operator `olli` and answers its id.
async fn add_olli(admin: &Operator) -> i64 {
    let (status, body) = admin
        .post(
            "/api/users",
            json!({ "username": "olli", "password": OLLI_PASSWORD, "role": "operator" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn try_login(base: &str, username: &str, password: &str) -> (StatusCode, Value) {
    Operator::anonymous(base)
        .post(
            "/api/login",
            json!({ "username": username, "password": password }),
        )
        .await
}

/// Audit events of `kind`, oldest first.
async fn audit_of(admin: &Operator, kind: &str) -> Vec<Value> {
    let (status, events) = admin.get("/api/audit?after=0&limit=5000").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_until_an_admin_unlocks_it() {
    let app = spawn_app_with(|c| c.accounts.lockout_secs = 0).await;
    let admin = app.admin().await;
    let olli = add_olli(&admin).await;
    for _ in 0..5 {
        let (status, body) = try_login(&app.base, "olli", "not the password at all").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "bad_login");
    }
    let (status, locked) = try_login(&app.base, "olli", OLLI_PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the right password while locked"
    );
    let (_, unknown) = try_login(&app.base, "nobody", "whatever it is").await;
    assert_eq!(
        locked, unknown,
        "a locked account answers as an unknown user"
    );

    let failed = audit_of(&admin, "login_failed").await;
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "wrong_password",
            "locked",
            "unknown_user"
        ]
    );
    assert!(failed.iter().all(|e| e["actor"] == "anonymous"));
    let locks = audit_of(&admin, "account_locked").await;
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0]["detail"]["username"], "olli");
    let (_, users) = admin.get("/api/users").await;
    let row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "olli")
        .unwrap()
        .clone();
    assert_eq!(row["locked_until_ms"], i64::MAX);

    let (status, body) = admin
        .post(&format!("/api/users/{olli}/unlock"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    assert_eq!(audit_of(&admin, "account_unlocked").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_login_flood_from_one_address_gets_429_with_retry_after() {
    // Two attempts a minute: a token comes back only after 30 s, far longer than this takes.
    let app = spawn_app_with(|c| c.accounts.login_attempts_per_minute = 2).await;
    let admin = app.admin().await; // the first attempt
    let (status, _) = try_login(&app.base, ADMIN, "wrong wrong wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for _ in 0..3 {
        let res = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap()
            .post(format!("{}/api/login", app.base))
            .json(&json!({ "username": ADMIN, "password": ADMIN_PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_attempts");
    }
    let throttled = audit_of(&admin, "login_throttled").await;
    assert_eq!(throttled.len(), 1, "recorded once per run: {throttled:?}");
    assert_eq!(throttled[0]["source"], "127.0.0.1");
    assert_eq!(
        audit_of(&admin, "login_failed").await.len(),
        1,
        "throttled attempts check no password"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idle_session_ends_and_the_sweep_records_it() {
    let app = spawn_app_with(|c| {
        c.accounts.idle_timeout_secs = PerRole {
            operator: 5,
            supervisor: 3600,
            admin: 3600,
        };
    })
    .await;
    let admin = app.admin().await;
    add_olli(&admin).await;
    let olli = Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    let (status, me) = olli.get("/api/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["idle_timeout_secs"], 5);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, body) = olli.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(admin.get("/api/me").await.0, StatusCode::OK, "per role");
    dispatch_tests::within("the sweep to record the expiry", async {
        loop {
            let expired = audit_of(&admin, "session_expired").await;
            if let Some(e) = expired.first() {
                assert_eq!(e["detail"]["username"], "olli");
                assert_eq!(e["detail"]["reason"], "idle");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn ending_a_session_or_disabling_the_account_closes_its_console_socket() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let olli_id = add_olli(&admin).await;
    let first = session_cookie(&app.base, "olli", OLLI_PASSWORD).await;
    let mut first_socket = console_socket(app.addr, &app.fingerprint, Some(&first), None)
        .await
        .unwrap();
    next_json_matching(&mut first_socket, "snapshot", |v| v["type"] == "snapshot").await;

    let second = Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    let (status, sessions) = second.get("/api/sessions").await;
    assert_eq!(status, StatusCode::OK, "{sessions}");
    let sessions = sessions.as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s["source"] == "127.0.0.1"));
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let (status, _) = second.get("/api/sessions?all=true").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only admins list everybody's"
    );
    let (status, _) = second.post("/api/sessions/999999/end", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = second
        .post(&format!("/api/sessions/{}/end", other["id"]), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(expect_close(&mut first_socket).await.0, 4001);
    let res = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!("{}/api/me", app.base))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "the ended cookie");

    let cookie = session_cookie(&app.base, "olli", OLLI_PASSWORD).await;
    let mut socket = console_socket(app.addr, &app.fingerprint, Some(&cookie), None)
        .await
        .unwrap();
    next_json_matching(&mut socket, "snapshot", |v| v["type"] == "snapshot").await;
    let (status, body) = admin
        .post(&format!("/api/users/{olli_id}/disable"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions_ended"], 2, "{body}");
    assert_eq!(expect_close(&mut socket).await.0, 4001);
    assert_eq!(second.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = try_login(&app.base, "olli", OLLI_PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let refused = audit_of(&admin, "login_failed").await;
    assert_eq!(refused.last().unwrap()["detail"]["reason"], "disabled");
    assert_eq!(audit_of(&admin, "session_ended").await.len(), 1);
    assert_eq!(audit_of(&admin, "account_disabled").await.len(), 1);

    let (status, _) = admin
        .post(&format!("/api/users/{olli_id}/enable"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    assert_eq!(audit_of(&admin, "account_enabled").await.len(), 1);
    let (status, _) = admin.post("/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let admin = app.admin().await;
    assert_eq!(audit_of(&admin, "logout").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn weak_passwords_are_refused_naming_why() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for (password, why) in [
        ("1234567890ab", "weak"),
        ("password1234", "weak"),
        ("short", "12 to 200"),
        ("kimkimkim-harbour-lantern", "username"),
    ] {
        let (status, body) = admin
            .post(
                "/api/users",
                json!({ "username": "kimkimkim", "password": password, "role": "operator" }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{password}: {body}"
        );
        assert_eq!(body["error"]["code"], "invalid_field");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("password") && message.contains(why),
            "{message}"
        );
    }
    let (_, users) = admin.get("/api/users").await;
    assert_eq!(users.as_array().unwrap().len(), 1, "nothing was created");
    app.stop().await;
}

#[tokio::test]
async fn a_reset_password_must_be_changed_before_anything_else() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let olli_id = add_olli(&admin).await;
    let before = Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    let (status, reset) = admin
        .post(&format!("/api/users/{olli_id}/reset-password"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_eq!(reset["sessions_ended"], 1);
    assert_eq!(before.get("/api/me").await.0, StatusCode::UNAUTHORIZED);
    let temporary = reset["temporary_password"].as_str().unwrap().to_owned();
    assert!(try_login(&app.base, "olli", OLLI_PASSWORD).await.0 == StatusCode::UNAUTHORIZED);

    let olli = Operator::login(&app.base, "olli", &temporary)
        .await
        .unwrap();
    let (_, me) = olli.get("/api/me").await;
    assert_eq!(me["must_change_password"], true);
    let (status, body) = olli.get("/api/incidents").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "password_change_required");
    let (status, body) = olli
        .post(
            "/api/password",
            json!({ "current_password": "not it at all", "new_password": "lighthouse gravel 1906 tulip" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("current_password"));
    let (status, _) = olli
        .post(
            "/api/password",
            json!({ "current_password": temporary, "new_password": "password1234" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "the policy holds");
    let (status, body) = olli
        .post(
            "/api/password",
            json!({ "current_password": temporary, "new_password": "lighthouse gravel 1906 tulip" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(olli.get("/api/incidents").await.0, StatusCode::OK);
    Operator::login(&app.base, "olli", "lighthouse gravel 1906 tulip")
        .await
        .unwrap();
    assert_eq!(audit_of(&admin, "password_reset").await.len(), 1);
    assert_eq!(audit_of(&admin, "password_changed").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn role_changes_and_denials_are_audited_and_the_last_admin_stays() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let olli_id = add_olli(&admin).await;
    let olli = Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    let (status, _) = olli.get("/api/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let denied = audit_of(&admin, "access_denied").await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["actor"], "operator:olli");
    assert_eq!(denied[0]["detail"]["request"], "GET /api/audit");
    assert_eq!(denied[0]["detail"]["required_role"], "supervisor");

    let (status, body) = admin
        .post(
            &format!("/api/users/{olli_id}/role"),
            json!({ "role": "supervisor" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        olli.get("/api/me").await.0,
        StatusCode::UNAUTHORIZED,
        "sessions end"
    );
    let olli = Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    assert_eq!(olli.get("/api/audit").await.0, StatusCode::OK);
    let changed = audit_of(&admin, "role_changed").await;
    assert_eq!(changed[0]["detail"]["from"], "operator");
    assert_eq!(changed[0]["detail"]["to"], "supervisor");

    let (_, me) = admin.get("/api/me").await;
    let admin_id = me["id"].as_i64().unwrap();
    for (path, body) in [
        ("disable", json!({})),
        ("role", json!({ "role": "operator" })),
    ] {
        let (status, answer) = admin
            .post(&format!("/api/users/{admin_id}/{path}"), body)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"]["code"], "last_admin");
    }
    let (status, _) = admin.post("/api/users/999/disable", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn state_changes_from_another_origin_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let host = app.addr.to_string();
    let incident = json!({ "kind": "theft", "priority": 2, "lat": 60.17, "lon": 24.94 });
    let other_port = format!("https://127.0.0.1:{}", app.addr.port() + 1);
    for headers in [
        vec![("origin", other_port.as_str())],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", other_port.as_str()),
        ],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let mut request = http
            .post(format!("{}/api/incidents", app.base))
            .header("cookie", &cookie)
            .json(&incident);
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let (status, body) = Operator::reply(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "cross_origin");
    }
    let (_, incidents) = admin.get("/api/incidents").await;
    assert_eq!(
        incidents.as_array().unwrap().len(),
        0,
        "nothing was created"
    );
    let refused =
        console_socket(app.addr, &app.fingerprint, Some(&cookie), Some(&other_port)).await;
    assert!(refused.is_err(), "the live channel from another origin");

    let own = format!("https://{host}");
    let request = http
        .post(format!("{}/api/incidents", app.base))
        .header("cookie", &cookie)
        .header("origin", &own)
        .header("sec-fetch-site", "same-origin")
        .json(&incident);
    let (status, body) = Operator::reply(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = spawn_app().await;
    let cookie = session_cookie(&app.base, ADMIN, ADMIN_PASSWORD).await;
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    for path in ["/api/me", "/api/incidents", "/api/nothing-here", "/"] {
        let res = http
            .get(format!("{}{path}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let h = res.headers();
        assert_eq!(h["strict-transport-security"], "max-age=31536000", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        if path.starts_with("/api/") {
            assert_eq!(h["cache-control"], "no-store", "{path}");
        }
    }
    app.stop().await;
}

/// Runs `dispatchd --data-dir DIR ARGS…` and answers its standard output, failing on an error.
async fn dispatchd(dir: &std::path::Path, args: &[&str], password: Option<&str>) -> String {
    let mut command = tokio::process::Command::new(binary("dispatchd"));
    command.arg("--data-dir").arg(dir).args(args);
    if let Some(p) = password {
        command.env("DISPATCH_NEW_PASSWORD", p);
    }
    let out = command.output().await.unwrap();
    assert!(
        out.status.success(),
        "dispatchd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_user_commands_manage_accounts_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let weak = tokio::process::Command::new(binary("dispatchd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "--username", "kim", "--role", "admin"])
        .env("DISPATCH_NEW_PASSWORD", "password1234")
        .output()
        .await
        .unwrap();
    assert!(!weak.status.success());
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    dispatchd(
        &data,
        &["user", "add", "--username", "kim", "--role", "admin"],
        Some("granite harbour signal 41"),
    )
    .await;
    dispatchd(
        &data,
        &["user", "add", "--username", "lee", "--role", "operator"],
        Some("copper lantern meadow 62"),
    )
    .await;
    dispatchd(&data, &["user", "disable", "lee"], None).await;
    dispatchd(&data, &["user", "set-role", "lee", "supervisor"], None).await;
    let reset = dispatchd(&data, &["user", "reset-password", "lee"], None).await;
    assert!(reset.contains("one-time password for lee: "), "{reset}");
    let list = dispatchd(&data, &["user", "list"], None).await;
    let lee = list.lines().find(|l| l.starts_with("lee")).unwrap();
    assert!(
        lee.contains("supervisor") && lee.contains("disabled") && lee.contains("password reset"),
        "{list}"
    );
    let kim = list.lines().find(|l| l.starts_with("kim")).unwrap();
    assert!(kim.contains("admin") && kim.contains("enabled"), "{list}");
    let refused = tokio::process::Command::new(binary("dispatchd"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "disable", "kim"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success(), "the last admin");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("only enabled admin"));
}

/// The code an authenticator app shows for `secret_base32` at `offset_secs` from now.
fn authenticator_code(secret_base32: &str, offset_secs: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .unwrap();
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        String::new(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp.generate(now.saturating_add_signed(offset_secs))
}

async fn login_with_code(base: &str, code: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({ "username": "olli", "password": OLLI_PASSWORD });
    if let Some(code) = code {
        body["code"] = code.into();
    }
    Operator::anonymous(base).post("/api/login", body).await
}

#[tokio::test]
async fn a_supervisor_sets_up_a_second_factor_and_then_needs_its_code() {
    let app = spawn_app_with(|c| {
        c.accounts.second_factor_roles = vec![dispatch_server::domain::Role::Supervisor];
    })
    .await;
    let admin = app.admin().await;
    let olli_id = add_olli(&admin).await;
    let (status, _) = admin
        .post(
            &format!("/api/users/{olli_id}/role"),
            json!({ "role": "supervisor" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, first) = login_with_code(&app.base, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["second_factor_required"], true);
    let olli = Operator::login(&app.base, "olli", OLLI_PASSWORD)
        .await
        .unwrap();
    let (status, body) = olli.get("/api/incidents").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "second_factor_enrolment_required");

    let (status, setup) = olli.post("/api/me/second-factor", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    assert!(setup["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = setup["secret_base32"].as_str().unwrap().to_owned();
    let (status, body) = olli
        .post("/api/me/second-factor/confirm", json!({ "code": "000000" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, confirmed) = olli
        .post(
            "/api/me/second-factor/confirm",
            json!({ "code": authenticator_code(&secret, 0) }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    assert_eq!(olli.get("/api/incidents").await.0, StatusCode::OK);
    let (status, _) = olli.post("/api/me/second-factor", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "one second factor at a time");

    // From now on the password alone is not enough.
    let (status, body) = login_with_code(&app.base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "second_factor_required");
    let (status, body) = login_with_code(&app.base, Some("123456")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "bad_login");
    // The next step's code (within the accepted skew) works once; the same code again does not.
    let next = authenticator_code(&secret, 30);
    let (status, body) = login_with_code(&app.base, Some(&next)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = login_with_code(&app.base, Some(&next)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a code is taken once");
    let (status, body) = login_with_code(&app.base, Some(&recovery[0].to_lowercase())).await;
    assert_eq!(status, StatusCode::OK, "a recovery code: {body}");
    let (status, _) = login_with_code(&app.base, Some(&recovery[0])).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a recovery code is used once"
    );
    let wrong: Vec<Value> = audit_of(&admin, "login_failed")
        .await
        .into_iter()
        .filter(|e| e["detail"]["reason"] == "wrong_code")
        .collect();
    assert_eq!(wrong.len(), 3, "{wrong:?}");
    assert_eq!(audit_of(&admin, "second_factor_enrolled").await.len(), 1);
    let used = audit_of(&admin, "recovery_code_used").await;
    assert_eq!(used[0]["detail"]["remaining"], 9);

    // A lost phone: an admin removes the second factor; the account sets up a new one.
    let (status, body) = admin
        .post(
            &format!("/api/users/{olli_id}/second-factor/reset"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = login_with_code(&app.base, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["second_factor_required"], true);
    assert_eq!(audit_of(&admin, "second_factor_reset").await.len(), 1);
    app.stop().await;
}
