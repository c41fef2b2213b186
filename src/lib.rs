//! Nova Steward: steal-aware, AZ-correct scheduling help beside OpenStack Nova and Placement.
//! See ARCHITECTURE.md for the map of these modules and the rules between them.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod jobs;
pub mod lane;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod novadb;
pub mod openstack;
pub mod peerclock;
pub mod rebalance;
pub mod recover;
pub mod repair;
pub mod scoring;
pub mod serve;
pub mod settings;
pub mod simulate;
pub mod store;
pub mod telemetry;

/// Wall-clock unix seconds: read by the adapters and handed to the pure core as an input.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
