//! `dispatchd`: parse the command line, set up logging, and hand over to the library.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dispatch_server::config::{Backend, Overrides};
use dispatch_server::domain::{Actor, Role};
use dispatch_server::export::records::Time;
use dispatch_server::logging::{self, LogFormat};
use dispatch_server::store::{audit_chain, AccountChange, Store};
use dispatch_server::{auth, Application, Config};

/// Closed-network command-dispatch server: incidents, live units, orders to field tablets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (see dispatchd.example.toml).
    #[arg(long, short, env = "DISPATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    /// Log line format on standard error: text, or json (one object per line).
    #[arg(long, env = "DISPATCH_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage operator accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the SHA-256 fingerprint of the server's certificate (generating it if needed),
    /// 64 hex digits as `field-client --pin` takes them.
    Fingerprint,
    /// Check or show the hash chain of the audit log (reads the database only).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Back up the database (while the server runs) and the generated certificate into a new
    /// directory, with a manifest; `backup verify DIR` checks a backup.
    Backup(BackupArgs),
    /// Restore a verified backup into an empty data directory (--data-dir); the database gets a
    /// new identity, so tablets resynchronise.
    Restore {
        /// The backup's directory.
        #[arg(long)]
        from: PathBuf,
    },
    /// Manage the generated TLS certificate.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Write every record in open formats (EIDO-shaped JSON, GeoJSON, CAP 1.2, JSON Lines,
    /// CSV) into a new directory, with a README and a manifest; runs while the server runs.
    Export {
        /// The new directory to write the export into.
        #[arg(long)]
        to: PathBuf,
        /// Only incidents, broadcasts, texts, events and positions from this time (RFC 3339).
        #[arg(long, value_parser = Time::parse)]
        from: Option<Time>,
        /// Only those until this time (RFC 3339, inclusive).
        #[arg(long, value_parser = Time::parse)]
        until: Option<Time>,
    },
    /// Import a whole export into an empty data directory (--data-dir), for moving to another
    /// site: every id, time and audit hash is kept; accounts need new passwords and tablets
    /// enrol again.
    Import {
        /// The export's directory.
        dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    /// The new directory to write the backup into.
    #[arg(long)]
    to: Option<PathBuf>,
    /// The most MiB a second the backup copies and hashes (0: no limit), so that a live server
    /// keeps its share of the disk and the cores.
    #[arg(long, value_name = "MIB_PER_S", default_value_t = dispatch_server::backup::pace::DEFAULT_MIB_PER_S)]
    max_rate: u32,
    #[command(subcommand)]
    command: Option<BackupCommand>,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Check a backup: manifest, every file's size and SHA-256, the database's integrity and
    /// foreign keys, schema version, row counts and newest event.
    Verify { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the whole chain: print OK with the number of events and the head, or exit 1
    /// naming the first broken link.
    Verify {
        /// A head recorded earlier (`ID:HASH`, as `audit head` prints it) that must still be in
        /// the chain; may be repeated.
        #[arg(long, value_name = "ID:HASH")]
        witness: Vec<String>,
    },
    /// Print the newest event's id and hash as `ID:HASH`, for an outside witness to keep.
    Head,
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Replace the generated certificate with an overlap: without --activate, make the next
    /// key and certificate (tls/next.pem) and print its fingerprint; the running server
    /// announces it to connected tablets. With --activate, make the next certificate the one
    /// in use (the running server switches within seconds).
    Rotate {
        #[arg(long)]
        activate: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an operator account. The password is read from DISPATCH_NEW_PASSWORD, or from
    /// the first line of standard input.
    Add {
        #[arg(long)]
        username: String,
        /// operator, supervisor or admin.
        #[arg(long, default_value = "operator")]
        role: String,
        /// Succeed without changes when the user already exists.
        #[arg(long)]
        exists_ok: bool,
    },
    /// List the accounts: role, state (enabled, disabled, locked) and open sessions.
    List,
    /// Disable an account: it cannot log in and its sessions end.
    Disable { username: String },
    /// Enable a disabled account.
    Enable { username: String },
    /// Lift a lockout after wrong passwords.
    Unlock { username: String },
    /// Set a one-time password (printed) that must be changed at the next login; the
    /// account's sessions end.
    ResetPassword { username: String },
    /// Change an account's role (operator, supervisor or admin); its sessions end.
    SetRole { username: String, role: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let config = Config::load(cli.config.as_deref(), &cli.overrides)?;
    let command = cli.command.unwrap_or(Command::Serve);
    refuse_file_commands_on_postgres(&config, &command)?;
    match command {
        Command::Serve => serve(config).await,
        Command::User(UserCommand::Add {
            username,
            role,
            exists_ok,
        }) => add_user(config, &username, &role, exists_ok).await,
        Command::User(command) => manage_user(config, command).await,
        Command::Backup(args) => backup(&config, args),
        Command::Restore { from } => {
            let manifest = dispatch_server::backup::restore(&from, &config.data_dir).await?;
            println!(
                "restored the backup of {} ({} events) into {}; the database has a new identity, so tablets resynchronise",
                manifest.created_at,
                manifest.tables.get("events").copied().unwrap_or(0),
                config.data_dir.display()
            );
            Ok(())
        }
        Command::Export { to, from, until } => {
            export(
                &config,
                &to,
                dispatch_server::export::Window { from, until },
            )
            .await
        }
        Command::Import { dir } => import(&config, &dir).await,
        Command::Audit(AuditCommand::Verify { witness }) => audit_verify(&config, &witness),
        Command::Audit(AuditCommand::Head) => audit_head(&config),
        Command::Fingerprint => {
            config.prepare_data_dir()?;
            println!(
                "{}",
                dispatch_server::tls::load_or_generate(&config)?.fingerprint
            );
            Ok(())
        }
        Command::Tls(TlsCommand::Rotate { activate }) => {
            config.prepare_data_dir()?;
            if activate {
                let current = dispatch_server::tls::activate(&config)?;
                eprintln!("the next certificate is now in use; its fingerprint:");
                println!("{current}");
            } else {
                let next = dispatch_server::tls::rotate(&config)?;
                eprintln!(
                    "next certificate written; tablets that connect learn its pin, others \
                     need `--pin` with it. Fingerprint:"
                );
                println!("{next}");
            }
            Ok(())
        }
    }
}

/// Backups, restores, exports, imports and the audit checks read or write the SQLite file; on
/// PostgreSQL they are refused, naming what to use instead.
fn refuse_file_commands_on_postgres(config: &Config, command: &Command) -> anyhow::Result<()> {
    if config.store.backend != Backend::Postgres {
        return Ok(());
    }
    let instead = match command {
        Command::Backup(_) | Command::Restore { .. } => {
            "back up PostgreSQL with pg_basebackup and WAL archiving (docs/operations.md)"
        }
        Command::Export { .. } | Command::Import { .. } => {
            "export and import work on the SQLite file only so far"
        }
        Command::Audit(_) => "the audit chain is checked on the SQLite file only so far",
        _ => return Ok(()),
    };
    anyhow::bail!("this command works on the SQLite file, and the store is PostgreSQL: {instead}")
}

/// The store the configuration names, with nobody listening for commits (commands).
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    match config.store.backend {
        Backend::Sqlite => Store::open_standalone(&config.database_path()).await,
        Backend::Postgres => Store::open_postgres(config.store.postgres()?, Arc::new(())).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    tracing::info!("dispatchd listening on https://{addr}");
    tracing::info!("tls fingerprint sha256={}", app.fingerprint());
    app.run_until_stopped(shutdown_signal()).await
}

/// `backup --to DIR` or `backup verify DIR`.
fn backup(config: &Config, args: BackupArgs) -> anyhow::Result<()> {
    // The copy, the hashes and the checks run on this thread, beside a live server.
    dispatch_server::background::lower_this_thread("backup");
    match (args.command, args.to) {
        (Some(BackupCommand::Verify { dir }), _) => {
            let m = dispatch_server::backup::verify(&dir)
                .with_context(|| format!("backup {} does not verify", dir.display()))?;
            println!(
                "OK: backup of {} verifies ({} files, schema {}, {} tables)",
                m.created_at,
                m.files.len(),
                m.schema_version,
                m.tables.len()
            );
            Ok(())
        }
        (None, Some(to)) => {
            let m = dispatch_server::backup::create(&config.data_dir, &to, args.max_rate)?;
            println!(
                "backed up {} into {} ({} events; manifest {})",
                config.data_dir.display(),
                to.display(),
                m.tables.get("events").copied().unwrap_or(0),
                dispatch_server::backup::MANIFEST
            );
            Ok(())
        }
        (None, None) => anyhow::bail!("say where: backup --to DIR, or backup verify DIR"),
    }
}

/// `export --to DIR`: the database is brought to this version's schema first, as every
/// command that opens it does.
async fn export(
    config: &Config,
    to: &std::path::Path,
    window: dispatch_server::export::Window,
) -> anyhow::Result<()> {
    use dispatch_server::export;
    Store::open_standalone(&config.database_path())
        .await?
        .close()
        .await;
    let db = config.database_path();
    let to_dir = to.to_path_buf();
    let m = tokio::task::spawn_blocking(move || {
        dispatch_server::background::lower_this_thread("export");
        export::export(&db, &to_dir, window)
    })
    .await??;
    let count = |name: &str| {
        m.files
            .iter()
            .find(|f| f.name == name)
            .map_or(0, |f| f.records)
    };
    println!(
        "exported {} incidents, {} events and {} broadcasts into {} ({} files; {})",
        count("incidents.eido.jsonl"),
        count("events.jsonl"),
        m.files
            .iter()
            .filter(|f| f.name.starts_with("broadcasts/"))
            .count(),
        to.display(),
        m.files.len() + 1,
        export::MANIFEST
    );
    Ok(())
}

/// `import DIR` into the (empty) data directory, which no server may be serving.
async fn import(config: &Config, dir: &std::path::Path) -> anyhow::Result<()> {
    config.prepare_data_dir()?;
    let _lock =
        dispatch_server::data_dir_lock::DataDirLock::acquire(&config.data_dir, "importing")?;
    Store::open_standalone(&config.database_path())
        .await?
        .close()
        .await;
    let db = config.database_path();
    let from = dir.to_path_buf();
    let s =
        tokio::task::spawn_blocking(move || dispatch_server::export::import(&from, &db)).await??;
    println!(
        "imported {} accounts, {} incidents, {} broadcasts and {} events into {}",
        s.users,
        s.incidents,
        s.broadcasts,
        s.events,
        config.data_dir.display()
    );
    println!(
        "every account has a random password: set one with `dispatchd user reset-password NAME`; every tablet enrols again"
    );
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

async fn add_user(
    config: Config,
    username: &str,
    role: &str,
    exists_ok: bool,
) -> anyhow::Result<()> {
    dispatch_server::api::validate_username(username)?;
    let role = Role::parse(role)?;
    config.prepare_data_dir()?;
    let store = open_store(&config).await?;
    if store.operator_by_username(username).await?.is_some() {
        anyhow::ensure!(exists_ok, "user {username:?} already exists");
        println!("user {username} already exists; unchanged");
        return Ok(());
    }
    let password = match std::env::var("DISPATCH_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password for {username}:");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    auth::validate_new_password(&password, username, config.accounts.minimum_password_chars)?;
    store
        .create_operator(
            username,
            &auth::hash_password(&password)?,
            role,
            &Actor::System,
            None,
        )
        .await?;
    store.close().await;
    println!("created {} {username}", role.as_str());
    Ok(())
}

/// The account commands other than `add`, on the database directly (a running server sees the
/// change within a second; console sockets of ended sessions close at their next heartbeat).
async fn manage_user(config: Config, command: UserCommand) -> anyhow::Result<()> {
    config.prepare_data_dir()?;
    let store = open_store(&config).await?;
    let result = run_user_command(&store, command).await;
    store.close().await;
    result
}

async fn run_user_command(store: &Store, command: UserCommand) -> anyhow::Result<()> {
    let account = |username: String| async move {
        store
            .operator_by_username(&username)
            .await?
            .with_context(|| format!("no user {username:?}"))
    };
    let (username, change) = match command {
        UserCommand::Add { .. } => unreachable!("handled by add_user"),
        UserCommand::List => {
            let now = dispatch_server::domain::now_ms();
            for a in store.operator_accounts().await? {
                let state = if a.disabled_at_ms.is_some() {
                    "disabled".to_owned()
                } else if a.locked_until_ms == Some(dispatch_server::store::LOCKED_FOR_GOOD) {
                    "locked until unlocked".to_owned()
                } else if let Some(until) = a.locked_until_ms {
                    format!("locked for {} s", (until - now).max(0) / 1000)
                } else {
                    "enabled".to_owned()
                };
                let reset = if a.must_change_password {
                    ", password reset"
                } else {
                    ""
                };
                println!(
                    "{:<24} {:<10} {state}{reset}, {} session(s)",
                    a.username, a.role, a.sessions
                );
            }
            return Ok(());
        }
        UserCommand::Disable { username } => (username, AccountChange::Disable),
        UserCommand::Enable { username } => (username, AccountChange::Enable),
        UserCommand::Unlock { username } => (username, AccountChange::Unlock),
        UserCommand::SetRole { username, role } => {
            (username, AccountChange::SetRole(Role::parse(&role)?))
        }
        UserCommand::ResetPassword { username } => {
            let temporary = auth::new_temporary_password();
            let password_hash = auth::hash_password(&temporary)?;
            let id = account(username.clone()).await?.id;
            store
                .change_account(
                    id,
                    AccountChange::ResetPassword { password_hash },
                    &Actor::System,
                )
                .await?;
            println!("one-time password for {username}: {temporary}");
            println!("(it must be changed at the next login)");
            return Ok(());
        }
    };
    let id = account(username.clone()).await?.id;
    let ended = store
        .change_account(id, change.clone(), &Actor::System)
        .await?;
    println!(
        "{username}: {}; {} session(s) ended",
        change.event_kind(),
        ended.len()
    );
    Ok(())
}
/// `audit verify`: the whole chain, then each witnessed head.
fn audit_verify(config: &Config, witnesses: &[String]) -> anyhow::Result<()> {
    let db = audit_chain::open_read_only(&config.database_path())?;
    let verified = match audit_chain::verify(&db)? {
        Ok(v) => v,
        Err(broken) => anyhow::bail!("audit chain broken at {broken}"),
    };
    for witness in witnesses {
        let (id, hash) = witness
            .split_once(':')
            .and_then(|(id, hash)| Some((id.parse::<i64>().ok()?, hash)))
            .with_context(|| format!("--witness {witness:?}: expected ID:HASH"))?;
        if let Err(why) = audit_chain::check_witness(&db, id, hash)? {
            anyhow::bail!("witnessed head {witness} does not match: {why}");
        }
    }
    println!(
        "OK: {} events ({} from before the chain started), {} witnessed heads match; head {}:{}",
        verified.events,
        verified.unchained,
        witnesses.len(),
        verified.head_id,
        verified.head_hash
    );
    Ok(())
}

/// `audit head`: the stored head.
fn audit_head(config: &Config) -> anyhow::Result<()> {
    let mut db = audit_chain::open_read_only(&config.database_path())?;
    let head = audit_chain::head(&mut db)?;
    let hash = head.hash.with_context(|| {
        format!(
            "event {} was recorded before the chain started: run dispatchd on this database once",
            head.id
        )
    })?;
    println!("{}:{hash}", head.id);
    Ok(())
}
