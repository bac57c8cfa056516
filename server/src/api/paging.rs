//! The `?limit=` query parameter shared by list endpoints.

use serde::Deserialize;

use crate::domain::Invalid;

/// `?limit=N`, optional.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// How many to list (each route has its own default and maximum).
    #[serde(default)]
    limit: Option<u32>,
}

impl LimitQuery {
    /// The requested limit, or `default`.
    ///
    /// # Errors
    /// When the limit is outside 1 to `max`.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, Invalid> {
        let limit = self.limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(Invalid::field("limit", format_args!("must be 1 to {max}")));
        }
        Ok(limit)
    }
}
