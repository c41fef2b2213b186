//! The scoring plugins, one per file, and the registry that builds them by name from a
//! profile's configuration. Combination and normalisation live in `scoring`, not here.

mod az_spread;
mod capacity;
mod capacity_pack;
mod capacity_spread;
mod role_spread;
mod same_az;
mod steal;

pub use az_spread::{AzSpread, WhenUnsatisfiable};
pub use capacity_pack::CapacityPack;
pub use capacity_spread::CapacitySpread;
pub use role_spread::{RoleSpread, RoleSpreadMode};
pub use same_az::SameAz;
pub use steal::Steal;

use serde::de::DeserializeOwned;

use super::Plugin;

/// Every plugin a profile may name.
/// Their order is the order filters run in, so the first reason given is the most telling.
pub const NAMES: [&str; 6] = [
    "same_az",
    "role_spread",
    "az_spread",
    "steal",
    "capacity_spread",
    "capacity_pack",
];

/// Build a plugin from its name and its parameters (the profile's table, `weight` removed).
/// The error says which parameter is wrong and what is accepted.
pub fn build(name: &str, params: serde_json::Value) -> Result<Box<dyn Plugin>, String> {
    Ok(match name {
        "same_az" => Box::new(SameAz::from_params(parse(params)?)),
        "steal" => Box::new(Steal::from_params(parse(params)?)?),
        "capacity_spread" => Box::new(CapacitySpread::from_params(parse(params)?)),
        "capacity_pack" => Box::new(CapacityPack::from_params(parse(params)?)),
        "role_spread" => Box::new(RoleSpread::from_params(parse(params)?)?),
        "az_spread" => Box::new(AzSpread::from_params(parse(params)?)?),
        other => {
            return Err(format!(
                "unknown plugin {other:?}; known plugins: {}",
                NAMES.join(", ")
            ))
        }
    })
}

fn parse<T: DeserializeOwned>(params: serde_json::Value) -> Result<T, String> {
    let params = if params.is_null() {
        serde_json::Value::Object(Default::default())
    } else {
        params
    };
    serde_json::from_value(params).map_err(|e| e.to_string())
}
