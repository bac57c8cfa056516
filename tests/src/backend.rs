//! Which database the test servers of [`crate::spawn_app`] use: SQLite in their data directory,
//! or with `DISPATCH_TEST_BACKEND=postgres` a database of their own on the PostgreSQL server at
//! `DATABASE_URL`, created for the server and dropped with it. The same tests then run on either
//! backend (`make test` runs a set of them on both).

use dispatch_server::config::Backend;
use dispatch_server::Config;
use postgres::{Client, NoTls};

/// The variable that picks the backend: `postgres`, or unset (SQLite).
pub const BACKEND_VARIABLE: &str = "DISPATCH_TEST_BACKEND";

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
        if std::env::var(BACKEND_VARIABLE).ok().as_deref() != Some("postgres") {
            return None;
        }
        let admin_url = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| panic!("{BACKEND_VARIABLE}=postgres needs DATABASE_URL"));
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
