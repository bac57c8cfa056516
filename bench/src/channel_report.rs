//! Table rows of the order-channel section: ours beside Mosquitto, with the ratio and target.

use std::time::Duration;

use crate::channel::Results as Ours;
use crate::jetstream_peer::Results as JetStream;
use crate::mqtt_peer::Results as Peer;
use crate::stats::{ratio, show, Row};

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "did not complete".into(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

#[allow(clippy::cast_precision_loss)]
fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// Non-201 answers by status and error code.
fn refusals(errors: &std::collections::HashMap<String, u64>) -> String {
    if errors.is_empty() {
        return "no refusals".to_owned();
    }
    let mut e: Vec<String> = errors.iter().map(|(k, v)| format!("{v}× {k}")).collect();
    e.sort();
    e.join(", ")
}

/// The rows; `peer` is the Mosquitto run and `jetstream` the JetStream run, or why each could
/// not run.
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
pub fn rows(
    ours: &Ours,
    peer: &anyhow::Result<Peer>,
    jetstream: &anyhow::Result<JetStream>,
    rate: u32,
) -> Vec<Row> {
    let n = ours.devices;
    let mut rows = Vec::new();
    let ours_p99 = ours.latency.percentile(99);
    let peer_note = |p: &Peer| {
        if p.subscribed < p.clients {
            format!(
                " (only {} of {} clients subscribed; {} connection errors, first: {})",
                p.subscribed,
                p.clients,
                p.connect_errors,
                p.first_error.as_deref().unwrap_or("none")
            )
        } else {
            String::new()
        }
    };
    let (peer_cell, peer_ratio) = match peer {
        Ok(p) => (
            format!(
                "Mosquitto QoS 1, publish sent → subscriber received: p50 {} / p99 {} ({} msgs, {} lost, {} dup){}",
                show(p.latency.percentile(50)),
                show(p.latency.percentile(99)),
                p.published,
                p.lost,
                p.duplicated,
                peer_note(p)
            ),
            ratio(p.latency.percentile(99), ours_p99),
        ),
        Err(e) => (format!("Mosquitto unavailable: {e:#}"), "n/a".into()),
    };
    rows.push(Row {
        what: format!("order committed (201) → device received, {rate} orders/s, {n} devices"),
        ours: format!(
            "p50 {} / p99 {} ({} orders, achieved {:.0}/s, {} not received, {} arrived before the 201, {} ticks without a free unit, {})",
            show(ours.latency.percentile(50)),
            show(ours_p99),
            ours.latency_orders,
            ours.paced_rate,
            ours.latency_missing,
            ours.before_201,
            ours.paced_skipped,
            refusals(&ours.paced_errors)
        ),
        peer: peer_cell,
        ratio: peer_ratio,
        target: "p99 ≤ 25 ms".into(),
    });
    rows.push(Row {
        what: format!(
            "order committed (201) → console live-feed frame, {rate} orders/s, {n} devices"
        ),
        ours: format!(
            "p50 {} / p99 {} ({} orders, {} never reached the console, {} before the 201; {} frames{})",
            show(ours.console_latency.percentile(50)),
            show(ours.console_latency.percentile(99)),
            ours.console_latency.len(),
            ours.console_missing,
            ours.console_before_201,
            ours.console_frames,
            ours.console_ended
                .as_ref()
                .map_or(String::new(), |e| format!("; the socket ended early: {e}"))
        ),
        peer: "no peer".into(),
        ratio: String::new(),
        target: "p99 ≤ 50 ms".into(),
    });
    let per_s: Vec<String> = ours.saturation_seconds.iter().map(u64::to_string).collect();
    let errors = refusals(&ours.saturation_errors);
    let (js_cell, js_ratio) = match jetstream {
        Ok(js) => {
            let per_s: Vec<String> = js.per_second.iter().map(u64::to_string).collect();
            (
                format!(
                    "NATS JetStream ({}), file storage, sync_interval always, same publishers each awaiting its PubAck: {:.0} msgs/s (per second: {}; {} errors{})",
                    js.version,
                    js.acked_per_s,
                    per_s.join(" "),
                    js.errors,
                    js.first_error
                        .as_ref()
                        .map_or(String::new(), |e| format!(", first: {e}"))
                ),
                if js.acked_per_s > 0.0 {
                    format!("{:.2}× (ours / peer)", ours.saturation_per_s / js.acked_per_s)
                } else {
                    "n/a".into()
                },
            )
        }
        Err(e) => (format!("JetStream unavailable: {e:#}"), "n/a".into()),
    };
    rows.push(Row {
        what: "durable orders/s at saturation (201 after commit; devices accept + clear to free units)".into(),
        ours: format!(
            "{:.0} orders/s (per second: {}; {errors})",
            ours.saturation_per_s,
            per_s.join(" ")
        ),
        peer: js_cell,
        ratio: js_ratio,
        target: "≥ JetStream's, and ≥ 5,000/s".into(),
    });
    let (fan_cell, fan_ratio) = match peer {
        Ok(p) => (
            format!(
                "Mosquitto one QoS 1 publish to `units/all`: {} ({} of {} received)",
                secs(p.fanout_all),
                p.fanout_received,
                p.clients
            ),
            match (p.fanout_all, ours.broadcast_all_acked) {
                (Some(a), Some(b)) => ratio(a, b),
                _ => "n/a".into(),
            },
        ),
        Err(_) => ("Mosquitto unavailable".into(), "n/a".into()),
    };
    rows.push(Row {
        what: format!("broadcast to {n} devices: request sent → last receipt (ack)"),
        ours: format!(
            "{} ({} of {n} received)",
            secs(ours.broadcast_all_acked),
            ours.broadcast_received
        ),
        peer: fan_cell,
        ratio: fan_ratio,
        target: "≤ 1 s".into(),
    });
    let per_conn = (ours.rss_after as f64 - ours.rss_before as f64) / n as f64;
    let (mem_cell, mem_ratio) = match peer {
        Ok(Peer {
            rss_before: Some(b),
            rss_after: Some(a),
            subscribed,
            ..
        }) if *subscribed > 0 => {
            let per = (*a as f64 - *b as f64) / *subscribed as f64;
            (
                format!("Mosquitto: {} per idle persistent session", kib(per)),
                if per_conn > 0.0 {
                    format!("{:.2}×", per / per_conn)
                } else {
                    "n/a".into()
                },
            )
        }
        Ok(_) => ("Mosquitto RSS unreadable".into(), "n/a".into()),
        Err(_) => ("Mosquitto unavailable".into(), "n/a".into()),
    };
    rows.push(Row {
        what: format!("server RSS per idle device connection (TLS WebSocket), {n} devices"),
        ours: format!(
            "{} ({} MiB → {} MiB)",
            kib(per_conn),
            ours.rss_before / (1024 * 1024),
            ours.rss_after / (1024 * 1024)
        ),
        peer: mem_cell,
        ratio: mem_ratio,
        target: "≤ 30 KB".into(),
    });
    rows.push(Row {
        what: format!("reconnect storm: kill -9, restart, all {n} devices welcomed again"),
        ours: format!(
            "{} after ready, {} after the kill (restart {:.2} s; {} of {n} resumed; kill -9 after half of a burst of orders: {} answered 201, {} cut off)",
            secs(ours.storm_after_restart),
            secs(ours.storm_after_kill),
            ours.restart_time.as_secs_f64(),
            ours.storm_resumed,
            ours.storm_orders,
            ours.storm_cut
        ),
        peer: "not measured on the peer".into(),
        ratio: String::new(),
        target: "≤ 15 s".into(),
    });
    rows.push(Row {
        what: "lost / duplicated over the whole run".into(),
        ours: format!(
            "{} of {} orders lost, {} of {n} broadcasts lost, {} duplicated (same message, new seq), {} redelivered after ack; {} unacked redeliveries (allowed), {} actions rejected",
            ours.orders_lost,
            ours.orders_expected,
            ours.broadcasts_lost,
            ours.duplicated,
            ours.redelivered_after_ack,
            ours.redelivered_unacked,
            ours.rejected_actions
        ),
        peer: match peer {
            Ok(p) => format!("Mosquitto: {} lost, {} duplicated", p.lost, p.duplicated),
            Err(_) => "Mosquitto unavailable".into(),
        },
        ratio: String::new(),
        target: "0 lost, 0 duplicated".into(),
    });
    rows.push(Row {
        what: format!("setup: enrol {n} devices via the API (unit, code, enroll), connect them"),
        ours: format!(
            "enrol {:.1} s, connect {:.1} s",
            ours.enrol_time.as_secs_f64(),
            ours.connect_time.as_secs_f64()
        ),
        peer: match peer {
            Ok(p) => format!(
                "Mosquitto connect + subscribe {:.1} s",
                p.connect_time.as_secs_f64()
            ),
            Err(_) => String::new(),
        },
        ratio: String::new(),
        target: String::new(),
    });
    rows
}

/// The same run under a login flood beside the run without: durable orders per second and
/// commit → device latency, the flood's run first ("ours"), the quiet run as the "peer".
#[allow(clippy::cast_precision_loss)]
pub fn flood_rows(quiet: &Ours, flooded: &Ours, connections: usize) -> Vec<Row> {
    let answers = refusals(&flooded.flood_answers);
    let attempts: u64 = flooded.flood_answers.values().sum();
    vec![
        Row {
            what: format!(
                "durable orders/s under a login flood ({connections} connections of wrong passwords, throttle off: {attempts} attempts, answered {answers})"
            ),
            ours: format!("{:.0}/s", flooded.saturation_per_s),
            peer: format!("{:.0}/s without the flood", quiet.saturation_per_s),
            ratio: format!("{:.2}", flooded.saturation_per_s / quiet.saturation_per_s.max(1e-9)),
            target: "≥ 0.90 of the quiet run".into(),
        },
        Row {
            what: "order committed → device received p99 under the same login flood".into(),
            ours: show(flooded.latency.percentile(99)),
            peer: format!("{} without the flood", show(quiet.latency.percentile(99))),
            ratio: ratio(quiet.latency.percentile(99), flooded.latency.percentile(99)),
            target: "≥ 0.90 (p99 within 10 %)".into(),
        },
    ]
}

/// The run with back-to-back backups against the quiet one.
pub fn backup_rows(quiet: &Ours, backed_up: &Ours) -> Vec<Row> {
    vec![
        Row {
            what: format!(
                "durable orders/s while `dispatchd backup` (default pace, {} MiB/s) runs back to back ({} backups taken)",
                dispatch_server::backup::pace::DEFAULT_MIB_PER_S,
                backed_up.backups_taken
            ),
            ours: format!("{:.0}/s", backed_up.saturation_per_s),
            peer: format!("{:.0}/s without backups", quiet.saturation_per_s),
            ratio: format!(
                "{:.2}",
                backed_up.saturation_per_s / quiet.saturation_per_s.max(1e-9)
            ),
            target: "≥ 0.80 of the quiet run".into(),
        },
        Row {
            what: "order committed → device received p99 during the same backups".into(),
            ours: show(backed_up.latency.percentile(99)),
            peer: format!("{} without backups", show(quiet.latency.percentile(99))),
            ratio: ratio(
                quiet.latency.percentile(99),
                backed_up.latency.percentile(99),
            ),
            target: String::new(),
        },
    ]
}
