//! Operator roles. Ordered: a supervisor may do what an operator may, an admin what both may.

use serde::{Deserialize, Serialize};

use super::Invalid;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Call-taker / dispatcher: incidents, recommendations, assignments.
    Operator,
    /// Operator rights plus review of every incident and the figures.
    Supervisor,
    /// Everything, including users, units and devices.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }

    /// # Errors
    /// When the text is not one of the three roles.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "operator" => Ok(Self::Operator),
            "supervisor" => Ok(Self::Supervisor),
            "admin" => Ok(Self::Admin),
            _ => Err(Invalid::field(
                "role",
                format_args!("must be operator, supervisor or admin (got {s:?})"),
            )),
        }
    }

    /// Whether this role includes the rights of `required`.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy() {
        assert!(Role::Admin.allows(Role::Operator));
        assert!(Role::Supervisor.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Supervisor));
        assert!(!Role::Supervisor.allows(Role::Admin));
    }

    #[test]
    fn parse_round_trips() {
        for r in [Role::Operator, Role::Supervisor, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        assert!(Role::parse("root").is_err());
    }
}
