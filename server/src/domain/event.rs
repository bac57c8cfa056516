//! Timeline events: the append-only record of who did what, when (server clock).

use serde::Serialize;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Operator {
        id: i64,
        username: String,
    },
    Device {
        id: i64,
    },
    System,
    /// Someone not logged in (a refused login).
    Anonymous,
}

impl Actor {
    /// The stored form: `operator:<name>`, `device:<id>`, `system` or `anonymous`.
    pub fn label(&self) -> String {
        match self {
            Self::Operator { username, .. } => format!("operator:{username}"),
            Self::Device { id } => format!("device:{id}"),
            Self::System => "system".to_owned(),
            Self::Anonymous => "anonymous".to_owned(),
        }
    }

    /// How a message from this actor is signed: an operator's name, else the stored label.
    pub fn display_name(&self) -> String {
        match self {
            Self::Operator { username, .. } => username.clone(),
            other => other.label(),
        }
    }

    pub fn operator_id(&self) -> Option<i64> {
        match self {
            Self::Operator { id, .. } => Some(*id),
            _ => None,
        }
    }
}

/// One timeline entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    pub id: i64,
    pub at_ms: i64,
    /// `at_ms` as RFC 3339, for people reading the JSON.
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub incident_id: Option<i64>,
    pub unit_id: Option<i64>,
    pub order_id: Option<i64>,
    pub detail: serde_json::Value,
    /// For an officer's action: when the server received it (`at_ms` is when the officer did
    /// it, by the tablet's clock corrected by its offset). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at_ms: Option<i64>,
    /// The network address of the request or device connection that caused the event; absent
    /// for the server's own events and for events recorded before migration 0012.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Formats a millisecond timestamp as RFC 3339 UTC.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
