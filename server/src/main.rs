//! `dispatchd`: parse the command line, set up logging, and hand over to the library.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dispatch_server::config::Overrides;
use dispatch_server::domain::{Actor, Role};
use dispatch_server::logging::{self, LogFormat};
use dispatch_server::store::{audit_chain, Store};
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
    /// Print the SHA-256 fingerprint of the server's certificate (generating it if needed).
    Fingerprint,
    /// Check or show the hash chain of the audit log (reads the database only).
    #[command(subcommand)]
    Audit(AuditCommand),
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let config = Config::load(cli.config.as_deref(), &cli.overrides)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::User(UserCommand::Add {
            username,
            role,
            exists_ok,
        }) => add_user(config, &username, &role, exists_ok).await,
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
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    tracing::info!("dispatchd listening on https://{addr}");
    tracing::info!("tls fingerprint sha256={}", app.fingerprint());
    app.run_until_stopped(shutdown_signal()).await
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
    let store = Store::open_standalone(&config.database_path()).await?;
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
    auth::validate_new_password(&password)?;
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
    let db = audit_chain::open_read_only(&config.database_path())?;
    let head = audit_chain::head(&db)?;
    let hash = head.hash.with_context(|| {
        format!(
            "event {} was recorded before the chain started: run dispatchd on this database once",
            head.id
        )
    })?;
    println!("{}:{hash}", head.id);
    Ok(())
}
