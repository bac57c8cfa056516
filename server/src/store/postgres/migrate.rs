//! The PostgreSQL schema, embedded in the binary and brought up to date at start. Several
//! nodes may start at once: the first to take the advisory lock migrates, the others then find
//! nothing left to do. A database migrated by a newer `dispatchd`, or whose recorded migration
//! differs from the embedded one, is refused rather than written to.

use postgres::Client;
use sha2::{Digest, Sha256};

/// The migrations in order: version, name, SQL.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../../../../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "session_ids",
        include_str!("../../../../migrations/postgres/0002_session_ids.sql"),
    ),
    (
        3,
        "device_presence",
        include_str!("../../../../migrations/postgres/0003_device_presence.sql"),
    ),
];

/// The advisory lock that serialises migrations across nodes ("dispatch" in ASCII).
const MIGRATION_LOCK: i64 = 0x6469_7370_6174_6368;

/// Applies the migrations `client`'s database lacks, in one transaction.
///
/// # Errors
/// When a statement fails (nothing is applied then), the database holds a migration this
/// binary does not know, or an applied migration's text differs from the embedded one.
pub fn migrate(client: &mut Client) -> anyhow::Result<()> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    // "relation … already exists, skipping" at every start is not news.
    tx.batch_execute("SET LOCAL client_min_messages = warning")?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY,
             name TEXT NOT NULL,
             sha256 TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let applied: Vec<(i64, String)> = tx
        .query(
            "SELECT version, sha256 FROM schema_migrations ORDER BY version",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (version, sha256) in &applied {
        let Some((_, name, sql)) = MIGRATIONS.iter().find(|(v, ..)| v == version) else {
            anyhow::bail!(
                "the database has migration {version}, which this dispatchd does not know: it \
                 was migrated by a newer version"
            );
        };
        anyhow::ensure!(
            *sha256 == digest(sql),
            "migration {version} ({name}) applied to the database differs from this dispatchd's"
        );
    }
    for (version, name, sql) in MIGRATIONS {
        if applied.iter().any(|(v, _)| v == version) {
            continue;
        }
        tx.batch_execute(sql)
            .map_err(|e| anyhow::anyhow!("migration {version} ({name}) failed: {e}"))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[version, name, &digest(sql)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn digest(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}
