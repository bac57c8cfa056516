//! Response plans: for an incident kind (and optionally some priorities), how many units with
//! which capabilities go. The first matching plan wins; without one, one unit of any kind.

use serde::Deserialize;

use super::{code, Capabilities, Invalid};

/// One rule of the agency's response plan, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsePlan {
    /// Incident kind this rule is for.
    pub kind: String,
    /// Priorities it applies to; all when absent.
    #[serde(default)]
    pub priorities: Option<Vec<u8>>,
    /// How many units to send.
    #[serde(default = "one")]
    pub units: u32,
    /// Capabilities every unit sent must have.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

fn one() -> u32 {
    1
}

/// What an incident needs, resolved from the plans.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PlanNeed {
    pub units: u32,
    pub capabilities: Vec<String>,
}

impl ResponsePlan {
    /// # Errors
    /// When the kind or a capability is malformed, a priority is above 4, or `units` is 0 or
    /// more than 20.
    pub fn validate(&self) -> Result<(), Invalid> {
        code("response_plans.kind", &self.kind)?;
        Capabilities::parse("response_plans.capabilities", &self.capabilities)?;
        if self
            .priorities
            .as_ref()
            .is_some_and(|p| p.iter().any(|p| *p > 4))
        {
            return Err(Invalid::field(
                "response_plans.priorities",
                "must be 0 to 4",
            ));
        }
        if !(1..=20).contains(&self.units) {
            return Err(Invalid::field("response_plans.units", "must be 1 to 20"));
        }
        Ok(())
    }

    fn matches(&self, kind: &str, priority: u8) -> bool {
        self.kind == kind
            && self
                .priorities
                .as_ref()
                .is_none_or(|p| p.contains(&priority))
    }
}

/// The need of an incident of `kind` and `priority` under `plans`.
pub fn need_for(plans: &[ResponsePlan], kind: &str, priority: u8) -> PlanNeed {
    plans.iter().find(|p| p.matches(kind, priority)).map_or(
        PlanNeed {
            units: 1,
            capabilities: Vec::new(),
        },
        |p| PlanNeed {
            units: p.units,
            capabilities: p.capabilities.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: &str, priorities: Option<Vec<u8>>, units: u32, caps: &[&str]) -> ResponsePlan {
        ResponsePlan {
            kind: kind.into(),
            priorities,
            units,
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn first_match_wins_and_default_is_one_unit() {
        let plans = [
            plan("assault", Some(vec![0, 1]), 2, &["patrol"]),
            plan("assault", None, 1, &["patrol"]),
        ];
        assert_eq!(need_for(&plans, "assault", 0).units, 2);
        assert_eq!(need_for(&plans, "assault", 3).units, 1);
        assert_eq!(
            need_for(&plans, "theft", 0),
            PlanNeed {
                units: 1,
                capabilities: vec![]
            }
        );
    }

    #[test]
    fn validation_names_the_field() {
        assert!(plan("assault", Some(vec![5]), 1, &[])
            .validate()
            .unwrap_err()
            .0
            .contains("priorities"));
        assert!(plan("assault", None, 0, &[])
            .validate()
            .unwrap_err()
            .0
            .contains("units"));
        assert!(plan("Assault", None, 1, &[]).validate().is_err());
    }
}
