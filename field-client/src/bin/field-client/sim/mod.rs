//! `field-client simulate`: a fleet of units in one process, each a library `Client` +
//! `EventLoop`, plus an optional scripted dispatcher, against a real server.

mod dispatcher;
mod geo;
mod operator;
mod roads;
mod unit;
mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use field_client::{Client, ClientOptions, Credential, Trust};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::trust_args::TrustArgs;
use operator::Operator;
use roads::Roads;
use unit::{SimUnit, Stop};
use world::World;

/// Close code after which a unit enrols again: the server no longer knows the device (for
/// example its database was reset), which for a simulator is no reason to stop.
const UNKNOWN_DEVICE: u16 = dispatch_protocol::close::BAD_CREDENTIAL;
/// Pause before provisioning a unit again after a failure, so a broken server is not hammered.
const RETRY_PAUSE: Duration = Duration::from_secs(10);

/// Simulate a fleet of units (and optionally a dispatcher) against a running server.
///
/// Logs in as an administrator, creates units SIM-01..SIM-NN if missing and enrols one
/// simulated tablet per unit (credentials are kept in STATE_DIR/SIM-01/ and reused on the next
/// run). Units drive around, report their position every 2–5 s, and work their orders: accept
/// (or decline at --decline-rate), en route, on scene for 30–90 s, cleared.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Number of simulated units.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    units: u32,
    /// Server address, https://HOST:PORT.
    #[arg(long)]
    server: String,
    #[command(flatten)]
    trust: TrustArgs,
    /// Administrator login as USER:PASSWORD.
    #[arg(
        long,
        env = "FIELD_CLIENT_LOGIN",
        value_name = "USER:PASSWORD",
        hide_env_values = true
    )]
    login: String,
    /// Directory for the units' credentials and inboxes (one subdirectory per unit).
    #[arg(long)]
    state_dir: PathBuf,
    /// OpenStreetMap extract (.osm.pbf): units drive on its roads. Without it they move in
    /// straight lines around central Helsinki.
    #[arg(long, value_name = "PBF")]
    map: Option<PathBuf>,
    /// Also act as a dispatcher: create an incident and assign a unit every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = positive_secs)]
    dispatch_every: Option<f64>,
    /// Probability (0–1) that a unit declines an order.
    #[arg(long, default_value_t = 0.1, value_parser = probability)]
    decline_rate: f64,
    /// Mean seconds between a unit's position reports (each is drawn from 0.6–1.4 times this).
    /// Large fleets on a small server may want fewer.
    #[arg(long, value_name = "SECS", default_value_t = 3.5, value_parser = positive_secs)]
    fix_every: f64,
}

fn positive_secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.1 => Ok(v),
        _ => Err(format!("expected a number of seconds ≥ 0.1, got {text:?}")),
    }
}

fn probability(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a probability between 0 and 1, got {text:?}"
        )),
    }
}

/// What every unit task shares.
struct Fleet {
    server: String,
    trust: Trust,
    operator: Arc<Operator>,
    world: Arc<World>,
    decline_rate: f64,
    fix_every: f64,
    /// Units that existed when the simulator started, by call sign, so that each unit task
    /// need not list them all again.
    existing: std::collections::HashMap<String, operator::Unit>,
}

/// # Errors
/// When the login fails, the map cannot be read, or the state directory is unusable.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let trust = args.trust.trust()?;
    let (user, password) = args
        .login
        .split_once(':')
        .context("--login must be USER:PASSWORD")?;
    let operator = Arc::new(Operator::login(&args.server, &trust, user, password).await?);
    let world = Arc::new(match &args.map {
        Some(path) => {
            let path = path.clone();
            World::Roads(Box::new(
                tokio::task::spawn_blocking(move || Roads::load(&path)).await??,
            ))
        }
        None => World::default_area(),
    });
    tracing::info!("simulating {} units on {}", args.units, world.describe());
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    check_open_file_limit(args.units);
    let existing = operator
        .units()
        .await?
        .into_iter()
        .map(|u| (u.call_sign.clone(), u))
        .collect();
    let fleet = Arc::new(Fleet {
        server: args.server.clone(),
        trust,
        operator: operator.clone(),
        world: world.clone(),
        decline_rate: args.decline_rate,
        fix_every: args.fix_every,
        existing,
    });
    let width = args.units.to_string().len().max(2);
    let mut tasks = JoinSet::new();
    for n in 1..=args.units {
        let call_sign = format!("SIM-{n:0width$}");
        let dir = args.state_dir.join(&call_sign);
        let span = tracing::info_span!("sim", unit = %call_sign);
        tasks.spawn(unit_life(fleet.clone(), call_sign, dir).instrument(span));
    }
    if let Some(secs) = args.dispatch_every {
        tasks.spawn(dispatcher::run(
            operator,
            world,
            Duration::from_secs_f64(secs),
        ));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping the simulation"),
        () = terminated() => tracing::info!("terminated; stopping the simulation"),
        () = async { while tasks.join_next().await.is_some() {} } => {
            anyhow::bail!("every simulated unit has stopped");
        }
    }
    tasks.shutdown().await;
    Ok(())
}

/// Each unit holds a socket and an SQLite database (three files in WAL mode): warn when the
/// limit on open files (Linux, `/proc/self/limits`) is too low for the fleet.
fn check_open_file_limit(units: u32) {
    let wanted = u64::from(units) * 5 + 64;
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<u64>().ok())
        });
    if let Some(limit) = limit.filter(|l| *l < wanted) {
        tracing::warn!(
            "the open file limit {limit} is below the {wanted} that {units} units need; raise it with `ulimit -n {wanted}`"
        );
    }
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// Provisions a unit, runs it, and enrols it again if the server forgets the device.
async fn unit_life(fleet: Arc<Fleet>, call_sign: String, dir: PathBuf) {
    loop {
        let credential = match provision(&fleet, &call_sign, &dir).await {
            Ok(credential) => credential,
            Err(e) => {
                tracing::error!(
                    "{call_sign}: cannot enrol: {e:#}; retrying in {} s",
                    RETRY_PAUSE.as_secs()
                );
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        let (client, event_loop) = match Client::new(ClientOptions::new(credential, &dir)).await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::error!("{call_sign}: cannot start: {e}");
                return;
            }
        };
        let (events_tx, events) = mpsc::channel(32);
        let event_loop = tokio::spawn(event_loop.run(events_tx).in_current_span());
        let unit = SimUnit::new(
            call_sign.clone(),
            client,
            fleet.world.clone(),
            fleet.decline_rate,
            fleet.fix_every,
        );
        let stop = unit.drive(events).await;
        event_loop.abort();
        match stop {
            Stop::Fatal(UNKNOWN_DEVICE) => {
                tracing::warn!(
                    "{call_sign}: the server does not know this device any more; enrolling again"
                );
                if let Err(e) = std::fs::remove_file(Credential::path(&dir)) {
                    tracing::error!("{call_sign}: cannot remove the old credential: {e}");
                    return;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Stop::Fatal(code) => {
                tracing::error!(
                    "{call_sign}: the server refuses this device (close code {code}); unit stopped"
                );
                return;
            }
            Stop::LoopEnded => return,
        }
    }
}

/// Reuses `dir/credential.json`, or creates the unit if needed and enrols a new device.
async fn provision(fleet: &Fleet, call_sign: &str, dir: &Path) -> anyhow::Result<Credential> {
    if Credential::exists(dir) {
        let credential = Credential::load(dir)?;
        tracing::info!(
            "{call_sign}: reusing device {} from {}",
            credential.device_id,
            dir.display()
        );
        return Ok(credential);
    }
    let operator = &fleet.operator;
    let existing = fleet.existing.get(call_sign).cloned();
    let unit = match existing {
        Some(unit) => unit,
        None => match operator.create_unit(call_sign).await? {
            Some(unit) => {
                tracing::info!("{call_sign}: unit created (id {})", unit.id);
                unit
            }
            // Created meanwhile by someone else: look it up again.
            None => operator
                .units()
                .await?
                .into_iter()
                .find(|u| u.call_sign == call_sign)
                .context("unit exists but is not listed")?,
        },
    };
    let code = operator.enrolment_code(unit.id).await?;
    let device_name = format!("simulator {call_sign}");
    let credential =
        field_client::enroll(&fleet.server, &fleet.trust, &code, Some(&device_name)).await?;
    credential.save(dir)?;
    tracing::info!(
        "{call_sign}: enrolled as device {} of unit {}",
        credential.device_id,
        credential.unit_id
    );
    Ok(credential)
}
