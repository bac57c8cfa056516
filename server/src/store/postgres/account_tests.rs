//! The account writes on PostgreSQL, as the SQLite store runs them: operators created (with
//! idempotency keys and taken names), refused logins counting to a lockout, sessions recorded
//! at login, kept alive, ended by logout, by an admin, by a password change or an account
//! change and by the expiry sweep, an admin's account changes, and a second factor set up,
//! its codes' time steps and recovery codes used once, and removed. Every change is one event
//! of one chained timeline.

use super::tests::{assert_chained, TestDatabase};
use super::PostgresWriter;
use crate::config::PerRole;
use crate::domain::{now_ms, Actor, Role};
use crate::store::sql::Sql;
use crate::store::{
    delete_expired_sessions, delete_session, insert_operator, insert_session, write_account_change,
    write_code_step, write_login_refused, write_own_password, write_pending_second_factor,
    write_recovery_code_used, write_second_factor_confirmed, write_session_touch, AccountChange,
    EndedSession, Error, LockoutPolicy, LoginOrigin, LoginRefusal, LOCKED_FOR_GOOD,
};

/// Runs `work` as a write of its own.
async fn write<T: Send + 'static>(
    writer: &PostgresWriter,
    work: impl FnOnce(&mut dyn Sql) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    writer.write(move |tx| work(tx)).await
}

fn conflict_code<T: std::fmt::Debug>(outcome: Result<T, Error>) -> &'static str {
    match outcome {
        Err(Error::Conflict { code, .. }) => code,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn operator(id: i64, username: &str) -> Actor {
    Actor::Operator {
        id,
        username: username.into(),
    }
}

fn ids(ended: &[EndedSession]) -> Vec<i64> {
    ended.iter().map(|s| s.id).collect()
}

async fn create(
    writer: &PostgresWriter,
    name: &str,
    role: Role,
    key: Option<&str>,
) -> Result<i64, Error> {
    let (name, key) = (name.to_owned(), key.map(str::to_owned));
    write(writer, move |tx| {
        insert_operator(tx, &name, "hash-0", role, &Actor::System, key.as_deref())
    })
    .await
}

async fn refused(
    writer: &PostgresWriter,
    name: &str,
    id: Option<i64>,
    refusal: LoginRefusal,
    policy: LockoutPolicy,
) -> bool {
    let name = name.to_owned();
    write(writer, move |tx| {
        write_login_refused(tx, &name, id, refusal, policy)
    })
    .await
    .unwrap()
}

async fn login(writer: &PostgresWriter, actor: &Actor, token_hash: &str, expires_at: i64) -> i64 {
    let (actor, token_hash) = (actor.clone(), token_hash.to_owned());
    write(writer, move |tx| {
        let origin = LoginOrigin {
            source: Some("192.0.2.7".into()),
            user_agent: Some("test".into()),
        };
        insert_session(tx, &token_hash, &actor, expires_at, &origin)
    })
    .await
    .unwrap()
}

async fn end(
    writer: &PostgresWriter,
    id: i64,
    owner: Option<i64>,
    actor: &Actor,
    kind: &'static str,
) -> Option<i64> {
    let actor = actor.clone();
    write(writer, move |tx| {
        delete_session(tx, id, owner, &actor, kind)
    })
    .await
    .unwrap()
    .map(|s| s.id)
}

async fn change(
    writer: &PostgresWriter,
    id: i64,
    change: AccountChange,
) -> Result<Vec<i64>, Error> {
    let root = operator(1, "root");
    write(writer, move |tx| {
        write_account_change(tx, id, &change, &root)
    })
    .await
    .map(|ended| ids(&ended))
}

/// `(failed_logins, locked_until)` of account `id`.
async fn lock_state(db: &TestDatabase, id: i64) -> (i64, Option<i64>) {
    let row = &db
        .run(&format!(
            "SELECT failed_logins, locked_until FROM operators WHERE id = {id}"
        ))
        .await[0];
    (row.get(0), row.get(1))
}

async fn session_ids(db: &TestDatabase) -> Vec<i64> {
    db.run("SELECT id FROM operator_sessions ORDER BY id")
        .await
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn the_account_writes_run_on_postgresql() {
    let Some(db) = TestDatabase::create("accounts").await else {
        return;
    };
    let writer = db.writer().await;
    let later = now_ms() + 3_600_000;

    // Operators: a repeated key answers the first account, a taken name is refused.
    assert_eq!(create(&writer, "root", Role::Admin, None).await.unwrap(), 1);
    assert_eq!(
        create(&writer, "ann", Role::Operator, Some("k-ann"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        create(&writer, "ann", Role::Operator, Some("k-ann"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        conflict_code(create(&writer, "ann", Role::Supervisor, None).await),
        "duplicate"
    );
    let row = &db
        .run(
            "SELECT username, role, created_at = password_changed_at, idempotency_key
              FROM operators WHERE id = 2",
        )
        .await[0];
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2)
        ),
        ("ann".to_owned(), "operator".to_owned(), true)
    );
    assert_eq!(row.get::<_, Option<String>>(3).as_deref(), Some("k-ann"));
    let (root, ann) = (operator(1, "root"), operator(2, "ann"));

    // Refused logins: an unknown name and a locked account count nothing; wrong passwords and
    // codes count, a login clears the count, and the third in a row locks the account.
    let policy = LockoutPolicy {
        failures: 3,
        duration_ms: Some(60_000),
    };
    assert!(!refused(&writer, "nobody", None, LoginRefusal::UnknownUser, policy).await);
    assert!(!refused(&writer, "ann", Some(2), LoginRefusal::Locked, policy).await);
    assert!(!refused(&writer, "ann", Some(2), LoginRefusal::WrongPassword, policy).await);
    assert!(!refused(&writer, "ann", Some(2), LoginRefusal::WrongCode, policy).await);
    assert_eq!(lock_state(&db, 2).await, (2, None));
    assert_eq!(login(&writer, &ann, "token-1", later).await, 1);
    assert_eq!(lock_state(&db, 2).await, (0, None));
    for _ in 0..2 {
        assert!(!refused(&writer, "ann", Some(2), LoginRefusal::WrongPassword, policy).await);
    }
    let before = now_ms();
    assert!(refused(&writer, "ann", Some(2), LoginRefusal::WrongPassword, policy).await);
    let (failures, until) = lock_state(&db, 2).await;
    assert_eq!(failures, 0);
    assert!(until.is_some_and(|until| until >= before + 60_000 && until <= now_ms() + 60_000));
    let for_good = LockoutPolicy {
        failures: 1,
        duration_ms: None,
    };
    assert!(
        refused(
            &writer,
            "root",
            Some(1),
            LoginRefusal::WrongPassword,
            for_good
        )
        .await
    );
    assert_eq!(lock_state(&db, 1).await, (0, Some(LOCKED_FOR_GOOD)));

    // An admin unlocks; a login clears a lock too.
    assert_eq!(
        change(&writer, 2, AccountChange::Unlock).await.unwrap(),
        [] as [i64; 0]
    );
    assert_eq!(lock_state(&db, 2).await, (0, None));
    assert_eq!(login(&writer, &root, "token-2", later).await, 2);
    assert_eq!(lock_state(&db, 1).await, (0, None));

    // The session as recorded, and its activity, which never goes back.
    let row = &db
        .run(
            "SELECT token_hash, operator_id, expires_at, last_seen_at = created_at, source,
                     user_agent
              FROM operator_sessions WHERE id = 1",
        )
        .await[0];
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, bool>(3)
        ),
        ("token-1".to_owned(), 2, later, true)
    );
    assert_eq!(
        (
            row.get::<_, Option<String>>(4),
            row.get::<_, Option<String>>(5)
        ),
        (Some("192.0.2.7".to_owned()), Some("test".to_owned()))
    );
    let seen = now_ms() + 10_000;
    for at in [seen, seen - 5_000] {
        write(&writer, move |tx| write_session_touch(tx, "token-1", at))
            .await
            .unwrap();
    }
    let last_seen: i64 = db
        .run("SELECT last_seen_at FROM operator_sessions WHERE id = 1")
        .await[0]
        .get(0);
    assert_eq!(last_seen, seen);

    // Logout: only the owner's own session, once; an admin ends anybody's.
    assert_eq!(end(&writer, 1, Some(1), &root, "logout").await, None);
    assert_eq!(end(&writer, 1, Some(2), &ann, "logout").await, Some(1));
    assert_eq!(end(&writer, 1, Some(2), &ann, "logout").await, None);
    assert_eq!(end(&writer, 2, None, &root, "session_ended").await, Some(2));
    assert_eq!(session_ids(&db).await, [] as [i64; 0]);

    // A password change ends the account's other sessions, not the one it came from.
    for token in ["token-3", "token-4", "token-5"] {
        login(&writer, &ann, token, later).await;
    }
    login(&writer, &root, "token-6", later).await;
    let ended = write(&writer, {
        let ann = ann.clone();
        move |tx| write_own_password(tx, 2, &ann, "hash-1", 4)
    })
    .await
    .unwrap();
    assert_eq!(ids(&ended), [3, 5]);
    assert_eq!(session_ids(&db).await, [4, 6]);
    let row = &db
        .run(
            "SELECT password_hash, must_change_password, password_changed_at IS NOT NULL
              FROM operators WHERE id = 2",
        )
        .await[0];
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, i64>(1),
            row.get::<_, bool>(2)
        ),
        ("hash-1".to_owned(), 0, true)
    );

    // An admin's changes: the last enabled admin stays; a reset password must be changed and
    // ends the sessions, as do a new role and disabling.
    assert_eq!(
        conflict_code(change(&writer, 1, AccountChange::Disable).await),
        "last_admin"
    );
    assert_eq!(
        conflict_code(change(&writer, 1, AccountChange::SetRole(Role::Operator)).await),
        "last_admin"
    );
    assert!(matches!(
        change(&writer, 99, AccountChange::Enable).await,
        Err(Error::NotFound(_))
    ));
    let reset = AccountChange::ResetPassword {
        password_hash: "hash-2".into(),
    };
    assert_eq!(change(&writer, 2, reset).await.unwrap(), [4]);
    let row = &db
        .run("SELECT password_hash, must_change_password FROM operators WHERE id = 2")
        .await[0];
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("hash-2".to_owned(), 1)
    );
    login(&writer, &ann, "token-7", later).await;
    assert_eq!(
        change(&writer, 2, AccountChange::SetRole(Role::Supervisor))
            .await
            .unwrap(),
        [7]
    );
    login(&writer, &ann, "token-8", later).await;
    assert_eq!(
        change(&writer, 2, AccountChange::Disable).await.unwrap(),
        [8]
    );
    let disabled: Option<i64> = db
        .run("SELECT disabled_at FROM operators WHERE id = 2")
        .await[0]
        .get(0);
    assert!(disabled.is_some());
    assert_eq!(
        change(&writer, 2, AccountChange::Enable).await.unwrap(),
        [] as [i64; 0]
    );
    let row = &db
        .run("SELECT disabled_at, role FROM operators WHERE id = 2")
        .await[0];
    assert_eq!(
        (row.get::<_, Option<i64>>(0), row.get::<_, String>(1)),
        (None, "supervisor".to_owned())
    );

    // A second factor: set up, confirmed with the first code's step and recovery codes, each
    // step and recovery code taken once, then removed by an admin.
    assert_eq!(
        conflict_code(change(&writer, 2, AccountChange::ResetSecondFactor).await),
        "no_second_factor"
    );
    for secret in ["secret-1", "secret-2"] {
        write(&writer, move |tx| {
            write_pending_second_factor(tx, 2, secret)
        })
        .await
        .unwrap();
    }
    let confirm = |secret: &'static str| {
        let ann = ann.clone();
        let hashes = vec!["r1".to_owned(), "r2".to_owned(), "r3".to_owned()];
        write(&writer, move |tx| {
            write_second_factor_confirmed(tx, 2, &ann, secret, 100, &hashes)
        })
    };
    assert_eq!(
        conflict_code(confirm("secret-1").await),
        "no_second_factor_setup"
    );
    confirm("secret-2").await.unwrap();
    assert_eq!(
        conflict_code(confirm("secret-2").await),
        "no_second_factor_setup"
    );
    let row = &db
        .run(
            "SELECT totp_secret, totp_pending_secret, totp_enabled_at IS NOT NULL,
                     totp_last_step
              FROM operators WHERE id = 2",
        )
        .await[0];
    assert_eq!(
        (
            row.get::<_, Option<String>>(0),
            row.get::<_, Option<String>>(1),
            row.get::<_, bool>(2),
            row.get::<_, Option<i64>>(3)
        ),
        (Some("secret-2".to_owned()), None, true, Some(100))
    );
    assert_eq!(db.count("operator_recovery_codes").await, 3);
    let mut taken = Vec::new();
    for step in [100, 99, 101, 101, u64::MAX] {
        taken.push(
            write(&writer, move |tx| write_code_step(tx, 2, step))
                .await
                .unwrap(),
        );
    }
    assert_eq!(taken, [false, false, true, false, true]);
    let use_code = |hash: &'static str| {
        let ann = ann.clone();
        write(&writer, move |tx| {
            write_recovery_code_used(tx, 2, &ann, hash)
        })
    };
    assert_eq!(use_code("r2").await.unwrap(), Some(2));
    assert_eq!(use_code("r2").await.unwrap(), None);
    assert_eq!(use_code("r9").await.unwrap(), None);
    login(&writer, &ann, "token-9", later).await;
    assert_eq!(
        change(&writer, 2, AccountChange::ResetSecondFactor)
            .await
            .unwrap(),
        [9]
    );
    let row = &db
        .run(
            "SELECT totp_secret IS NULL AND totp_enabled_at IS NULL AND totp_last_step IS NULL
              FROM operators WHERE id = 2",
        )
        .await[0];
    assert!(row.get::<_, bool>(0));
    assert_eq!(db.count("operator_recovery_codes").await, 0);

    // The expiry sweep: past its lifetime, or idle for its role's limit.
    let now = now_ms();
    let lifetime = login(&writer, &ann, "token-10", now - 1).await;
    let idle = login(&writer, &ann, "token-11", later).await;
    let admins = login(&writer, &root, "token-12", later).await;
    db.run(&format!(
        "UPDATE operator_sessions SET last_seen_at = {} WHERE id IN ({idle}, {admins})",
        now - 120_000
    ))
    .await;
    let limits = PerRole {
        operator: 60,
        supervisor: 60,
        admin: 600,
    };
    let ended = write(&writer, move |tx| delete_expired_sessions(tx, now, &limits))
        .await
        .unwrap();
    assert_eq!(ids(&ended), [lifetime, idle]);
    assert_eq!(session_ids(&db).await, [6, admins]);
    let reasons: Vec<String> = db
        .run(
            "SELECT detail::json->>'reason' FROM events WHERE kind = 'session_expired'
              ORDER BY id",
        )
        .await
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(reasons, ["lifetime", "idle"]);

    let kinds = assert_chained(&db).await;
    let expected = [
        "operator_created",
        "operator_created",
        "login_failed",
        "login_failed",
        "login_failed",
        "login_failed",
        "login",
        "login_failed",
        "login_failed",
        "login_failed",
        "account_locked",
        "login_failed",
        "account_locked",
        "account_unlocked",
        "login",
        "logout",
        "session_ended",
        "login",
        "login",
        "login",
        "login",
        "password_changed",
        "password_reset",
        "login",
        "role_changed",
        "login",
        "account_disabled",
        "account_enabled",
        "second_factor_enrolled",
        "recovery_code_used",
        "login",
        "second_factor_reset",
        "login",
        "login",
        "login",
        "session_expired",
        "session_expired",
    ];
    assert_eq!(kinds, expected);
    let detail: String = db
        .run("SELECT detail FROM events WHERE kind = 'role_changed'")
        .await[0]
        .get(0);
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        (&detail["from"], &detail["to"], &detail["sessions_ended"]),
        (&"operator".into(), &"supervisor".into(), &1.into())
    );
}
