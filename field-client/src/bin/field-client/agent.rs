//! `field-client run`: the tablet agent. Orders and messages out as JSON lines on stdout,
//! commands in on stdin, answers (`queued`, `done`, `rejected`) out as plain lines; logs on
//! stderr. With `--ui` it also serves the touch UI on loopback; with `--gps` it reports
//! positions from gpsd, NMEA or a simulated route.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dispatch_protocol::Location;
use field_client::gps::GpsSource;
use field_client::inbox::INBOX_FILE;
use field_client::{Client, ClientError, ClientOptions, Credential, Event};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::command::{self, AgentCommand, USAGE};
use crate::tablet::{self, Tablet};

/// Run the tablet agent for an enrolled device.
///
/// Stdout: each new order or message as one JSON object per line (orders: seq, message_id,
/// order_id, incident, decision, …; other messages: seq, message_id, body with its kind);
/// `queued ACTION_ID` when a command is stored; `done ACTION_ID` and
/// `rejected ACTION_ID CODE MESSAGE` when the server answers; `ui http://ADDR/#k=KEY` once the
/// touch UI listens (the page needs the key, made anew at each start, to use the UI's API).
///
/// Stdin, one command per line: `accept ORDER_ID`, `decline ORDER_ID REASON...`,
/// `status en_route|on_scene|cleared|available|out_of_service [ORDER_ID]`, `location LAT LON`.
/// A bad line prints `error: ...` on stderr and changes nothing.
///
/// When the server revokes the device (close code 4003) the credential and the inbox are
/// erased at once; the UI then shows only that the device was revoked.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Directory holding credential.json from `field-client enroll`.
    #[arg(long)]
    state_dir: PathBuf,
    /// Serve the touch UI on this loopback address (for example 127.0.0.1:8080) for the
    /// car's kiosk web view.
    #[arg(long, value_name = "ADDR")]
    ui: Option<SocketAddr>,
    /// Position source: `gpsd` (127.0.0.1:2947), `gpsd:HOST:PORT`, `nmea:PATH` (a serial
    /// device, or a recorded file replayed at one fix a second) or
    /// `route:LAT,LON;LAT,LON[;…][@KMH]` (simulated drive).
    #[arg(long, value_name = "SOURCE")]
    gps: Option<GpsSource>,
}

/// # Errors
/// When the state directory is unusable, or the server closes the channel for good (without
/// `--ui`; with it the UI keeps showing why).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Registered before anything says the agent is up, so an early SIGTERM is a clean stop.
    let shutdown = shutdown_signal()?;
    let options = ClientOptions::load(&args.state_dir)
        .with_context(|| format!("loading the credential from {}", args.state_dir.display()))?;
    let call_sign = options.credential.call_sign.clone();
    tracing::info!(unit = %call_sign, server = %options.credential.server_url, "starting agent");
    let (client, event_loop) = Client::new(options).await?;
    let tablet = Tablet::new(client.clone(), call_sign);
    if let Some(addr) = args.ui {
        let url = tablet::serve(addr, tablet.clone()).await?;
        // The key stays out of the logs: only whoever reads stdout (the kiosk's launcher) gets it.
        println!("ui {url}");
        let shown = url.split_once('#').map_or(url.as_str(), |(page, _)| page);
        tracing::info!("touch UI on {shown} (the address with its key is on stdout)");
    }
    let (fixes_tx, mut fixes) = mpsc::channel::<Location>(16);
    if let Some(source) = args.gps.clone() {
        tokio::spawn(async move {
            if let Err(e) = source.run(fixes_tx).await {
                tracing::error!("GPS source stopped: {e}");
            }
        });
    } else {
        drop(fixes_tx);
    }
    let (events_tx, mut events) = mpsc::channel(64);
    let mut event_loop = tokio::spawn(event_loop.run(events_tx));
    let mut stdin = Some(BufReader::new(tokio::io::stdin()).lines());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            Some(event) = events.recv() => on_event(&tablet, &args.state_dir, event).await?,
            Some(fix) = fixes.recv() => {
                tablet.on_fix(fix);
                if let Err(e) = client.location(fix).await {
                    tracing::warn!("ignoring a GPS fix: {e}");
                }
            }
            line = next_line(&mut stdin) => match line {
                Some(line) => handle_line(&client, &line).await,
                // Stdin closed: keep receiving orders.
                None => stdin = None,
            },
            result = &mut event_loop => {
                // Report whatever the loop still queued (for example the Fatal event).
                while let Ok(event) = events.try_recv() {
                    on_event(&tablet, &args.state_dir, event).await?;
                }
                let error = match result.context("event loop panicked")? {
                    Ok(()) => return Ok(()),
                    Err(e @ ClientError::Fatal { .. }) => anyhow::Error::from(e).context("re-enrol the device"),
                    Err(e) => e.into(),
                };
                if args.ui.is_none() {
                    return Err(error);
                }
                tracing::error!("{error:#}; the UI stays up to say so");
                shutdown.as_mut().await;
                return Ok(());
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down");
    drop(events);
    let _ = tokio::time::timeout(Duration::from_secs(5), event_loop).await;
    Ok(())
}

async fn on_event(tablet: &Arc<Tablet>, state_dir: &Path, event: Event) -> anyhow::Result<()> {
    if let Event::Fatal { code, .. } = &event {
        if tablet::is_revocation(*code) {
            erase(&tablet.client, state_dir).await;
        }
    }
    tablet.on_event(&event);
    print_event(event)
}

/// Honours a revocation: the credential and every stored order and message are removed.
async fn erase(client: &Client, state_dir: &Path) {
    client.close().await;
    let inbox = state_dir.join(INBOX_FILE);
    let files = [
        Credential::path(state_dir),
        inbox.clone(),
        inbox.with_extension("sqlite-wal"),
        inbox.with_extension("sqlite-shm"),
    ];
    for file in files {
        match std::fs::remove_file(&file) {
            Ok(()) => tracing::warn!("device revoked: removed {}", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!("device revoked but {} remains: {e}", file.display()),
        }
    }
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

/// Resolves on Ctrl-C or SIGTERM; both are registered when this is called, not when it is
/// first awaited.
///
/// # Errors
/// When the signal handlers cannot be installed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
