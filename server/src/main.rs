//! `dispatchd`: parse the command line, set up logging, and hand over to the library.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dispatch_server::config::Overrides;
use dispatch_server::domain::{Actor, Role};
use dispatch_server::{auth, store::Store, Application, Config};

/// Closed-network command-dispatch server: incidents, live units, orders to field tablets.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (see dispatchd.example.toml).
    #[arg(long, short, env = "DISPATCH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
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
    /// Manage the generated TLS certificate.
    #[command(subcommand)]
    Tls(TlsCommand),
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), &cli.overrides)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::User(UserCommand::Add {
            username,
            role,
            exists_ok,
        }) => add_user(config, &username, &role, exists_ok).await,
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
