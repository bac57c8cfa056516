//! The order state machine: how a dispatch order moves from queued to a decision and completion.

use serde::{Deserialize, Serialize};

use super::Invalid;

/// State of one order sent to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Committed to the device outbox; not yet confirmed by the device.
    Queued,
    /// The device persisted it and sent its receipt.
    Delivered,
    Accepted,
    Declined,
    /// The unit reported `cleared` after accepting.
    Completed,
    Cancelled,
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderTransition {
    Receipt,
    Accept,
    Decline,
    Clear,
    Cancel,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    /// # Errors
    /// When the text is not a known state.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Ok(match s {
            "queued" => Self::Queued,
            "delivered" => Self::Delivered,
            "accepted" => Self::Accepted,
            "declined" => Self::Declined,
            "completed" => Self::Completed,
            "cancelled" => Self::Cancelled,
            _ => return Err(Invalid::field("state", format_args!("is unknown: {s:?}"))),
        })
    }

    /// Whether the officer has not decided yet.
    pub fn is_undecided(self) -> bool {
        matches!(self, Self::Queued | Self::Delivered)
    }

    /// The state after `t`, or `None` when `t` is not allowed here. A receipt on a decided order
    /// is allowed and changes nothing (acks can arrive late).
    pub fn apply(self, t: OrderTransition) -> Option<Self> {
        use OrderTransition as T;
        match (self, t) {
            (Self::Queued, T::Receipt) => Some(Self::Delivered),
            (s, T::Receipt) => Some(s),
            (s, T::Accept) if s.is_undecided() => Some(Self::Accepted),
            (s, T::Decline) if s.is_undecided() => Some(Self::Declined),
            (Self::Accepted, T::Clear) => Some(Self::Completed),
            (s, T::Cancel) if s.is_undecided() || s == Self::Accepted => Some(Self::Cancelled),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn transition() -> impl Strategy<Value = OrderTransition> {
        prop_oneof![
            Just(OrderTransition::Receipt),
            Just(OrderTransition::Accept),
            Just(OrderTransition::Decline),
            Just(OrderTransition::Clear),
            Just(OrderTransition::Cancel),
        ]
    }

    #[test]
    fn happy_path() {
        let s = OrderState::Queued;
        let s = s.apply(OrderTransition::Receipt).unwrap();
        assert_eq!(s, OrderState::Delivered);
        let s = s.apply(OrderTransition::Accept).unwrap();
        assert_eq!(s.apply(OrderTransition::Decline), None);
        assert_eq!(s.apply(OrderTransition::Clear), Some(OrderState::Completed));
    }

    proptest! {
        /// Whatever arrives, an order is decided at most once and never leaves a final state.
        #[test]
        fn decided_once(ts in proptest::collection::vec(transition(), 0..20)) {
            let mut s = OrderState::Queued;
            let mut decisions = 0;
            for t in ts {
                if let Some(next) = s.apply(t) {
                    if s.is_undecided() && matches!(next, OrderState::Accepted | OrderState::Declined) {
                        decisions += 1;
                    }
                    if matches!(s, OrderState::Declined | OrderState::Completed | OrderState::Cancelled) {
                        prop_assert_eq!(next, s);
                    }
                    s = next;
                }
            }
            prop_assert!(decisions <= 1);
        }
    }
}

/// An order as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: i64,
    pub incident_id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    pub device_id: i64,
    pub state: OrderState,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub decided_at_ms: Option<i64>,
    pub decline_reason: Option<String>,
    pub completed_at_ms: Option<i64>,
}
