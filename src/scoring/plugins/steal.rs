//! `steal`: prefer hosts whose vCPUs will wait less for a physical CPU.
//! Measures three things: the host's CPU steal now (fresh telemetry, 0.0..1.0); the steal its
//! hour-of-week profile predicts from this hour to `horizon_hours` ahead (the highest hourly
//! p95); and,
//! for a request with a role, how busy the host's other VMs are during the hours the incoming
//! role is busy (their roles' demand profiles against the host's vCPUs). Score:
//! `(1 - overlap_weight) * (1 - steal / saturation) + overlap_weight * (1 - co-tenant use)`,
//! where `steal` blends now and predicted by `predict_weight`.
//! Parameters: `saturation` (0.25), `max_steal` (filter on steal now, optional),
//! `horizon_hours` (4), `predict_weight` (0.5), `overlap_weight` (0.3).
//! Failure mode: with neither a fresh sample nor a profile, steal is unknown: neutral and the
//! answer marked degraded, never zero. With a profile but no fresh sample, the prediction
//! alone is used and the answer is marked degraded.

use serde::Deserialize;

use crate::model::{hour_of_week_name, HOURS_PER_WEEK};
use crate::scoring::{Context, Plugin, Score};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_saturation")]
    saturation: f64,
    #[serde(default)]
    max_steal: Option<f64>,
    #[serde(default = "default_horizon")]
    horizon_hours: u32,
    #[serde(default = "half")]
    predict_weight: f64,
    #[serde(default = "default_overlap")]
    overlap_weight: f64,
}

fn default_saturation() -> f64 {
    0.25
}

fn default_horizon() -> u32 {
    4
}

fn half() -> f64 {
    0.5
}

fn default_overlap() -> f64 {
    0.3
}

#[derive(Debug, Clone, PartialEq)]
pub struct Steal {
    pub saturation: f64,
    pub max_steal: Option<f64>,
    pub horizon_hours: u32,
    pub predict_weight: f64,
    pub overlap_weight: f64,
}

fn fraction(name: &str, v: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{name} must be in [0, 1], got {v}"))
    }
}

impl Steal {
    pub fn from_params(p: Params) -> Result<Self, String> {
        if !(p.saturation > 0.0 && p.saturation <= 1.0) {
            return Err(format!(
                "saturation must be in (0, 1], got {}",
                p.saturation
            ));
        }
        if let Some(m) = p.max_steal {
            fraction("max_steal", m)?;
        }
        if p.horizon_hours as usize > HOURS_PER_WEEK {
            return Err(format!(
                "horizon_hours must be at most {HOURS_PER_WEEK}, got {}",
                p.horizon_hours
            ));
        }
        Ok(Steal {
            saturation: p.saturation,
            max_steal: p.max_steal,
            horizon_hours: p.horizon_hours,
            predict_weight: fraction("predict_weight", p.predict_weight)?,
            overlap_weight: fraction("overlap_weight", p.overlap_weight)?,
        })
    }

    fn steal_now(&self, ctx: &Context, host: usize) -> Option<f64> {
        ctx.fresh_facts(host).and_then(|f| f.steal)
    }

    /// The highest predicted steal from this hour to `horizon_hours` ahead, and its hour.
    fn predicted(&self, ctx: &Context, host: usize) -> Option<(f64, usize)> {
        let profile = ctx.view.weekly.host_steal.get(&ctx.req.hosts[host].host)?;
        let start = ctx.hour_of_week();
        (0..=self.horizon_hours as usize)
            .map(|ahead| (start + ahead) % HOURS_PER_WEEK)
            .filter_map(|h| profile.at(h).map(|v| (v, h)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    /// Share of the host's vCPUs its other VMs keep busy while the incoming role is busy.
    fn co_tenant_use(&self, ctx: &Context, host: usize) -> Option<f64> {
        let per_role = ctx.co_tenant_demand()?;
        let h = &ctx.req.hosts[host];
        let cpus = h
            .vcpus_total
            .filter(|c| *c > 0.0)
            .or_else(|| ctx.fresh_facts(host).and_then(|f| f.vcpus))?;
        let index = ctx.view.role_index();
        let busy: f64 = per_role
            .iter()
            .filter_map(|(role, per_vm)| {
                let n = index.hosts_of(role)?.get(&h.host)?;
                Some(f64::from(*n) * per_vm)
            })
            .sum();
        Some((busy / cpus).clamp(0.0, 1.0))
    }
}

impl Plugin for Steal {
    fn name(&self) -> &'static str {
        "steal"
    }

    fn filter(&self, ctx: &Context, host: usize) -> Result<(), String> {
        match (self.max_steal, self.steal_now(ctx, host)) {
            (Some(max), Some(s)) if s > max => Err(format!(
                "CPU steal {:.1}% is above the profile's max_steal {:.1}%",
                s * 100.0,
                max * 100.0
            )),
            _ => Ok(()),
        }
    }

    fn score(&self, ctx: &Context, host: usize) -> Score {
        if ctx.req.hosts[host].is_baremetal() {
            return Score::NotApplicable;
        }
        let now = self.steal_now(ctx, host);
        let predicted = self.predicted(ctx, host);
        let steal = match (now, predicted) {
            (None, None) => return Score::Unknown("no fresh steal data".into()),
            (Some(n), None) => n,
            (Some(n), Some((p, _))) => (1.0 - self.predict_weight) * n + self.predict_weight * p,
            (None, Some((p, _))) => {
                ctx.note_degraded(
                    "steal: no fresh steal data for some hosts; their weekly profile was used",
                );
                p
            }
        };
        let steal_score = 1.0 - (steal / self.saturation).clamp(0.0, 1.0);
        let used = self
            .co_tenant_use(ctx, host)
            .filter(|_| self.overlap_weight > 0.0);
        let score = match used {
            Some(used) => {
                (1.0 - self.overlap_weight) * steal_score + self.overlap_weight * (1.0 - used)
            }
            None => steal_score,
        };
        if !ctx.explain {
            return Score::Value(score);
        }
        let mut why = Vec::new();
        match now {
            Some(n) => why.push(format!("steal now {:.1}%", n * 100.0)),
            None => why.push("no fresh steal data".into()),
        }
        if let Some((p, at)) = predicted {
            why.push(format!(
                "predicted up to {:.1}% in the next {} h (at {})",
                p * 100.0,
                self.horizon_hours,
                hour_of_week_name(at)
            ));
        }
        if let Some(used) = used {
            why.push(format!(
                "other VMs use {:.0}% of its CPUs while {} is busy",
                used * 100.0,
                ctx.role.as_deref().unwrap_or("this role")
            ));
        }
        Score::Explained(score, why.join("; "))
    }
}
