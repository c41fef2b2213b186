//! The scoring core: profiles of plugins that filter and weigh candidate hosts.
//! Pure: no I/O, no clock reads (time is an input), no locks; the hot path of the Nova callout.

mod context;
pub mod plugins;
mod profile;
pub mod settings;

pub use context::{resolve_role, Context, Options, RoleHorizon};
pub use profile::{
    builtin_profiles, Profile, ProfileError, ProfileSet, ProfileSpec, WeightedPlugin,
    BUILTIN_PROFILES_TOML,
};

use std::collections::BTreeMap;

use crate::model::{ClusterView, SchedulingRequest};

/// What a plugin says of one host's merit, on an absolute 0..1 scale (1 is best).
#[derive(Debug, Clone, PartialEq)]
pub enum Score {
    Value(f64),
    /// A value with the figures behind it, shown when a weigh answer is explained.
    Explained(f64, String),
    /// The plugin has nothing to say for this host (e.g. steal of a bare-metal node).
    NotApplicable,
    /// The plugin needs data it does not have: neutral, and the answer is marked degraded.
    Unknown(String),
}

/// The neutral score given for `NotApplicable` and `Unknown`.
pub const NEUTRAL: f64 = 0.5;

/// One scheduling concern behind one narrow interface (kube-scheduler's Filter + Score).
pub trait Plugin: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    /// `Err(reason)` excludes the host. Most plugins only score.
    fn filter(&self, _ctx: &Context, _host: usize) -> Result<(), String> {
        Ok(())
    }

    fn score(&self, _ctx: &Context, _host: usize) -> Score {
        Score::NotApplicable
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub plugin: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FilterOutcome {
    pub role: Option<String>,
    pub degraded_reasons: Vec<String>,
    /// One entry per request host, in request order: `None` = allowed.
    pub rejections: Vec<Option<Rejection>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginPart {
    pub plugin: &'static str,
    pub score: f64,
    pub weight: f64,
    /// Why the score is neutral, when it is.
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeighOutcome {
    pub role: Option<String>,
    pub degraded_reasons: Vec<String>,
    /// One weight per request host, in request order; higher is better.
    pub weights: Vec<f64>,
    /// Per host, the parts that make its weight (only when asked to explain).
    pub explain: Option<Vec<Vec<PluginPart>>>,
}

/// Which hosts may take the instance, and why the others may not.
pub fn filter(
    req: &SchedulingRequest,
    profile: &Profile,
    view: &ClusterView,
    opts: &Options,
    now: f64,
) -> FilterOutcome {
    let ctx = Context::new(req, view, opts, now);
    let rejections = rejections(&ctx, profile);
    FilterOutcome {
        role: ctx.role.clone(),
        degraded_reasons: ctx.into_degraded_reasons(),
        rejections,
    }
}

/// Filter and weigh in one pass over one context (the shim's single round trip): the weights
/// are those `weigh` would give, for every host, allowed or not.
pub fn filter_and_weigh(
    req: &SchedulingRequest,
    profile: &Profile,
    view: &ClusterView,
    opts: &Options,
    now: f64,
) -> (FilterOutcome, Vec<f64>) {
    let ctx = Context::new(req, view, opts, now);
    let rejections = rejections(&ctx, profile);
    let (weights, _, unknown) = weights(&ctx, profile);
    let role = ctx.role.clone();
    let mut degraded_reasons = ctx.into_degraded_reasons();
    degraded_reasons.extend(unknown_reasons(unknown, req.hosts.len()));
    let outcome = FilterOutcome {
        role,
        degraded_reasons,
        rejections,
    };
    (outcome, weights)
}

fn rejections(ctx: &Context, profile: &Profile) -> Vec<Option<Rejection>> {
    (0..ctx.req.hosts.len())
        .map(|i| {
            profile.plugins.iter().find_map(|wp| {
                wp.plugin.filter(ctx, i).err().map(|reason| Rejection {
                    plugin: wp.plugin.name(),
                    reason,
                })
            })
        })
        .collect()
}

/// Raw weights: the weighted sum of plugin scores. Nova normalises them afterwards.
pub fn weigh(
    req: &SchedulingRequest,
    profile: &Profile,
    view: &ClusterView,
    opts: &Options,
    now: f64,
    explain: bool,
) -> WeighOutcome {
    let mut ctx = Context::new(req, view, opts, now);
    ctx.explain = explain;
    let (weights, parts_all, unknown) = weights(&ctx, profile);
    let role = ctx.role.clone();
    let mut degraded_reasons = ctx.into_degraded_reasons();
    degraded_reasons.extend(unknown_reasons(unknown, req.hosts.len()));
    WeighOutcome {
        role,
        degraded_reasons,
        weights,
        explain: parts_all,
    }
}

/// plugin -> (hosts it could not score, why)
type Unknown = BTreeMap<&'static str, (usize, String)>;

/// The weighted sum of plugin scores per host: the one place scores are combined.
fn weights(ctx: &Context, profile: &Profile) -> (Vec<f64>, Option<Vec<Vec<PluginPart>>>, Unknown) {
    let explain = ctx.explain;
    let n = ctx.req.hosts.len();
    let mut unknown = Unknown::new();
    let mut weights = Vec::with_capacity(n);
    let mut parts_all = explain.then(|| Vec::with_capacity(n));
    for i in 0..n {
        let mut total = 0.0;
        let mut parts = Vec::new();
        for wp in &profile.plugins {
            if wp.weight == 0.0 && !explain {
                continue;
            }
            let (score, note) = match wp.plugin.score(ctx, i) {
                Score::Value(v) if v.is_finite() => (v.clamp(0.0, 1.0), None),
                Score::Explained(v, why) if v.is_finite() => (v.clamp(0.0, 1.0), Some(why)),
                // A constant for every host: it cannot change the order, so it is not shown.
                Score::Value(_) | Score::Explained(..) | Score::NotApplicable => {
                    total += wp.weight * NEUTRAL;
                    continue;
                }
                Score::Unknown(why) => {
                    unknown
                        .entry(wp.plugin.name())
                        .or_insert((0, why.clone()))
                        .0 += 1;
                    (NEUTRAL, Some(why))
                }
            };
            total += wp.weight * score;
            if explain {
                parts.push(PluginPart {
                    plugin: wp.plugin.name(),
                    score,
                    weight: wp.weight,
                    note,
                });
            }
        }
        weights.push(total);
        if let Some(all) = parts_all.as_mut() {
            all.push(parts);
        }
    }
    (weights, parts_all, unknown)
}

fn unknown_reasons(unknown: Unknown, n: usize) -> impl Iterator<Item = String> {
    unknown
        .into_iter()
        .map(move |(plugin, (count, why))| format!("{plugin}: {why} for {count} of {n} hosts"))
}
