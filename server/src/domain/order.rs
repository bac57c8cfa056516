//! The order state machine: how a dispatch order moves from queued through delivery, display and
//! the officer's acknowledgement to a decision, and how it ends (completed, cancelled, expired).

use serde::{Deserialize, Serialize};

use super::Invalid;

/// State of one order sent to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Committed to the device outbox; not yet confirmed by the device.
    Queued,
    /// The device persisted it and sent its receipt.
    Delivered,
    /// The alert is on the officer's screen.
    Displayed,
    /// The officer confirmed having read it; the decision is still to come.
    Acknowledged,
    Accepted,
    Declined,
    /// The unit reported `cleared` after accepting.
    Completed,
    /// Withdrawn by an operator.
    Cancelled,
    /// Nobody decided in time; withdrawn by the server.
    Expired,
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderTransition {
    Receipt,
    Display,
    Acknowledge,
    Accept,
    Decline,
    Clear,
    Cancel,
    Expire,
}

impl OrderState {
    pub const ALL: [Self; 9] = [
        Self::Queued,
        Self::Delivered,
        Self::Displayed,
        Self::Acknowledged,
        Self::Accepted,
        Self::Declined,
        Self::Completed,
        Self::Cancelled,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::Displayed => "displayed",
            Self::Acknowledged => "acknowledged",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// # Errors
    /// When the text is not a known state.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| Invalid::field("state", format_args!("is unknown: {s:?}")))
    }

    /// Waiting for the device or the officer: not decided yet. (The partial index
    /// `orders_waiting` lists exactly these, in this order.)
    pub const UNDECIDED: [Self; 4] = [
        Self::Queued,
        Self::Delivered,
        Self::Displayed,
        Self::Acknowledged,
    ];

    /// Not yet acknowledged by the officer: what the acknowledgement escalation looks for.
    pub const UNACKNOWLEDGED: [Self; 3] = [Self::Queued, Self::Delivered, Self::Displayed];

    /// Holding its unit: undecided, or accepted and not yet cleared. An incident with an active
    /// order cannot be closed, and a unit is released only when it holds none.
    pub const ACTIVE: [Self; 5] = [
        Self::Queued,
        Self::Delivered,
        Self::Displayed,
        Self::Acknowledged,
        Self::Accepted,
    ];

    /// Nothing more can happen to the order.
    pub const FINAL: [Self; 4] = [
        Self::Declined,
        Self::Completed,
        Self::Cancelled,
        Self::Expired,
    ];

    /// Whether the officer has not decided yet.
    pub fn is_undecided(self) -> bool {
        Self::UNDECIDED.contains(&self)
    }

    /// Whether the order holds its unit.
    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }

    /// Whether nothing more can happen to the order.
    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// The SQL condition "`column` holds one of `states`":
    /// `(state = 'queued' OR state = 'delivered')`. Written as comparisons, not `IN (…)`:
    /// SQLite builds a temporary b-tree for an `IN` list of more than two constants each time a
    /// statement runs, and the condition of a partial index or a CHECK constraint runs on every
    /// write of the row (the migrations write these conditions in exactly this form).
    pub fn sql_in(column: &str, states: &[Self]) -> String {
        let terms: Vec<String> = states
            .iter()
            .map(|s| format!("{column} = '{}'", s.as_str()))
            .collect();
        format!("({})", terms.join(" OR "))
    }

    /// Whether an order in this state has passed the device step `step` (`Delivered`,
    /// `Displayed` or `Acknowledged`): each later step implies the earlier ones, and a decision
    /// implies all of them (an order accepted straight away was also delivered, displayed and
    /// acknowledged at that moment).
    pub fn implies(self, step: Self) -> bool {
        match (self, self.progress(), step.progress()) {
            (Self::Accepted | Self::Declined, _, Some(_)) => true,
            (_, Some(now), Some(wanted)) => now >= wanted,
            _ => false,
        }
    }

    /// How far an undecided order got on the device: 0 queued … 3 acknowledged.
    fn progress(self) -> Option<u8> {
        match self {
            Self::Queued => Some(0),
            Self::Delivered => Some(1),
            Self::Displayed => Some(2),
            Self::Acknowledged => Some(3),
            _ => None,
        }
    }

    /// The state after `t`, or `None` when `t` is not allowed here.
    ///
    /// Receipts, displays and acknowledgements only move an undecided order forward: one that
    /// arrives late (after a later step or a decision) is allowed and changes nothing, because the
    /// device sends them in order but an operator may have acted meanwhile.
    pub fn apply(self, t: OrderTransition) -> Option<Self> {
        use OrderTransition as T;
        let step = |target: Self| {
            Some(match (self.progress(), target.progress()) {
                (Some(now), Some(next)) if next > now => target,
                _ => self,
            })
        };
        match (self, t) {
            (_, T::Receipt) => step(Self::Delivered),
            (_, T::Display) => step(Self::Displayed),
            (_, T::Acknowledge) => step(Self::Acknowledged),
            (s, T::Accept) if s.is_undecided() => Some(Self::Accepted),
            (s, T::Decline) if s.is_undecided() => Some(Self::Declined),
            (Self::Accepted, T::Clear) => Some(Self::Completed),
            (s, T::Cancel) if s.is_active() => Some(Self::Cancelled),
            (s, T::Expire) if s.is_undecided() => Some(Self::Expired),
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
            Just(OrderTransition::Display),
            Just(OrderTransition::Acknowledge),
            Just(OrderTransition::Accept),
            Just(OrderTransition::Decline),
            Just(OrderTransition::Clear),
            Just(OrderTransition::Cancel),
            Just(OrderTransition::Expire),
        ]
    }

    #[test]
    fn happy_path() {
        use OrderTransition as T;
        let mut s = OrderState::Queued;
        for (t, expected) in [
            (T::Receipt, OrderState::Delivered),
            (T::Display, OrderState::Displayed),
            (T::Acknowledge, OrderState::Acknowledged),
            (T::Accept, OrderState::Accepted),
        ] {
            s = s.apply(t).unwrap();
            assert_eq!(s, expected);
        }
        assert_eq!(s.apply(T::Decline), None);
        assert_eq!(s.apply(T::Expire), None);
        assert_eq!(s.apply(T::Receipt), Some(OrderState::Accepted));
        assert_eq!(s.apply(T::Clear), Some(OrderState::Completed));
    }

    #[test]
    fn late_device_steps_never_move_back() {
        use OrderTransition as T;
        let s = OrderState::Acknowledged;
        assert_eq!(s.apply(T::Receipt), Some(OrderState::Acknowledged));
        assert_eq!(s.apply(T::Display), Some(OrderState::Acknowledged));
        // A device may skip a step (display implies the receipt it raced with).
        assert_eq!(
            OrderState::Queued.apply(T::Display),
            Some(OrderState::Displayed)
        );
        assert_eq!(
            OrderState::Expired.apply(T::Acknowledge),
            Some(OrderState::Expired)
        );
    }

    /// The named sets agree with the state machine: undecided states are exactly those a
    /// decision can leave, active ones those a cancel can leave, final ones those nothing leaves.
    #[test]
    fn state_sets_follow_the_machine() {
        use OrderTransition as T;
        for s in OrderState::ALL {
            let decidable = s.apply(T::Accept).is_some() && s.apply(T::Decline).is_some();
            assert_eq!(OrderState::UNDECIDED.contains(&s), decidable, "{s:?}");
            assert_eq!(
                OrderState::ACTIVE.contains(&s),
                s.apply(T::Cancel).is_some(),
                "{s:?}"
            );
            let stuck = [T::Accept, T::Decline, T::Clear, T::Cancel, T::Expire]
                .into_iter()
                .all(|t| s.apply(t).is_none());
            assert_eq!(OrderState::FINAL.contains(&s), stuck, "{s:?}");
            assert_eq!(
                OrderState::UNACKNOWLEDGED.contains(&s),
                s.is_undecided() && s.apply(T::Acknowledge) != Some(s),
                "{s:?}"
            );
        }
        assert_eq!(
            OrderState::sql_in("o.state", &OrderState::UNACKNOWLEDGED),
            "(o.state = 'queued' OR o.state = 'delivered' OR o.state = 'displayed')"
        );
    }

    #[test]
    fn decisions_imply_every_device_step() {
        use OrderState as S;
        assert!(S::Accepted.implies(S::Delivered) && S::Declined.implies(S::Acknowledged));
        assert!(S::Displayed.implies(S::Delivered) && !S::Displayed.implies(S::Acknowledged));
        assert!(!S::Cancelled.implies(S::Delivered) && !S::Queued.implies(S::Delivered));
    }

    #[test]
    fn names_round_trip() {
        for s in OrderState::ALL {
            assert_eq!(OrderState::parse(s.as_str()).unwrap(), s);
        }
        assert!(OrderState::parse("lost").is_err());
    }

    /// Models what the store keeps beside the state: whether the order is assigned (its unit is
    /// held for it) and how many acceptances were recorded.
    #[derive(Debug, Default)]
    struct Record {
        acknowledged: bool,
        acceptances: u32,
    }

    proptest! {
        /// Whatever arrives, an order is decided at most once, never leaves a final state, is
        /// never both acknowledged and unassigned, and an accepted order has exactly one
        /// acceptance.
        #[test]
        fn decided_once(ts in proptest::collection::vec(transition(), 0..30)) {
            let mut s = OrderState::Queued;
            let mut decisions = 0;
            let mut record = Record::default();
            for t in ts {
                if let Some(next) = s.apply(t) {
                    if s.is_undecided() && matches!(next, OrderState::Accepted | OrderState::Declined) {
                        decisions += 1;
                    }
                    if next == OrderState::Accepted && s != OrderState::Accepted {
                        record.acceptances += 1;
                    }
                    if next == OrderState::Acknowledged {
                        record.acknowledged = true;
                    }
                    if s.is_final() {
                        prop_assert_eq!(next, s);
                    }
                    s = next;
                }
                // Assigned = the order still holds its unit.
                let assigned = s.is_undecided() || s == OrderState::Accepted;
                prop_assert!(s != OrderState::Acknowledged || assigned);
                if s == OrderState::Accepted {
                    prop_assert_eq!(record.acceptances, 1);
                }
            }
            prop_assert!(decisions <= 1);
        }
    }
}

/// An order as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: i64,
    pub incident_id: i64,
    pub unit_id: i64,
    pub call_sign: String,
    pub device_id: i64,
    pub state: OrderState,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub displayed_at_ms: Option<i64>,
    pub acknowledged_at_ms: Option<i64>,
    pub decided_at_ms: Option<i64>,
    /// A decline's reason code (`busy`, `too_far`, `vehicle_problem`, `other`) and, for
    /// `other`, the officer's words.
    pub decline_reason: Option<String>,
    pub decline_detail: Option<String>,
    pub completed_at_ms: Option<i64>,
    /// When the order was cancelled or expired, and why.
    pub ended_at_ms: Option<i64>,
    pub end_reason: Option<String>,
    pub receipt_escalated_at_ms: Option<i64>,
    pub ack_escalated_at_ms: Option<i64>,
}
