//! `az_spread`: spread a role across AZs with Kubernetes topology-spread semantics.
//! Measures, per AZ (a topology domain), the VMs of the instance's role. A host in domain `d`
//! violates the constraint when `count(d) + 1 - global_min > max_skew`, where `global_min` is
//! the smallest count over eligible domains (0 when fewer than `min_domains` exist).
//! Parameters: `max_skew` (default 1), `when_unsatisfiable` = `DoNotSchedule` (filter) or
//! `ScheduleAnyway` (score only), `min_domains` (default 1). Score
//! `1 - (count(d) - global_min) / (max_skew + 1)`. Failure mode: no role, nothing to do; a host
//! with no AZ is rejected under DoNotSchedule and scores 0 otherwise (as nodes without the
//! topology key in Kubernetes).

use serde::Deserialize;

use crate::scoring::{Context, Plugin, Score};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "one")]
    max_skew: u32,
    #[serde(default = "default_when")]
    when_unsatisfiable: WhenUnsatisfiable,
    #[serde(default = "one")]
    min_domains: u32,
}

fn one() -> u32 {
    1
}

fn default_when() -> WhenUnsatisfiable {
    WhenUnsatisfiable::ScheduleAnyway
}

#[derive(Debug, Clone, PartialEq)]
pub struct AzSpread {
    pub max_skew: u32,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub min_domains: u32,
}

impl AzSpread {
    pub fn from_params(p: Params) -> Result<Self, String> {
        if p.max_skew == 0 {
            return Err("max_skew must be at least 1 (Kubernetes rejects 0)".into());
        }
        if p.min_domains == 0 {
            return Err("min_domains must be at least 1".into());
        }
        Ok(AzSpread {
            max_skew: p.max_skew,
            when_unsatisfiable: p.when_unsatisfiable,
            min_domains: p.min_domains,
        })
    }

    /// (matching VMs in the host's domain, global minimum), or None for a host with no AZ.
    fn counts(&self, ctx: &Context, host: usize) -> Option<(u32, u32)> {
        let az = ctx.host_az(host)?;
        let domains = ctx.domains();
        let count = domains.counts.get(az).copied().unwrap_or(0);
        let global_min = if (domains.counts.len() as u32) < self.min_domains {
            0
        } else {
            domains.global_min().unwrap_or(0)
        };
        Some((count, global_min))
    }
}

impl Plugin for AzSpread {
    fn name(&self) -> &'static str {
        "az_spread"
    }

    fn filter(&self, ctx: &Context, host: usize) -> Result<(), String> {
        let Some(role) = ctx.role.as_deref() else {
            return Ok(());
        };
        if self.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
            return Ok(());
        }
        match self.counts(ctx, host) {
            None => Err(format!(
                "host's AZ is unknown; az_spread of role {role} needs every host in an AZ"
            )),
            Some((count, min)) if (count + 1).saturating_sub(min) > self.max_skew => Err(format!(
                "AZ {} would hold {} VM(s) of role {role} against a minimum of {min} in another AZ (skew {} > max_skew {})",
                ctx.host_az(host).unwrap_or_default(),
                count + 1,
                (count + 1).saturating_sub(min),
                self.max_skew
            )),
            Some(_) => Ok(()),
        }
    }

    fn score(&self, ctx: &Context, host: usize) -> Score {
        if ctx.role.is_none() {
            return Score::NotApplicable;
        }
        match self.counts(ctx, host) {
            None => Score::Value(0.0),
            Some((count, min)) => {
                let excess = f64::from(count.saturating_sub(min));
                Score::Value(1.0 - (excess / f64::from(self.max_skew + 1)).min(1.0))
            }
        }
    }
}
