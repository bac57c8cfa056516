//! The scripted dispatcher: every few seconds an incident at a random road point, then
//! recommendations and an assignment to the first candidate, each step logged.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::operator::{Candidate, NewIncident, Operator};
use super::world::World;

const KINDS: [&str; 5] = [
    "burglary",
    "traffic_accident",
    "assault",
    "disturbance",
    "missing_person",
];

/// Runs until the task is dropped; a failed round is logged and the next one goes ahead.
pub async fn run(operator: Arc<Operator>, world: Arc<World>, every: Duration) {
    let mut rng = StdRng::from_entropy();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; give the units a moment to come online first.
    ticks.tick().await;
    tracing::info!(
        "dispatcher: a new incident every {:.0} s",
        every.as_secs_f64()
    );
    loop {
        ticks.tick().await;
        if let Err(e) = dispatch_one(&operator, &world, &mut rng).await {
            tracing::warn!("dispatcher: round failed: {e:#}");
        }
    }
}

async fn dispatch_one(operator: &Operator, world: &World, rng: &mut StdRng) -> anyhow::Result<()> {
    let (at, _) = world.random_place(rng);
    let kind = KINDS.choose(rng).copied().unwrap_or("disturbance");
    let priority = rng.gen_range(0..=3);
    let incident_id = operator
        .create_incident(&NewIncident {
            kind,
            priority,
            lat: at.lat,
            lon: at.lon,
            notes: "simulated incident",
        })
        .await?;
    tracing::info!(
        "dispatcher: incident {incident_id} created: {kind}, priority {priority}, at {:.5},{:.5}",
        at.lat,
        at.lon
    );
    let candidates = operator.recommendations(incident_id).await?;
    let Some(first) = candidates.first() else {
        tracing::warn!("dispatcher: incident {incident_id}: no unit recommended; left unassigned");
        return Ok(());
    };
    tracing::info!(
        "dispatcher: incident {incident_id}: recommended {}",
        candidates
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let assignment = operator.assign(incident_id, first.unit_id).await?;
    tracing::info!(
        "dispatcher: incident {incident_id}: assigned {} (assignment {assignment})",
        first.call_sign
    );
    Ok(())
}

fn describe(c: &Candidate) -> String {
    let mut text = c.call_sign.clone();
    let mut details = Vec::new();
    if let Some(d) = c.distance_m {
        details.push(format!("{d:.0} m"));
    }
    if let Some(eta) = c.eta_s {
        let source = c.eta_source.as_deref().unwrap_or("estimate");
        details.push(format!("ETA {eta:.0} s by {source}"));
    }
    if !details.is_empty() {
        text.push_str(&format!(" ({})", details.join(", ")));
    }
    text
}
