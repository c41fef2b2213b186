//! `role_spread`: a per-host cap of VMs of the same role, so one hypervisor does not carry
//! many replicas of a service that peak together. Measures the same-role VMs already on the
//! host. Parameters: `max_per_host` (default 2), `mode` = `hard` (filter out hosts at the cap,
//! and score) or `soft` (score only). Score `1 - count / max_per_host`; in `soft` mode, when a
//! candidate already holds more than the cap, the scale stretches to one past the most any
//! candidate holds (`1 - count / (most + 1)`), so a host with 4 of the role still beats one
//! with 9: a role with more replicas than hosts times the cap keeps spreading evenly instead
//! of every host over the cap scoring the same 0. Failure mode: a request with no role is
//! neither filtered nor scored.

use serde::Deserialize;

use crate::scoring::{Context, Plugin, Score};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleSpreadMode {
    Hard,
    Soft,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_max")]
    max_per_host: u32,
    #[serde(default = "default_mode")]
    mode: RoleSpreadMode,
}

fn default_max() -> u32 {
    2
}

fn default_mode() -> RoleSpreadMode {
    RoleSpreadMode::Hard
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoleSpread {
    pub max_per_host: u32,
    pub mode: RoleSpreadMode,
}

impl RoleSpread {
    pub fn from_params(p: Params) -> Result<Self, String> {
        if p.max_per_host == 0 {
            return Err("max_per_host must be at least 1".into());
        }
        Ok(RoleSpread {
            max_per_host: p.max_per_host,
            mode: p.mode,
        })
    }
}

impl Plugin for RoleSpread {
    fn name(&self) -> &'static str {
        "role_spread"
    }

    fn filter(&self, ctx: &Context, host: usize) -> Result<(), String> {
        let (Some(role), RoleSpreadMode::Hard) = (ctx.role.as_deref(), self.mode) else {
            return Ok(());
        };
        let count = ctx.role_counts()[host];
        if count >= self.max_per_host {
            return Err(format!(
                "host already runs {count} VM(s) of role {role}; the cap is {} per host",
                self.max_per_host
            ));
        }
        Ok(())
    }

    fn score(&self, ctx: &Context, host: usize) -> Score {
        if ctx.role.is_none() {
            return Score::NotApplicable;
        }
        let scale = match self.mode {
            RoleSpreadMode::Hard => self.max_per_host,
            RoleSpreadMode::Soft => self
                .max_per_host
                .max(ctx.most_role_count().saturating_add(1)),
        };
        let count = f64::from(ctx.role_counts()[host]);
        Score::Value(1.0 - (count / f64::from(scale)).min(1.0))
    }
}
