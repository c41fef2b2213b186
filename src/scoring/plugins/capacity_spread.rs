//! `capacity_spread`: prefer the emptiest host (Nova's RAM weigher, vCPUs included).
//! Measures the free share of vCPU and RAM left after the instance lands (0..1). No
//! parameters. Failure mode: a host with no reported capacity is not scored (neutral).

use serde::Deserialize;

use super::capacity::free_share_after;
use crate::scoring::{Context, Plugin, Score};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySpread;

impl CapacitySpread {
    pub fn from_params(_: Params) -> Self {
        CapacitySpread
    }
}

impl Plugin for CapacitySpread {
    fn name(&self) -> &'static str {
        "capacity_spread"
    }

    fn score(&self, ctx: &Context, host: usize) -> Score {
        match free_share_after(&ctx.req.hosts[host], &ctx.req.instance.flavor) {
            Some(free) => Score::Value(free),
            None => Score::NotApplicable,
        }
    }
}
