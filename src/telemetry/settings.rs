//! `[telemetry]` and `[prometheus]`: how old a sample may be, and how to reach Prometheus;
//! each validates its own keys.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::prometheus::PrometheusSettings;
use crate::settings::{resolve_in_place, ConfigProblem, Problems, Section};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// A sample older than this is unknown, never zero.
    pub max_age_seconds: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            max_age_seconds: 300.0,
        }
    }
}

impl Section for TelemetrySettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        let age = self.max_age_seconds;
        if !(age.is_finite() && age > 0.0) {
            p.add(
                "max_age_seconds",
                format!("must be a positive number of seconds, got {age}"),
            );
        }
        p.into_vec()
    }
}

impl Section for PrometheusSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if let Some(url) = &self.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.add("url", format!("{url:?} is not an http:// or https:// URL"));
            }
        }
        p.at_least("timeout_seconds", self.timeout_seconds, 0.1);
        p.at_least("interval_seconds", self.interval_seconds, 1.0);
        p.at_least("rollup_interval_hours", self.rollup_interval_hours, 0.1);
        if !(1..=8).contains(&self.history_weeks) {
            p.add(
                "history_weeks",
                format!(
                    "must be 1 to 8 (Prometheus must keep that much: --storage.tsdb.retention.time), got {}",
                    self.history_weeks
                ),
            );
        }
        if let Some(f) = &self.bearer_token_file {
            if let Err(e) = std::fs::metadata(f) {
                p.add(
                    "bearer_token_file",
                    format!("cannot read {}: {e}", f.display()),
                );
            }
        }
        p.into_vec()
    }

    fn resolve_files(&mut self, config_dir: &Path) {
        resolve_in_place(&mut self.bearer_token_file, config_dir);
    }
}
