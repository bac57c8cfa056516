//! Why an incident needs an operator now: the reasons the attention review raises, each with
//! its severity (a severe reason sounds the console's alarm until acknowledged; a notice only
//! orders the queue and counts in the header).

use serde::Serialize;

/// One reason for attention. The names are the `reason` of the `attention` table, of the
/// `attention_raised` and `attention_resolved` events and of `GET /api/attention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The incident's last order was declined, expired or cancelled and no other order holds
    /// a unit for it.
    OrderUnreplaced,
    /// No order was ever made for the incident, past its priority's dispatch target.
    DispatchOverdue,
    /// A unit on scene sent nothing past the welfare-check timer (officer safety).
    WelfareCheck,
    /// Every unit cleared but the incident is still open: close it or send another.
    AllCleared,
    /// A text from a unit that no operator has read.
    UnreadText,
}

/// How loudly the console raises a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AttentionSeverity)]
pub enum Severity {
    /// Banner and tone until an operator acknowledges it.
    Severe,
    /// First in the queue and counted in the header, without the alarm.
    Notice,
}

impl Reason {
    pub const ALL: [Self; 5] = [
        Self::OrderUnreplaced,
        Self::DispatchOverdue,
        Self::WelfareCheck,
        Self::AllCleared,
        Self::UnreadText,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderUnreplaced => "order_unreplaced",
            Self::DispatchOverdue => "dispatch_overdue",
            Self::WelfareCheck => "welfare_check",
            Self::AllCleared => "all_cleared",
            Self::UnreadText => "unread_text",
        }
    }

    /// The reason named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::OrderUnreplaced | Self::DispatchOverdue | Self::WelfareCheck => Severity::Severe,
            Self::AllCleared | Self::UnreadText => Severity::Notice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_parses_back_from_its_name() {
        for reason in Reason::ALL {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(
                serde_json::to_value(reason).unwrap(),
                serde_json::json!(reason.as_str())
            );
        }
        assert_eq!(Reason::parse("nothing"), None);
    }

    #[test]
    fn the_migration_allows_exactly_these_reasons() {
        let migration = include_str!("../../../migrations/sqlite/0004_attention.sql");
        let check = Reason::ALL
            .iter()
            .map(|r| format!("'{}'", r.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let normalised: String = migration.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            normalised.contains(&format!("reason IN ({check})")),
            "{check}"
        );
    }
}
