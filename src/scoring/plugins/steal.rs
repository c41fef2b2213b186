//! `steal`: prefer hosts whose vCPUs wait less for a physical CPU.
//! Measures the host's CPU steal fraction (pushed or scraped telemetry, 0.0..1.0): score
//! `1 - steal / saturation`, so `saturation` and above score 0. Parameters: `saturation`
//! (default 0.25), `max_steal` (optional: hosts above it are filtered out). Failure mode:
//! no fresh sample means unknown, scored neutral and the answer marked degraded, never zero.

use serde::Deserialize;

use crate::scoring::{Context, Plugin, Score};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_saturation")]
    saturation: f64,
    #[serde(default)]
    max_steal: Option<f64>,
}

fn default_saturation() -> f64 {
    0.25
}

#[derive(Debug, Clone, PartialEq)]
pub struct Steal {
    pub saturation: f64,
    pub max_steal: Option<f64>,
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
            if !(0.0..=1.0).contains(&m) {
                return Err(format!("max_steal must be in [0, 1], got {m}"));
            }
        }
        Ok(Steal {
            saturation: p.saturation,
            max_steal: p.max_steal,
        })
    }

    fn steal(&self, ctx: &Context, host: usize) -> Option<f64> {
        ctx.fresh_facts(host).and_then(|f| f.steal)
    }
}

impl Plugin for Steal {
    fn name(&self) -> &'static str {
        "steal"
    }

    fn filter(&self, ctx: &Context, host: usize) -> Result<(), String> {
        match (self.max_steal, self.steal(ctx, host)) {
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
        match self.steal(ctx, host) {
            Some(s) => Score::Value(1.0 - (s / self.saturation).clamp(0.0, 1.0)),
            None => Score::Unknown("no fresh steal data".into()),
        }
    }
}
