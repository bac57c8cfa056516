//! The fallback channel: hands queued SMS messages to the agency's gateway over HTTP and
//! records each message's own delivery status (sent with the gateway's reference, or failed
//! after the configured attempts).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::config::SmsGateway;
use crate::store::{PendingFallback, Store};

/// How long to wait before retrying a message the gateway refused.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Sends pending fallback messages through `gateway` whenever woken (a commit queued one) and
/// every few seconds for retries, while `sending` is true (in a cluster, one node sends), until
/// `stop` turns true. Does nothing without a gateway.
pub async fn run(
    store: Store,
    gateway: Option<SmsGateway>,
    wake: Arc<Notify>,
    mut sending: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(gateway) = gateway else {
        return;
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(gateway.timeout_secs))
        .danger_accept_invalid_certs(gateway.accept_invalid_certs)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the SMS gateway client; no fallback");
            return;
        }
    };
    loop {
        if *sending.borrow_and_update() {
            if let Err(e) = send_pending(&store, &client, &gateway).await {
                tracing::error!(error = %e, "fallback sender failed; retrying");
            }
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(RETRY_EVERY) => {}
            Ok(()) = sending.changed() => {}
            _ = stop.changed() => return,
        }
    }
}

async fn send_pending(
    store: &Store,
    client: &reqwest::Client,
    gateway: &SmsGateway,
) -> Result<(), crate::store::Error> {
    for message in store.pending_fallbacks(100).await? {
        let outcome = post(client, gateway, &message).await;
        let give_up = message.attempts + 1 >= gateway.max_attempts;
        match &outcome {
            Ok(reference) => {
                tracing::info!(
                    fallback = message.id,
                    order = message.order_id,
                    ?reference,
                    "fallback SMS accepted by the gateway"
                );
            }
            Err(e) => {
                tracing::warn!(fallback = message.id, order = message.order_id, error = %e,
                    give_up, "fallback SMS refused");
            }
        }
        store
            .record_fallback_attempt(&message, outcome, give_up)
            .await?;
    }
    Ok(())
}

/// One POST to the gateway. `Ok` carries the gateway's id for the message when it gave one.
async fn post(
    client: &reqwest::Client,
    gateway: &SmsGateway,
    message: &PendingFallback,
) -> Result<Option<String>, String> {
    let mut request = client.post(&gateway.url).json(&serde_json::json!({
        "to": message.recipient,
        "text": message.body,
        "reference": format!("fallback-{}", message.id),
    }));
    if let Some(token) = &gateway.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!(
            "gateway answered {status}: {}",
            body.chars().take(200).collect::<String>()
        ));
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    Ok(body
        .get("id")
        .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned)))
}
