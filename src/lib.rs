//! Nova Steward: steal-aware, AZ-correct scheduling help beside OpenStack Nova and Placement.
//! See ARCHITECTURE.md for the map of these modules and the rules between them.

pub mod api;
pub mod cluster;
pub mod config;
pub mod model;
pub mod openstack;
pub mod scoring;
pub mod store;
pub mod telemetry;
