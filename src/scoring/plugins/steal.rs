//! `steal`: prefer hosts whose vCPUs will wait less for a physical CPU.
//! Measures two things. Steal: the host's CPU steal now (fresh telemetry, 0.0..1.0) blended
//! with the steal its hour-of-week profile predicts from this hour to `horizon_hours` ahead
//! (the highest hourly p95). Peak overlap: the host's predicted CPU peak over the next
//! `peak_horizon_hours` with the incoming VM on it, as peak-prediction overcommit does
//! (Google's Autopilot and Bashir et al., "Take it to the limit", EuroSys 2021): each tenant's
//! demand at each hour is its role's learned hour-of-week p95 (cores per VM), summed per hour
//! with the incoming VM's own curve, and the highest hour taken. Two VMs that peak at
//! different hours share a host; two that peak together do not. For a move (live or cold
//! migration) the tenants and the VM run and their use now is read: each host's tenant curve
//! is scaled by its busy cores now over what the curve predicts for this hour, and the VM's
//! curve by its own load now, each scale bounded to 0.25..2 (replicas busier than their role,
//! which a role's curve cannot see). A boot keeps the role-level curves. Score:
//! `(1 - overlap_weight) * (1 - steal / saturation) + overlap_weight * (1 - peak / (vCPUs *
//! peak_saturation))`.
//! Parameters: `saturation` (0.25), `max_steal` (filter on steal now, optional),
//! `horizon_hours` (4), `predict_weight` (0.5), `overlap_weight` (0.3), `peak_horizon_hours`
//! (24), `peak_saturation` (1.5: a predicted peak of 1.5 x the host's CPUs scores 0),
//! `unknown_load_per_vcpu` (0.5: what an incoming VM without a learned role is assumed to
//! demand per vCPU, at every hour).
//! Failure mode: with neither a fresh sample nor a profile, steal is unknown: neutral and the
//! answer marked degraded, never zero. With a profile but no fresh sample, the prediction
//! alone is used and the answer is marked degraded. A tenant without a learned role counts as
//! the learned roles' mean peak at every hour; with no role learned at all, there is no peak
//! prediction and the score is steal's alone.

use std::borrow::Cow;

use serde::Deserialize;

use crate::model::{hour_of_week_name, Operation, HOURS_PER_WEEK};
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
    #[serde(default = "default_peak_horizon")]
    peak_horizon_hours: u32,
    #[serde(default = "default_peak_saturation")]
    peak_saturation: f64,
    #[serde(default = "half")]
    unknown_load_per_vcpu: f64,
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

fn default_peak_horizon() -> u32 {
    24
}

fn default_peak_saturation() -> f64 {
    1.5
}

#[derive(Debug, Clone, PartialEq)]
pub struct Steal {
    pub saturation: f64,
    pub max_steal: Option<f64>,
    pub horizon_hours: u32,
    pub predict_weight: f64,
    pub overlap_weight: f64,
    pub peak_horizon_hours: u32,
    pub peak_saturation: f64,
    pub unknown_load_per_vcpu: f64,
}

/// A host's predicted CPU peak over the peak horizon, without and with the incoming VM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakFit {
    /// Busy cores at the host's predicted peak hour, its tenants only.
    pub before: f64,
    /// Busy cores at the predicted peak hour with the incoming VM.
    pub after: f64,
    /// Hours from now to the peak with the incoming VM.
    pub at: usize,
    pub cpus: f64,
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
        if !(1..=HOURS_PER_WEEK as u32).contains(&p.peak_horizon_hours) {
            return Err(format!(
                "peak_horizon_hours must be in 1..={HOURS_PER_WEEK}, got {}",
                p.peak_horizon_hours
            ));
        }
        if !(p.peak_saturation > 0.0 && p.peak_saturation.is_finite()) {
            return Err(format!(
                "peak_saturation must be a positive number, got {}",
                p.peak_saturation
            ));
        }
        Ok(Steal {
            saturation: p.saturation,
            max_steal: p.max_steal,
            horizon_hours: p.horizon_hours,
            predict_weight: fraction("predict_weight", p.predict_weight)?,
            overlap_weight: fraction("overlap_weight", p.overlap_weight)?,
            peak_horizon_hours: p.peak_horizon_hours,
            peak_saturation: p.peak_saturation,
            unknown_load_per_vcpu: fraction("unknown_load_per_vcpu", p.unknown_load_per_vcpu)?,
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

    /// The host's predicted peak over the next `peak_horizon_hours`, without and with the
    /// incoming VM: per hour, the learned demand of every tenant (by role; a tenant without a
    /// learned role at the roles' mean peak), plus the incoming VM's own. `None` when no role
    /// has been learned yet or the host's CPUs are unknown.
    pub fn peak_fit(&self, ctx: &Context, host: usize) -> Option<PeakFit> {
        let horizon = ctx.role_horizon(self.peak_horizon_hours as usize);
        let typical = horizon.typical_peak?;
        let h = &ctx.req.hosts[host];
        let cpus = h
            .vcpus_total
            .filter(|c| *c > 0.0)
            .or_else(|| ctx.fresh_facts(host).and_then(|f| f.vcpus))?;
        let index = ctx.view.role_index();
        let mut demand = vec![0.0; horizon.hours];
        let mut profiled = 0u32;
        for (role, curve) in &horizon.roles {
            let Some(&n) = index.hosts_of(role).and_then(|m| m.get(&h.host)) else {
                continue;
            };
            profiled += n;
            for (d, c) in demand.iter_mut().zip(curve) {
                *d += f64::from(n) * c;
            }
        }
        let others = f64::from(index.vms_on(&h.host).saturating_sub(profiled));
        for d in demand.iter_mut() {
            *d += others * typical;
        }
        // Borrowed on a boot; a move's curve is scaled to the VM's own reading below.
        let mut incoming: Cow<[f64]> = match ctx.role.as_deref().and_then(|r| horizon.of(r)) {
            Some(curve) => Cow::Borrowed(curve),
            None => {
                let vcpus = ctx.req.instance.flavor.vcpus.unwrap_or(0.0).max(0.0);
                Cow::Owned(vec![vcpus * self.unknown_load_per_vcpu; horizon.hours])
            }
        };
        let moving = ctx.view.vms.get(&ctx.req.instance.uuid);
        if moves_a_running_vm(ctx.req.operation) {
            let busy = ctx
                .fresh_facts(host)
                .and_then(|f| Some(f.cpu_use? * f.vcpus.unwrap_or(cpus)));
            calibrate(&mut demand, busy);
            let fresh = moving.filter(|v| ctx.now - v.observed_at <= ctx.opts.max_age_seconds);
            if let Some(load) = fresh.and_then(|v| v.load5) {
                calibrate(incoming.to_mut(), Some(load));
            }
        }
        let incoming = &*incoming;
        // A move's own VM is a tenant of its source host: it does not add to itself.
        let own = moving.and_then(|v| v.host.as_deref()) == Some(h.host.as_str());
        if own {
            for (d, c) in demand.iter_mut().zip(incoming) {
                *d = (*d - c).max(0.0);
            }
        }
        let before = demand.iter().copied().fold(0.0, f64::max);
        let (at, after) = demand
            .iter()
            .zip(incoming)
            .map(|(d, c)| d + c)
            .enumerate()
            .fold(
                (0, 0.0),
                |best, (i, v)| if v > best.1 { (i, v) } else { best },
            );
        Some(PeakFit {
            before,
            after,
            at,
            cpus,
        })
    }

    /// The peak-overlap score: 1 for an idle host, 0 at `peak_saturation` x its CPUs.
    pub fn peak_score(&self, fit: &PeakFit) -> f64 {
        1.0 - (fit.after / (fit.cpus * self.peak_saturation)).clamp(0.0, 1.0)
    }
}

/// A move's VM and the tenants of each candidate host are running, and steward reads what
/// they use now: the role-level prediction is scaled to it.
fn moves_a_running_vm(op: Operation) -> bool {
    matches!(op, Operation::LiveMigrate | Operation::Migrate)
}

/// The bounds of the scale a reading may put on a role-level prediction: a reading is one
/// noisy sample, and a role's curve is its replicas' p95.
const CALIBRATION: (f64, f64) = (0.25, 2.0);

/// Scale a predicted curve (this hour first) by what is measured now against what the curve
/// predicts for this hour: replicas busier than their role's curve (or a host whose tenants
/// are) are predicted busier at every hour, quieter ones quieter. Nothing changes without a
/// reading or with less than one core predicted now (too little to scale by).
fn calibrate(curve: &mut [f64], measured: Option<f64>) {
    let (Some(measured), Some(&now)) = (measured.filter(|m| m.is_finite()), curve.first()) else {
        return;
    };
    if now < 1.0 {
        return;
    }
    let scale = (measured.max(0.0) / now).clamp(CALIBRATION.0, CALIBRATION.1);
    for c in curve.iter_mut() {
        *c *= scale;
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
        let fit = self
            .peak_fit(ctx, host)
            .filter(|_| self.overlap_weight > 0.0);
        let score = match &fit {
            Some(fit) => {
                (1.0 - self.overlap_weight) * steal_score
                    + self.overlap_weight * self.peak_score(fit)
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
        if let Some(fit) = fit {
            why.push(format!(
                "predicted peak {:.0}% of its CPUs in the next {} h, {:.0}% with this VM (in {} h)",
                fit.before / fit.cpus * 100.0,
                self.peak_horizon_hours,
                fit.after / fit.cpus * 100.0,
                fit.at
            ));
        }
        Score::Explained(score, why.join("; "))
    }
}
