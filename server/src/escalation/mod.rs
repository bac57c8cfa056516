//! The escalation ladder: a sweep that finds orders nobody confirmed in time and raises them.
//! No receipt within T1: a console alert and the SMS fallback. No acknowledgement within T2: a
//! console alert proposing the next recommended unit. Still undecided at the expiry: the order
//! expires and the device is told. Every step is a timeline event, written once; what follows
//! from it (the device told, the unit released, the SMS sender woken) follows from the commit.
//! Each pass also records the tablets offline too long (their units are not recommended) and
//! ends with the attention review (`store::Store::review_attention`): which incidents
//! need an operator now, and why.

pub mod fallback;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::channel::Hub;
use crate::config::{Attention, Escalation, SmsGateway};
use crate::domain::{now_ms, Actor};
use crate::geo::recommend::rank;
use crate::geo::LiveUnits;
use crate::store::{OverdueOrder, Stage, Store, Withdrawal};
use dispatch_geo::road::RoadGraph;

/// What the sweep needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EscalationContext {
    pub store: Store,
    /// To tell whether an overdue order's device is connected.
    pub devices: Hub,
    /// To propose the unit that would now arrive first.
    pub live: LiveUnits,
    pub roads: Option<Arc<RoadGraph>>,
    pub ladder: Escalation,
    /// When an incident needs an operator's attention.
    pub attention: Attention,
    /// How long a tablet may be offline before its unit counts as without a link.
    pub link_lost: Duration,
    /// The SMS gateway, when one is configured.
    pub sms: Option<SmsGateway>,
    /// A fix older than this does not make a unit a candidate.
    pub stale_fix: Duration,
    /// Counts the steps recorded.
    pub metrics: crate::metrics::Metrics,
}

/// Runs the sweep every `ladder.sweep_millis` until `stop` turns true.
pub async fn run(state: EscalationContext, mut stop: watch::Receiver<bool>) {
    // Devices that do not come back after a restart lose their link like any other.
    match state.store.active_devices().await {
        Ok(devices) => state.devices.watch_offline(&devices, now_ms()),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the enrolled devices to watch their links")
        }
    }
    let every = Duration::from_millis(state.ladder.sweep_millis);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = sweep(&state).await {
                    tracing::error!(error = %e, "escalation sweep failed; retrying next tick");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// One pass over every stage.
///
/// # Errors
/// On a database error; what was recorded before it stays recorded.
pub async fn sweep(state: &EscalationContext) -> Result<(), crate::store::Error> {
    let ladder = &state.ladder;
    let now = now_ms();
    for order in state
        .store
        .overdue_orders(Stage::NoReceipt, &ladder.receipt_secs, now)
        .await?
    {
        escalate_receipt(state, &order, now).await?;
    }
    for order in state
        .store
        .overdue_orders(Stage::NoAcknowledgement, &ladder.acknowledge_secs, now)
        .await?
    {
        escalate_acknowledgement(state, &order, now).await?;
    }
    for order_id in state
        .store
        .orders_to_expire(&ladder.expire_secs, now)
        .await?
    {
        match state
            .store
            .withdraw_order(
                order_id,
                Withdrawal::Expire,
                "nobody decided in time",
                &Actor::System,
            )
            .await
        {
            Ok(order) => {
                state.metrics.escalated(crate::metrics::EXPIRED);
                tracing::warn!(order = order_id, unit = %order.call_sign, "order expired");
            }
            // Decided between the read and the write: nothing to expire.
            Err(crate::store::Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    review_links(state, now).await?;
    let review = state.store.review_attention(&state.attention).await?;
    if review.raised > 0 || review.resolved > 0 {
        tracing::info!(
            raised = review.raised,
            resolved = review.resolved,
            "attention reviewed"
        );
    }
    Ok(())
}

/// Records the lost link of every tablet offline longer than `link_lost`.
async fn review_links(state: &EscalationContext, now: i64) -> Result<(), crate::store::Error> {
    let lost_ms = i64::try_from(state.link_lost.as_millis()).unwrap_or(i64::MAX / 2);
    if state.store.node().is_some() {
        // In a cluster: tablets whose node died are offline, whichever node watches them.
        let orphans = state.store.devices_on_lost_nodes().await?;
        state.devices.watch_offline(&orphans, now);
    }
    for (device, since) in state.devices.offline_since(now - lost_ms) {
        if state.store.mark_link_lost(device, since).await? {
            tracing::warn!(device, since, "tablet link lost");
            // Connected meanwhile, after its session looked for a mark: undo it here.
            if state.devices.is_connected(device) {
                if let Ok(unit) = state.store.device_unit(device).await {
                    state.store.restore_link(unit, device).await?;
                }
            }
        }
        state.devices.forget_offline(device);
    }
    Ok(())
}

fn waited(order: &OverdueOrder, now: i64) -> i64 {
    now - order.created_at
}

async fn escalate_receipt(
    state: &EscalationContext,
    order: &OverdueOrder,
    now: i64,
) -> Result<(), crate::store::Error> {
    let connected = state.devices.is_connected(order.device_id);
    let fallback_text = state.sms.as_ref().map(|sms| fill(&sms.template, order));
    let (fallback, fallback_state) = match (&fallback_text, order.sms_number.as_deref()) {
        (Some(text), Some(number)) => (Some((number, text.as_str())), "sms_queued"),
        (Some(_), None) => (None, "no_sms_number"),
        (None, _) => (None, "not_configured"),
    };
    let detail = serde_json::json!({
        "stage": Stage::NoReceipt.as_str(),
        "call_sign": order.call_sign,
        "waited_ms": waited(order, now),
        "threshold_ms": threshold_ms(&state.ladder.receipt_secs, order.priority),
        "device_connected": connected,
        "fallback": fallback_state,
        "proposed": serde_json::Value::Null,
    });
    if state
        .store
        .record_escalation(order, Stage::NoReceipt, detail, fallback)
        .await?
    {
        state.metrics.escalated(Stage::NoReceipt.as_str());
        tracing::warn!(order = order.order_id, unit = %order.call_sign, fallback = fallback_state,
            "order escalated: no receipt");
    }
    Ok(())
}

async fn escalate_acknowledgement(
    state: &EscalationContext,
    order: &OverdueOrder,
    now: i64,
) -> Result<(), crate::store::Error> {
    let proposed = next_unit(state, order, now).await;
    let detail = serde_json::json!({
        "stage": Stage::NoAcknowledgement.as_str(),
        "call_sign": order.call_sign,
        "waited_ms": waited(order, now),
        "threshold_ms": threshold_ms(&state.ladder.acknowledge_secs, order.priority),
        "proposed": proposed,
    });
    if state
        .store
        .record_escalation(order, Stage::NoAcknowledgement, detail, None)
        .await?
    {
        state.metrics.escalated(Stage::NoAcknowledgement.as_str());
        tracing::warn!(order = order.order_id, unit = %order.call_sign,
            "order escalated: no acknowledgement");
    }
    Ok(())
}

fn threshold_ms(ladder: &[u64; 5], priority: i64) -> u64 {
    Escalation::for_priority(ladder, priority) * 1000
}

/// The available unit that would arrive first instead, as `{unit_id, call_sign, eta_s,
/// eta_source}`, or null when there is none.
async fn next_unit(state: &EscalationContext, order: &OverdueOrder, now: i64) -> serde_json::Value {
    let (required, in_danger) = match state.store.incident(order.incident_id).await {
        Ok(incident) => (incident.required_capabilities, incident.emergency_unit_id),
        Err(_) => (Vec::new(), None),
    };
    let stale_ms = i64::try_from(state.stale_fix.as_millis()).unwrap_or(i64::MAX / 2);
    let (roads, live, at) = (
        state.roads.clone(),
        state.live.clone(),
        (order.lat, order.lon),
    );
    let ranked = tokio::task::spawn_blocking(move || {
        rank(roads.as_deref(), &live, at, 2, &required, now - stale_ms)
    })
    .await
    .unwrap_or_default();
    // Never the unit whose officer raised the incident as an emergency.
    let Some(best) = ranked.into_iter().find(|r| Some(r.unit_id) != in_danger) else {
        return serde_json::Value::Null;
    };
    let call_sign = state
        .store
        .unit(best.unit_id)
        .await
        .map(|u| u.call_sign)
        .unwrap_or_default();
    serde_json::json!({
        "unit_id": best.unit_id,
        "call_sign": call_sign,
        "eta_s": best.eta_s.round(),
        "eta_source": best.source,
    })
}

/// Fills the SMS template's placeholders.
fn fill(template: &str, order: &OverdueOrder) -> String {
    template
        .replace("{call_sign}", &order.call_sign)
        .replace("{kind}", &order.kind)
        .replace("{priority}", &order.priority.to_string())
        .replace(
            "{address}",
            order
                .address
                .as_deref()
                .unwrap_or(&format!("{:.5},{:.5}", order.lat, order.lon)),
        )
        .replace("{incident_id}", &order.incident_id.to_string())
        .replace("{order_id}", &order.order_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_fills_every_placeholder() {
        let order = OverdueOrder {
            order_id: 7,
            incident_id: 3,
            unit_id: 1,
            device_id: 1,
            call_sign: "P-11".into(),
            sms_number: None,
            kind: "burglary".into(),
            priority: 1,
            address: None,
            lat: 60.1,
            lon: 24.9,
            created_at: 0,
        };
        let text = fill(
            "{call_sign} {kind} P{priority} {address} #{incident_id}/{order_id}",
            &order,
        );
        assert_eq!(text, "P-11 burglary P1 60.10000,24.90000 #3/7");
    }
}
