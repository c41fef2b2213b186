//! `capacity_pack`: prefer the fullest host that still fits, to keep whole hosts free
//! (batch work). Measures the used share of vCPU and RAM after the instance lands (0..1).
//! No parameters. Failure mode: a host with no reported capacity is not scored (neutral).

use serde::Deserialize;

use super::capacity::free_share_after;
use crate::scoring::{Context, Plugin, Score};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

#[derive(Debug, Clone, PartialEq)]
pub struct CapacityPack;

impl CapacityPack {
    pub fn from_params(_: Params) -> Self {
        CapacityPack
    }
}

impl Plugin for CapacityPack {
    fn name(&self) -> &'static str {
        "capacity_pack"
    }

    fn score(&self, ctx: &Context, host: usize) -> Score {
        match free_share_after(&ctx.req.hosts[host], &ctx.req.instance.flavor) {
            Some(free) => Score::Value(1.0 - free),
            None => Score::NotApplicable,
        }
    }
}
