//! `field-client`: enrol a tablet, run the headless agent, or simulate a fleet of units.
//!
//! Thin entry point: parses arguments, sets up logging to stderr and hands over to a command.

mod agent;
mod command;
mod sim;
mod tablet;
mod trust_args;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use field_client::Credential;
use tracing_subscriber::EnvFilter;

use crate::trust_args::TrustArgs;

/// Field tablet client of the dispatch system.
///
/// Logs go to stderr; set RUST_LOG (for example `RUST_LOG=debug`) to change the level.
#[derive(Debug, Parser)]
#[command(name = "field-client", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Enroll(EnrollArgs),
    EnrollLink(EnrollLinkArgs),
    Run(agent::RunArgs),
    Simulate(sim::SimulateArgs),
}

/// Enrol this device with a one-time code and store its credential in the state directory.
///
/// Prints the unit's call sign on success. Enrolling replaces the unit's previous device.
#[derive(Debug, clap::Args)]
struct EnrollArgs {
    /// Server address, https://HOST:PORT.
    #[arg(long)]
    server: String,
    /// One-time enrolment code from an administrator (case and dashes do not matter).
    #[arg(long)]
    code: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// A name for this device shown to administrators (at most 100 characters).
    #[arg(long)]
    device_name: Option<String>,
    /// Directory for credential.json (written with mode 0600) and the local inbox.
    #[arg(long)]
    state_dir: PathBuf,
}

/// Enrol this device from a scanned enrolment link
/// (`dispatch-enrol://HOST:PORT?code=CODE&pin=SHA256`), which carries the server, the one-time
/// code and the certificate pin. Prints the unit's call sign on success.
#[derive(Debug, clap::Args)]
struct EnrollLinkArgs {
    /// The link, as scanned from the administrator's QR code.
    link: String,
    /// A name for this device shown to administrators (at most 100 characters).
    #[arg(long)]
    device_name: Option<String>,
    /// Directory for credential.json (written with mode 0600) and the local inbox.
    #[arg(long)]
    state_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let command = Cli::parse().command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run(command));
    // `run` reads standard input on a blocking thread, and such a read cannot be interrupted:
    // waiting for it would keep the process alive until stdin closes, after a SIGTERM too.
    runtime.shutdown_background();
    result
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Enroll(args) => {
            let trust = args.trust.trust()?;
            enroll(
                &args.server,
                &trust,
                &args.code,
                args.device_name.as_deref(),
                &args.state_dir,
            )
            .await
        }
        Command::EnrollLink(args) => {
            let link = field_client::enroll_link::EnrolmentLink::parse(&args.link)?;
            let trust = field_client::Trust::pin(&link.pin)?;
            enroll(
                &link.server_url,
                &trust,
                &link.code,
                args.device_name.as_deref(),
                &args.state_dir,
            )
            .await
        }
        Command::Run(args) => agent::run(args).await,
        Command::Simulate(args) => sim::run(args).await,
    }
}

async fn enroll(
    server: &str,
    trust: &field_client::Trust,
    code: &str,
    device_name: Option<&str>,
    state_dir: &std::path::Path,
) -> anyhow::Result<()> {
    if Credential::exists(state_dir) {
        tracing::warn!(state_dir = %state_dir.display(), "replacing the existing credential");
    }
    let credential = field_client::enroll(server, trust, code, device_name).await?;
    credential
        .save(state_dir)
        .context("saving the credential")?;
    tracing::info!(
        device_id = credential.device_id,
        unit_id = credential.unit_id,
        state_dir = %state_dir.display(),
        "enrolled"
    );
    println!("{}", credential.call_sign);
    Ok(())
}
