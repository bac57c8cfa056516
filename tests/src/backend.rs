//! Which database the test servers of [`crate::spawn_app`] use: SQLite in their data directory,
//! or with `DISPATCH_TEST_BACKEND=postgres` a database of their own on the PostgreSQL server at
//! `DATABASE_URL`, created for the server and dropped with it; and for `dispatchd` child
//! processes ([`crate::ServerProcess`]), a database per data directory, kept across restarts.
//! The same tests then run on either backend (`make test` runs a set of them on both).

use std::hash::{Hash, Hasher};
use std::path::Path;

use dispatch_server::config::Backend;
use dispatch_server::Config;
use postgres::{Client, NoTls};

/// The variable that picks the backend: `postgres`, or unset (SQLite).
pub const BACKEND_VARIABLE: &str = "DISPATCH_TEST_BACKEND";

/// `DATABASE_URL` when the tests run on PostgreSQL; `None` on SQLite.
///
/// # Panics
/// When PostgreSQL is asked for and `DATABASE_URL` is unset.
fn admin_url_on_postgres() -> Option<String> {
    if std::env::var(BACKEND_VARIABLE).ok().as_deref() != Some("postgres") {
        return None;
    }
    Some(
        std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| panic!("{BACKEND_VARIABLE}=postgres needs DATABASE_URL")),
    )
}

/// Prefix of the databases [`url_for_data_dir`] makes: the PostgreSQL rerun of `make test`
/// drops them all before and after it runs (`tests/scripts/drop-test-databases.sh`).
pub const DATA_DIR_DATABASES: &str = "dispatch_e2e_p_";

/// For a `dispatchd` child process on `data_dir` when the tests run on PostgreSQL: the URL of
/// the database that belongs to that data directory, created on first use, so a server
/// restarted on the same directory finds its data again. `None` on SQLite.
///
/// # Panics
/// When PostgreSQL is asked for and `DATABASE_URL` is unset or its server cannot be reached.
pub async fn url_for_data_dir(data_dir: &Path) -> Option<String> {
    let admin_url = admin_url_on_postgres()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut hasher);
    let name = format!("{DATA_DIR_DATABASES}{:016x}", hasher.finish());
    let (url, db) = (admin_url.clone(), name.clone());
    tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(&url, NoTls)
            .unwrap_or_else(|e| panic!("connecting to DATABASE_URL: {e}"));
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])
            .unwrap()
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .unwrap_or_else(|e| panic!("creating the test database {db}: {e}"));
        }
    })
    .await
    .unwrap();
    let (prefix, _) = admin_url
        .rsplit_once('/')
        .expect("DATABASE_URL ends with a database name");
    Some(format!("{prefix}/{name}"))
}

/// A PostgreSQL database made for one test server; dropped (with its connections) on drop.
pub struct TestDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Points `config` at a new database when the tests run on PostgreSQL; `None` on SQLite.
    ///
    /// # Panics
    /// When PostgreSQL is asked for and `DATABASE_URL` is unset or its server cannot be reached.
    pub async fn for_config(config: &mut Config) -> Option<Self> {
        let admin_url = admin_url_on_postgres()?;
        let database = Self::create(admin_url).await;
        config.store.backend = Backend::Postgres;
        config.store.postgres_url = Some(database.url());
        Some(database)
    }

    /// A new database on the server of `DATABASE_URL`, whichever backend the other tests use;
    /// `None` when `DATABASE_URL` is unset (the tests that need it are then skipped).
    ///
    /// # Panics
    /// When the server cannot be reached.
    pub async fn on_database_url() -> Option<Self> {
        Some(Self::create(std::env::var("DATABASE_URL").ok()?).await)
    }

    /// The database's connection URL.
    pub fn url(&self) -> String {
        let (prefix, _) = self
            .admin_url
            .rsplit_once('/')
            .expect("DATABASE_URL ends with a database name");
        format!("{prefix}/{}", self.name)
    }

    async fn create(admin_url: String) -> Self {
        let name = format!("dispatch_e2e_{}", dispatch_server::auth::random_hex(8));
        let (url, db) = (admin_url.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            Client::connect(&url, NoTls)
                .and_then(|mut c| c.batch_execute(&format!("CREATE DATABASE {db}")))
                .unwrap_or_else(|e| panic!("creating the test database {db}: {e}"));
        })
        .await
        .unwrap();
        Self { admin_url, name }
    }
}

impl TestDatabase {
    /// The one text value each of `queries` selects, on one connection.
    ///
    /// # Panics
    /// When the database cannot be read.
    pub async fn query_texts(&self, queries: Vec<String>) -> Vec<String> {
        let url = self.url();
        tokio::task::spawn_blocking(move || {
            let mut client = Client::connect(&url, NoTls).unwrap();
            queries
                .iter()
                .map(|sql| client.query_one(sql, &[]).unwrap().get::<_, String>(0))
                .collect()
        })
        .await
        .unwrap()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // The `postgres` client blocks on its own runtime: not inside the test's.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = Client::connect(&url, NoTls) {
                let _ =
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}
