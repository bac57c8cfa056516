//! `field-client run`: the headless agent. Orders out as JSON lines on stdout, commands in on
//! stdin, answers (`queued`, `done`, `rejected`) out as plain lines; logs on stderr.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use dispatch_protocol::Location;
use field_client::{Client, ClientError, ClientOptions, Event};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::command::{self, AgentCommand, USAGE};

/// Run the headless agent for an enrolled device.
///
/// Stdout: each new order as one JSON object per line (seq, message_id, queued_at_ms,
/// received_at_ms, order_id, unit_id, incident, decision); `queued ACTION_ID` when a command is
/// stored; `done ACTION_ID` and `rejected ACTION_ID CODE MESSAGE` when the server answers.
///
/// Stdin, one command per line: `accept ORDER_ID`, `decline ORDER_ID REASON...`,
/// `status en_route|on_scene|cleared|available|out_of_service [ORDER_ID]`, `location LAT LON`.
/// A bad line prints `error: ...` on stderr and changes nothing.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Directory holding credential.json from `field-client enroll`.
    #[arg(long)]
    state_dir: PathBuf,
}

/// # Errors
/// When the state directory is unusable, or the server closes the channel for good.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let options = ClientOptions::load(&args.state_dir)
        .with_context(|| format!("loading the credential from {}", args.state_dir.display()))?;
    tracing::info!(unit = %options.credential.call_sign, server = %options.credential.server_url, "starting agent");
    let (client, event_loop) = Client::new(options).await?;
    let (events_tx, mut events) = mpsc::channel(64);
    let mut event_loop = tokio::spawn(event_loop.run(events_tx));
    let mut stdin = Some(BufReader::new(tokio::io::stdin()).lines());
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(event) = events.recv() => print_event(event)?,
            line = next_line(&mut stdin) => match line {
                Some(line) => handle_line(&client, &line).await,
                // Stdin closed: keep receiving orders.
                None => stdin = None,
            },
            result = &mut event_loop => {
                // Report whatever the loop still queued (for example the Fatal event).
                while let Ok(event) = events.try_recv() {
                    print_event(event)?;
                }
                return match result.context("event loop panicked")? {
                    Ok(()) => Ok(()),
                    Err(e @ ClientError::Fatal { .. }) => Err(e).context("re-enrol the device"),
                    Err(e) => Err(e.into()),
                };
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    drop(events);
    let _ = tokio::time::timeout(Duration::from_secs(5), event_loop).await;
    Ok(())
}

async fn next_line(
    stdin: &mut Option<tokio::io::Lines<BufReader<tokio::io::Stdin>>>,
) -> Option<String> {
    match stdin {
        Some(lines) => match lines.next_line().await {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stdin; ignoring it from now on");
                None
            }
        },
        None => std::future::pending().await,
    }
}

fn print_event(event: Event) -> anyhow::Result<()> {
    match event {
        Event::Order(order) => println!("{}", serde_json::to_string(&order)?),
        Event::Message(message) => println!("{}", serde_json::to_string(&message)?),
        Event::ActionDone { action_id } => println!("done {action_id}"),
        Event::ActionRejected {
            action_id,
            code,
            message,
        } => println!("rejected {action_id} {code} {message}"),
        Event::Connected(welcome) => {
            tracing::info!(unit = %welcome.call_sign, "channel up");
        }
        Event::Disconnected { code, reason } => {
            tracing::info!(?code, %reason, "channel down; reconnecting");
        }
        Event::Fatal { code, reason } => {
            tracing::error!(code, %reason, "server refuses this device");
        }
    }
    Ok(())
}

async fn handle_line(client: &Client, line: &str) {
    let command = match command::parse(line) {
        Ok(Some(command)) => command,
        Ok(None) => return,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return;
        }
    };
    let result = match command {
        AgentCommand::Act(action) => client.act(action).await.map(Some),
        AgentCommand::Location { lat, lon } => client
            .location(Location {
                lat,
                lon,
                accuracy_m: None,
                heading_deg: None,
                speed_mps: None,
                fix_time_ms: field_client::unix_ms(),
            })
            .await
            .map(|()| None),
    };
    match result {
        Ok(Some(action_id)) => println!("queued {action_id}"),
        Ok(None) => {}
        Err(e) => eprintln!("error: {e}"),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
