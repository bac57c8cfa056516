//! Wire types of the device channel between `dispatchd` and the field tablets.
//!
//! JSON text frames tagged by `type`; see `docs/protocol.md` for the exchange itself. This crate
//! holds only data and its validation so that any client can share the exact same definitions.

use serde::{Deserialize, Serialize};

/// Version a client announces in `hello`; the server closes with [`close::UNSUPPORTED_VERSION`]
/// when it does not speak it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes. Larger frames close the socket with
/// [`close::FRAME_TOO_LARGE`].
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Longest `action_id` a client may use.
pub const MAX_ACTION_ID_LEN: usize = 64;

/// Longest free-text detail of a decline.
pub const MAX_REASON_LEN: usize = 500;

/// Why an officer declines an order: `busy` (with another task), `too_far`, `vehicle_problem`,
/// or `other` (say what in `detail`). Codes, so that every reader sees them in their language.
pub const DECLINE_REASONS: [&str; 4] = ["busy", "too_far", "vehicle_problem", "other"];

/// Longest text message either way, in characters.
pub const MAX_TEXT_LEN: usize = 2000;

/// Longest `message_id`.
pub const MAX_MESSAGE_ID_LEN: usize = 64;

/// Most fingerprints a `pins` frame may carry: the certificate in use and the next one, with
/// room to spare; a device ignores a frame with more.
pub const MAX_PINS: usize = 4;

/// The incident types the console offers at intake, with their names in English and Korean
/// (`{"burglary": {"en": "burglary", "ko": "침입 절도"}, …}`): one list for the console and the
/// tablet. Other types are allowed; they show as their code.
pub const INCIDENT_KINDS_JSON: &str = include_str!("../incident_kinds.json");

/// Path of the device channel on the server.
pub const DEVICE_CHANNEL_PATH: &str = "/api/device/channel";

/// WebSocket close codes the server uses, with the reason text carrying the detail.
pub mod close {
    /// The server is shutting down; reconnect with backoff.
    pub const GOING_AWAY: u16 = 1001;
    /// The server failed unexpectedly handling the connection; reconnect with backoff.
    pub const SERVER_ERROR: u16 = 1011;
    /// The server could not store what the device sent (disk full, storage failure): nothing of
    /// that frame was recorded. Reconnect with backoff and send it again.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A frame could not be parsed or broke the protocol (for example no `hello` first).
    pub const PROTOCOL_ERROR: u16 = 4000;
    /// The device id or token is wrong. Do not retry without re-enrolling.
    pub const BAD_CREDENTIAL: u16 = 4001;
    /// The device was revoked. Do not retry.
    pub const REVOKED: u16 = 4003;
    /// A frame was larger than [`crate::MAX_FRAME_BYTES`].
    pub const FRAME_TOO_LARGE: u16 = 4008;
    /// Another connection of the same device took over this one.
    pub const SUPERSEDED: u16 = 4009;
    /// The `hello` announced a protocol version the server does not speak.
    pub const UNSUPPORTED_VERSION: u16 = 4010;
    /// No `hello` arrived in time.
    pub const HELLO_TIMEOUT: u16 = 4011;
    /// Nothing arrived from the device for three heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: u16 = 4012;

    /// Whether a client should try again after the server closed with `code`.
    pub fn is_retryable(code: u16) -> bool {
        !matches!(code, BAD_CREDENTIAL | REVOKED | UNSUPPORTED_VERSION)
    }
}

/// A frame sent by the tablet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// First frame on every connection: who the device is and what it already holds.
    Hello(Hello),
    /// Cumulative receipt: every delivery with `seq <= upto` is persisted on the device.
    Ack { upto: u64 },
    /// The officer accepts an order.
    Accept {
        action_id: String,
        order_id: i64,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// The officer declines an order, with a reason code (one of [`DECLINE_REASONS`]) and,
    /// for `other`, what it is.
    Decline {
        action_id: String,
        order_id: i64,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// The officer reports the unit's status, optionally about one order.
    Status {
        action_id: String,
        status: ReportedStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<i64>,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// A GPS fix. Not acknowledged: the newest fix wins.
    Location(Location),
    /// The message with this id is on the officer's screen (the alert is showing).
    Displayed {
        action_id: String,
        message_id: String,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// The officer confirmed having read the message (order, broadcast or text). For an order
    /// this is not yet a decision: `accept` or `decline` follows.
    Acknowledge {
        action_id: String,
        message_id: String,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// A text message from the officer to the control room.
    Text {
        action_id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident_id: Option<i64>,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
    /// The officer is in danger (the tablet's emergency control, held on purpose): the control
    /// room's highest alert and an emergency incident at `location`, or at the unit's last
    /// known position when absent.
    Emergency {
        action_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
        /// When the officer did it, by the device's clock (ms since the Unix epoch); the server
        /// corrects it by the clock offset measured at `hello`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<i64>,
    },
}

/// Something an officer does that the server must confirm: the one definition of the officer's
/// actions, used by the tablet (which stores and sends them) and the server (which applies
/// them). On the wire each is a [`ClientFrame`] of the same name with an `action_id` and an
/// optional `at_ms` ([`Action::into_frame`], [`ClientFrame::into_action`]). The server keeps a
/// digest of this serde form per `action_id`, so it must not change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Accept {
        order_id: i64,
    },
    Decline {
        order_id: i64,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Status {
        status: ReportedStatus,
        order_id: Option<i64>,
    },
    /// The message is on the officer's screen.
    Displayed {
        message_id: String,
    },
    /// The officer confirmed reading the message.
    Acknowledge {
        message_id: String,
    },
    /// A text to the control room.
    Text {
        text: String,
        incident_id: Option<i64>,
    },
    /// The officer is in danger, at `location` when known.
    Emergency {
        location: Option<Location>,
    },
}

impl Action {
    /// The frame's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Accept { .. } => "accept",
            Self::Decline { .. } => "decline",
            Self::Status { .. } => "status",
            Self::Displayed { .. } => "displayed",
            Self::Acknowledge { .. } => "acknowledge",
            Self::Text { .. } => "text",
            Self::Emergency { .. } => "emergency",
        }
    }

    /// The order the action is about, if any.
    pub fn order_id(&self) -> Option<i64> {
        match self {
            Self::Accept { order_id } | Self::Decline { order_id, .. } => Some(*order_id),
            Self::Status { order_id, .. } => *order_id,
            Self::Displayed { .. }
            | Self::Acknowledge { .. }
            | Self::Text { .. }
            | Self::Emergency { .. } => None,
        }
    }

    /// The frame that sends this action as `action_id`, done at `at_ms` (device clock).
    pub fn into_frame(self, action_id: String, at_ms: Option<i64>) -> ClientFrame {
        match self {
            Self::Accept { order_id } => ClientFrame::Accept {
                action_id,
                order_id,
                at_ms,
            },
            Self::Decline {
                order_id,
                reason,
                detail,
            } => ClientFrame::Decline {
                action_id,
                order_id,
                reason,
                detail,
                at_ms,
            },
            Self::Status { status, order_id } => ClientFrame::Status {
                action_id,
                status,
                order_id,
                at_ms,
            },
            Self::Displayed { message_id } => ClientFrame::Displayed {
                action_id,
                message_id,
                at_ms,
            },
            Self::Acknowledge { message_id } => ClientFrame::Acknowledge {
                action_id,
                message_id,
                at_ms,
            },
            Self::Text { text, incident_id } => ClientFrame::Text {
                action_id,
                text,
                incident_id,
                at_ms,
            },
            Self::Emergency { location } => ClientFrame::Emergency {
                action_id,
                location,
                at_ms,
            },
        }
    }
}

/// An officer's action as it arrived: its id, when it was done (device clock) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionFrame {
    pub action_id: String,
    pub at_ms: Option<i64>,
    pub action: Action,
}

/// Opening frame of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub device_id: i64,
    pub token: String,
    /// Epoch the device last saw in `welcome`; `None` on first connection.
    #[serde(default)]
    pub epoch: Option<String>,
    /// Highest `seq` the device has persisted (0 if none).
    #[serde(default)]
    pub ack_floor: u64,
    /// The device's clock when it sent `hello` (ms since the Unix epoch): the server measures
    /// the device's clock offset from it, to correct the `at_ms` of its actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<i64>,
}

/// A position report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_m: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
    /// When the fix was taken, milliseconds since the Unix epoch (device clock).
    pub fix_time_ms: i64,
}

/// Statuses an officer can report from the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    EnRoute,
    OnScene,
    /// Finished with the incident; the unit is available again.
    Cleared,
    Available,
    OutOfService,
}

impl ReportedStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnRoute => "en_route",
            Self::OnScene => "on_scene",
            Self::Cleared => "cleared",
            Self::Available => "available",
            Self::OutOfService => "out_of_service",
        }
    }
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Reply to a valid `hello`.
    Welcome(Welcome),
    /// One message from the device's outbox. Persist it, then `ack` its `seq`.
    Deliver(Delivery),
    /// The action with this id is recorded (or was recorded before: actions are idempotent).
    Done { action_id: String },
    /// The action with this id was refused and changed nothing; do not resend it.
    Rejected {
        action_id: String,
        code: String,
        message: String,
    },
    /// The SHA-256 fingerprints (lower-case hex) of the certificates the server may present:
    /// the one in use, then the next one while a rotation is pending. A device that trusts
    /// the server by pin replaces its pin set with these; sent after `welcome` and whenever
    /// the set changes.
    Pins { pins: Vec<String> },
}

/// Reply to `hello`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub device_id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    /// The device's current epoch. When it differs from the one sent in `hello`, the server
    /// replays the whole outbox and the device must forget its old `ack_floor`.
    pub epoch: String,
    /// True when the server is replaying from the start because the epoch changed.
    pub resync: bool,
    pub server_time_ms: i64,
    /// The server pings at this interval; a client that hears nothing for three intervals
    /// should consider the link dead.
    pub heartbeat_secs: u64,
    /// Every address the service may be reached at (`https://HOST[:PORT]`, the server's
    /// `server_urls`), as in the enrolment answer; empty when none is configured.
    #[serde(default)]
    pub servers: Vec<String>,
}

/// One outbox entry pushed to a device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Per-device sequence number, strictly increasing from 1.
    pub seq: u64,
    /// Globally unique id of the message, stable across redelivery.
    pub message_id: String,
    /// When the server committed the message, milliseconds since the Unix epoch.
    pub queued_at_ms: i64,
    pub body: Message,
}

/// What a delivery carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// Go to an incident.
    Order(OrderMessage),
    /// An order sent earlier no longer stands (cancelled by the control room, or expired).
    Cancel(CancelMessage),
    /// A text message from the control room to this unit.
    Text(TextMessage),
    /// An alert sent to many units at once, shaped like an OASIS CAP 1.2 `alert`/`info`.
    Broadcast(BroadcastMessage),
    /// The control room changed an incident this unit holds an order for, or added to its
    /// narrative or callers.
    IncidentUpdate(IncidentUpdateMessage),
}

/// An incident as it now is, sent to every unit holding an active order for it after each
/// change. The tablet replaces what it shows of the incident with `incident`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentUpdateMessage {
    pub incident: IncidentBrief,
    /// What changed: any of `kind`, `priority`, `location`, `address`, `caller`, `callback`,
    /// `notes`, `narrative` (an entry was added to `incident.narrative`).
    pub changed: Vec<String>,
}

/// One entry added to an incident after it was created: a line of narrative by an operator,
/// or another caller about the same incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentEntry {
    pub id: i64,
    /// `narrative` or `caller`.
    pub kind: String,
    /// Who added it (operator's name).
    pub author: String,
    /// When it was added, milliseconds since the Unix epoch.
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For a `caller` entry: the caller's name and callback number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
}

impl Message {
    /// Every `kind` a delivery's body can have.
    pub const KINDS: [&'static str; 5] =
        ["order", "cancel", "text", "broadcast", "incident_update"];

    /// This message's `kind`, as it is on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Order(_) => "order",
            Self::Cancel(_) => "cancel",
            Self::Text(_) => "text",
            Self::Broadcast(_) => "broadcast",
            Self::IncidentUpdate(_) => "incident_update",
        }
    }
}

/// Withdraws an order. The tablet should take the order off screen and tell the officer why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelMessage {
    pub order_id: i64,
    /// `cancelled` (by an operator) or `expired` (nobody answered in time).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A text from the control room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextMessage {
    pub text_id: i64,
    /// Who wrote it (operator's name).
    pub from: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<i64>,
}

/// CAP 1.2 urgency of a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Urgency {
    Immediate,
    Expected,
    Future,
    Past,
    Unknown,
}

/// CAP 1.2 severity of a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Severity {
    Extreme,
    Severe,
    Moderate,
    Minor,
    Unknown,
}

/// CAP 1.2 certainty of a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Certainty {
    Observed,
    Likely,
    Possible,
    Unlikely,
    Unknown,
}

/// A broadcast (for example a BOLO, "be on the lookout") to a group, to all units or to the
/// units inside an area. Field names follow CAP 1.2's `info` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastMessage {
    pub broadcast_id: i64,
    /// Who sent it (operator's name); CAP `sender`.
    pub sender: String,
    /// CAP `sent`, milliseconds since the Unix epoch.
    pub sent_ms: i64,
    pub urgency: Urgency,
    pub severity: Severity,
    pub certainty: Certainty,
    pub headline: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// CAP `area`: a description and, when the broadcast went to an area, its polygon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<BroadcastArea>,
    /// CAP `expires`, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

/// CAP `area` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BroadcastArea {
    pub area_desc: String,
    /// Ring of `[lat, lon]` pairs, first and last equal (CAP's polygon order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polygon: Vec<[f64; 2]>,
}

/// A dispatch order for one unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderMessage {
    pub order_id: i64,
    pub unit_id: i64,
    pub incident: IncidentBrief,
    /// The officer already accepted this order on the unit's previous tablet: it reached this
    /// one because the unit was enrolled again. The tablet shows it as accepted; an `accept`
    /// would be rejected `already_decided`. Absent (false) for a new order.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accepted: bool,
}

/// What an officer needs to know about an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentBrief {
    pub id: i64,
    pub kind: String,
    /// 0 is the most urgent, 4 the least.
    pub priority: u8,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    /// The first caller's name and the number to call back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<String>,
    /// What the agency knows about the place: hazards and notes whose point or area holds the
    /// incident's location, most severe first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hazards: Vec<Hazard>,
    /// Entries added since the incident was created, oldest first (the newest
    /// [`MAX_BRIEF_ENTRIES`] at most).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub narrative: Vec<IncidentEntry>,
}

/// A premise entry of the agency that matches an incident's location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hazard {
    pub id: i64,
    pub label: String,
    pub text: String,
    /// `danger`, `caution` or `info`.
    pub severity: String,
}

/// The most narrative entries an [`IncidentBrief`] carries.
pub const MAX_BRIEF_ENTRIES: usize = 50;

/// Why a client frame is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidFrame(pub String);

impl std::fmt::Display for InvalidFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidFrame {}

impl ClientFrame {
    /// Parses and validates one text frame.
    ///
    /// # Errors
    /// A message naming the problem: oversized, not JSON, unknown `type`, a missing or
    /// wrong-typed field, or a value out of range.
    pub fn parse(text: &str) -> Result<Self, InvalidFrame> {
        if text.len() > MAX_FRAME_BYTES {
            return Err(InvalidFrame(format!(
                "frame of {} bytes exceeds the limit of {MAX_FRAME_BYTES}",
                text.len()
            )));
        }
        let frame: Self = serde_json::from_str(text)
            .map_err(|e| InvalidFrame(format!("malformed frame: {e}")))?;
        frame.validate()?;
        Ok(frame)
    }

    fn validate(&self) -> Result<(), InvalidFrame> {
        match self {
            Self::Hello(_) | Self::Ack { .. } => Ok(()),
            Self::Accept { action_id, .. } | Self::Status { action_id, .. } => {
                validate_action_id(action_id)
            }
            Self::Decline {
                action_id,
                reason,
                detail,
                ..
            } => {
                validate_action_id(action_id)?;
                if !DECLINE_REASONS.contains(&reason.as_str()) {
                    return Err(InvalidFrame(format!(
                        "decline: `reason` must be one of {} (got {reason:?})",
                        DECLINE_REASONS.join(", ")
                    )));
                }
                let detail = detail.as_deref().map(str::trim).unwrap_or_default();
                if reason == "other" && detail.is_empty() {
                    return Err(InvalidFrame(
                        "decline: `detail` must say what the `other` reason is".into(),
                    ));
                }
                if detail.chars().count() > MAX_REASON_LEN {
                    return Err(InvalidFrame(format!(
                        "decline: `detail` is longer than {MAX_REASON_LEN} characters"
                    )));
                }
                Ok(())
            }
            Self::Location(loc) => loc.validate(),
            Self::Emergency {
                action_id,
                location,
                ..
            } => {
                validate_action_id(action_id)?;
                location.as_ref().map_or(Ok(()), Location::validate)
            }
            Self::Displayed {
                action_id,
                message_id,
                ..
            }
            | Self::Acknowledge {
                action_id,
                message_id,
                ..
            } => {
                validate_action_id(action_id)?;
                if message_id.is_empty() || message_id.len() > MAX_MESSAGE_ID_LEN {
                    return Err(InvalidFrame(format!(
                        "`message_id` must be 1 to {MAX_MESSAGE_ID_LEN} bytes"
                    )));
                }
                Ok(())
            }
            Self::Text {
                action_id, text, ..
            } => {
                validate_action_id(action_id)?;
                if text.trim().is_empty() {
                    return Err(InvalidFrame("text: `text` must not be empty".into()));
                }
                if text.chars().count() > MAX_TEXT_LEN {
                    return Err(InvalidFrame(format!(
                        "text: `text` is longer than {MAX_TEXT_LEN} characters"
                    )));
                }
                Ok(())
            }
        }
    }

    /// The officer's action this frame carries; `Err(self)` for `hello`, `ack` and `location`.
    ///
    /// # Errors
    /// The frame itself when it is not an action.
    pub fn into_action(self) -> Result<ActionFrame, Self> {
        let (action_id, at_ms, action) = match self {
            Self::Accept {
                action_id,
                order_id,
                at_ms,
            } => (action_id, at_ms, Action::Accept { order_id }),
            Self::Decline {
                action_id,
                order_id,
                reason,
                detail,
                at_ms,
            } => (
                action_id,
                at_ms,
                Action::Decline {
                    order_id,
                    reason,
                    detail,
                },
            ),
            Self::Status {
                action_id,
                status,
                order_id,
                at_ms,
            } => (action_id, at_ms, Action::Status { status, order_id }),
            Self::Displayed {
                action_id,
                message_id,
                at_ms,
            } => (action_id, at_ms, Action::Displayed { message_id }),
            Self::Acknowledge {
                action_id,
                message_id,
                at_ms,
            } => (action_id, at_ms, Action::Acknowledge { message_id }),
            Self::Text {
                action_id,
                text,
                incident_id,
                at_ms,
            } => (action_id, at_ms, Action::Text { text, incident_id }),
            Self::Emergency {
                action_id,
                location,
                at_ms,
            } => (action_id, at_ms, Action::Emergency { location }),
            other @ (Self::Hello(_) | Self::Ack { .. } | Self::Location(_)) => return Err(other),
        };
        Ok(ActionFrame {
            action_id,
            at_ms,
            action,
        })
    }

    /// The action id of frames that expect `done` or `rejected`.
    pub fn action_id(&self) -> Option<&str> {
        match self {
            Self::Accept { action_id, .. }
            | Self::Decline { action_id, .. }
            | Self::Status { action_id, .. }
            | Self::Displayed { action_id, .. }
            | Self::Acknowledge { action_id, .. }
            | Self::Text { action_id, .. }
            | Self::Emergency { action_id, .. } => Some(action_id),
            Self::Hello(_) | Self::Ack { .. } | Self::Location(_) => None,
        }
    }
}

fn validate_action_id(id: &str) -> Result<(), InvalidFrame> {
    if id.is_empty() || id.len() > MAX_ACTION_ID_LEN {
        return Err(InvalidFrame(format!(
            "`action_id` must be 1 to {MAX_ACTION_ID_LEN} bytes"
        )));
    }
    Ok(())
}

impl Location {
    /// # Errors
    /// When a coordinate or an optional field is out of range or not finite.
    pub fn validate(&self) -> Result<(), InvalidFrame> {
        validate_coordinates(self.lat, self.lon)?;
        if let Some(acc) = self.accuracy_m {
            if !acc.is_finite() || acc < 0.0 {
                return Err(InvalidFrame("location: `accuracy_m` must be ≥ 0".into()));
            }
        }
        if let Some(h) = self.heading_deg {
            if !(0.0..=360.0).contains(&h) {
                return Err(InvalidFrame(
                    "location: `heading_deg` must be within 0..=360".into(),
                ));
            }
        }
        if let Some(s) = self.speed_mps {
            if !s.is_finite() || s < 0.0 {
                return Err(InvalidFrame("location: `speed_mps` must be ≥ 0".into()));
            }
        }
        Ok(())
    }
}

/// Scheme of an enrolment link.
pub const ENROLMENT_LINK_SCHEME: &str = "dispatch-enrol";

/// The enrolment link a tablet scans instead of typing:
/// `dispatch-enrol://HOST:PORT?code=CODE&pin=SHA256HEX`, from the server's `https://HOST:PORT`
/// (a trailing slash and the scheme dropped), a one-time enrolment code and the certificate's
/// SHA-256 fingerprint. It is a secret until used, like the code itself.
pub fn enrolment_link(server_url: &str, code: &str, pin: &str) -> String {
    let authority = server_url
        .strip_prefix("https://")
        .unwrap_or(server_url)
        .trim_end_matches('/');
    format!("{ENROLMENT_LINK_SCHEME}://{authority}?code={code}&pin={pin}")
}

/// Checks a WGS84 coordinate pair.
///
/// # Errors
/// When latitude is outside −90..=90 or longitude outside −180..=180.
pub fn validate_coordinates(lat: f64, lon: f64) -> Result<(), InvalidFrame> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(InvalidFrame(format!(
            "`lat` {lat} is outside -90..=90 degrees"
        )));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(InvalidFrame(format!(
            "`lon` {lon} is outside -180..=180 degrees"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_goes_into_its_frame_and_back() {
        let actions = [
            Action::Accept { order_id: 1 },
            Action::Decline {
                order_id: 1,
                reason: "busy".into(),
                detail: None,
            },
            Action::Decline {
                order_id: 1,
                reason: "other".into(),
                detail: Some("flat tyre".into()),
            },
            Action::Status {
                status: ReportedStatus::OnScene,
                order_id: Some(1),
            },
            Action::Displayed {
                message_id: "order-1".into(),
            },
            Action::Acknowledge {
                message_id: "order-1".into(),
            },
            Action::Text {
                text: "on my way".into(),
                incident_id: None,
            },
            Action::Emergency { location: None },
        ];
        for action in actions {
            let frame = action.clone().into_frame("7-a-1".into(), Some(5));
            let text = serde_json::to_string(&frame).unwrap();
            assert!(
                text.contains(&format!(r#""type":"{}""#, action.kind())),
                "{text}"
            );
            let back = ClientFrame::parse(&text).unwrap().into_action().unwrap();
            assert_eq!(
                back,
                ActionFrame {
                    action_id: "7-a-1".into(),
                    at_ms: Some(5),
                    action
                }
            );
        }
        assert!(ClientFrame::Ack { upto: 1 }.into_action().is_err());
    }

    /// The server keeps a digest of this form per `action_id`: it must not change.
    #[test]
    fn an_actions_serde_form_is_stable() {
        let accept = serde_json::to_string(&Action::Accept { order_id: 17 }).unwrap();
        assert_eq!(accept, r#"{"action":"accept","order_id":17}"#);
    }

    #[test]
    fn hello_round_trips() {
        let f = ClientFrame::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            device_id: 7,
            token: "t".into(),
            epoch: None,
            ack_floor: 3,
            clock_ms: Some(1_795_312_345_678),
        });
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""type":"hello""#));
        assert_eq!(ClientFrame::parse(&text).unwrap(), f);
    }

    #[test]
    fn deliver_has_documented_shape() {
        let f = ServerFrame::Deliver(Delivery {
            seq: 1,
            message_id: "order-1".into(),
            queued_at_ms: 5,
            body: Message::Order(OrderMessage {
                order_id: 1,
                unit_id: 2,
                accepted: false,
                incident: IncidentBrief {
                    id: 3,
                    kind: "theft".into(),
                    priority: 1,
                    lat: 60.1,
                    lon: 24.9,
                    address: None,
                    notes: None,
                    caller: None,
                    callback: None,
                    hazards: Vec::new(),
                    narrative: Vec::new(),
                },
            }),
        });
        let v: serde_json::Value = serde_json::to_value(&f).unwrap();
        assert_eq!(v["type"], "deliver");
        assert_eq!(v["body"]["kind"], "order");
        assert_eq!(v["body"]["incident"]["priority"], 1);
        assert!(v["body"]["incident"].get("narrative").is_none());
    }

    #[test]
    fn an_incident_update_carries_the_incident_and_what_changed() {
        let text = r#"{"type":"deliver","seq":4,"message_id":"incident-3-update-9",
            "queued_at_ms":7,"body":{"kind":"incident_update","changed":["priority","narrative"],
            "incident":{"id":3,"kind":"theft","priority":0,"lat":60.1,"lon":24.9,
            "callback":"+358401234567","narrative":[{"id":1,"kind":"narrative",
            "author":"kim","at_ms":6,"text":"suspect has a knife"}]}}}"#;
        let ServerFrame::Deliver(d) = serde_json::from_str(text).unwrap() else {
            panic!("not a delivery")
        };
        let Message::IncidentUpdate(update) = d.body else {
            panic!("not an incident update")
        };
        assert_eq!(update.changed, ["priority", "narrative"]);
        assert_eq!(update.incident.callback.as_deref(), Some("+358401234567"));
        assert_eq!(
            update.incident.narrative[0].text.as_deref(),
            Some("suspect has a knife")
        );
        assert_eq!(update.incident.address, None);
        let message = Message::IncidentUpdate(update);
        let wire = serde_json::to_value(&message).unwrap();
        assert_eq!(wire["kind"], message.kind());
        assert!(Message::KINDS.contains(&message.kind()));
    }

    #[test]
    fn rejects_bad_frames_with_named_problem() {
        let e = ClientFrame::parse("{").unwrap_err();
        assert!(e.0.starts_with("malformed frame"), "{e}");
        let e = ClientFrame::parse(r#"{"type":"ack","upto":"x"}"#).unwrap_err();
        assert!(e.0.contains("invalid type"), "{e}");
        let e = ClientFrame::parse(r#"{"type":"fly"}"#).unwrap_err();
        assert!(e.0.contains("unknown variant"), "{e}");
        let e = ClientFrame::parse(r#"{"type":"location","lat":91,"lon":0,"fix_time_ms":0}"#)
            .unwrap_err();
        assert!(e.0.contains("`lat`"), "{e}");
        let e =
            ClientFrame::parse(r#"{"type":"decline","action_id":"a","order_id":1,"reason":" "}"#)
                .unwrap_err();
        assert!(e.0.contains("reason"), "{e}");
        let e = ClientFrame::parse(
            r#"{"type":"decline","action_id":"a","order_id":1,"reason":"vehicle breakdown"}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("busy, too_far, vehicle_problem, other"), "{e}");
        let e = ClientFrame::parse(
            r#"{"type":"decline","action_id":"a","order_id":1,"reason":"other"}"#,
        )
        .unwrap_err();
        assert!(e.0.contains("`detail`"), "{e}");
        let huge = format!(
            r#"{{"type":"ack","upto":1,"pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert!(ClientFrame::parse(&huge).unwrap_err().0.contains("exceeds"));
    }

    #[test]
    fn retry_hints() {
        assert!(close::is_retryable(close::GOING_AWAY));
        assert!(close::is_retryable(close::TRY_AGAIN_LATER));
        assert!(close::is_retryable(close::HEARTBEAT_TIMEOUT));
        assert!(!close::is_retryable(close::BAD_CREDENTIAL));
    }
}
