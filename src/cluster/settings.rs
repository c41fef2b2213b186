//! `[cluster]`: where the cluster view's membership comes from and how often it is refreshed.

use serde::Deserialize;

use crate::settings::{ConfigProblem, Problems, Section};

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClusterSource {
    /// Hosts and VMs are known from pushed telemetry only.
    #[default]
    None,
    /// Hosts, AZs, VMs, roles and flavors are read from Nova's API every `refresh_seconds`.
    Nova,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    pub source: ClusterSource,
    pub refresh_seconds: f64,
    /// Nova's `[DEFAULT] default_availability_zone`: the AZ of hosts in no AZ aggregate.
    pub default_availability_zone: String,
    /// Items per page when listing servers and hypervisors.
    pub page_size: u32,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            source: ClusterSource::None,
            refresh_seconds: 60.0,
            default_availability_zone: "nova".into(),
            page_size: 1000,
        }
    }
}

impl Section for ClusterSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if !(self.refresh_seconds.is_finite() && self.refresh_seconds >= 1.0) {
            p.add(
                "refresh_seconds",
                format!("must be at least 1, got {}", self.refresh_seconds),
            );
        }
        if self.page_size == 0 {
            p.add("page_size", "must be at least 1");
        }
        if self.default_availability_zone.trim().is_empty() {
            p.add(
                "default_availability_zone",
                "must name Nova's default AZ (nova.conf [DEFAULT] default_availability_zone)",
            );
        }
        p.into_vec()
    }
}
