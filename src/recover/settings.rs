//! `[recovery]`: host-failure recovery's settings (detection thresholds, guards, cool-downs,
//! budgets, priority, the fencing hook and the optional witnesses) and their validation.
//! Imports no recovery code, so `config` may read it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rebalance::settings::Mode;
use crate::settings::{ConfigProblem, Section};

/// `[recovery.priority]`: the order VMs of a dead host are evacuated in.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrioritySettings {
    /// A server metadata key holding a number: higher goes first.
    pub metadata_key: Option<String>,
    /// Roles (`[roles] metadata_key`) in the order they go; unlisted roles after.
    pub roles: Vec<String>,
    /// Flavor names in the order they go; unlisted flavors after.
    pub flavors: Vec<String>,
}

/// `[recovery.fence.exec]`: a command (argv templates, no shell) that powers the host off
/// (IPMI, Redfish, a switch port) and exits 0 only once it is off; `rejoin` runs on release.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FenceExecSettings {
    pub fence: Vec<String>,
    pub rejoin: Vec<String>,
    pub timeout_seconds: f64,
}

impl Default for FenceExecSettings {
    fn default() -> Self {
        FenceExecSettings {
            fence: Vec::new(),
            rejoin: Vec::new(),
            timeout_seconds: 120.0,
        }
    }
}

/// `[recovery.fence.http]`: one request that fences (2xx = fenced), one on release.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FenceHttpSettings {
    pub method: String,
    pub fence_url: String,
    pub rejoin_url: String,
    pub body: String,
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: f64,
}

impl Default for FenceHttpSettings {
    fn default() -> Self {
        FenceHttpSettings {
            method: "POST".into(),
            fence_url: String::new(),
            rejoin_url: String::new(),
            body: String::new(),
            headers: BTreeMap::new(),
            timeout_seconds: 120.0,
        }
    }
}

/// `[recovery.fence]`: exactly one of `exec` or `http` for any mode but dry-run.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FenceSettings {
    pub exec: Option<FenceExecSettings>,
    pub http: Option<FenceHttpSettings>,
}

/// `[recovery.witnesses.consul]`: the node's `serfHealth` check
/// (`GET {url}/v1/health/node/{host}`): critical confirms, passing vetoes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsulWitnessSettings {
    /// A Consul agent or server, e.g. `http://127.0.0.1:8500`.
    pub url: String,
    /// The Consul node name of a host (template: `{host}`).
    pub node: String,
    pub check_id: String,
    pub token_file: Option<PathBuf>,
    pub timeout_seconds: f64,
}

impl Default for ConsulWitnessSettings {
    fn default() -> Self {
        ConsulWitnessSettings {
            url: String::new(),
            node: "{host}".into(),
            check_id: "serfHealth".into(),
            token_file: None,
            timeout_seconds: 5.0,
        }
    }
}

/// `[recovery.witnesses.bmc]`: the BMC's power state through an HTTP GET (Redfish's
/// `/redfish/v1/Systems/<id>` by default shape): a value in `off_values` confirms.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BmcWitnessSettings {
    /// URL template (`{host}`).
    pub url: String,
    /// JSON pointer to the power state in the answer.
    pub pointer: String,
    pub off_values: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: f64,
}

impl Default for BmcWitnessSettings {
    fn default() -> Self {
        BmcWitnessSettings {
            url: String::new(),
            pointer: "/PowerState".into(),
            off_values: vec!["Off".into()],
            headers: BTreeMap::new(),
            timeout_seconds: 10.0,
        }
    }
}

/// `[recovery.witnesses.kubernetes]`: the node's `Ready` condition
/// (`GET {api_url}/api/v1/nodes/{node}`): False or Unknown confirms, True vetoes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesWitnessSettings {
    pub api_url: String,
    /// The node name of a host (template: `{host}`).
    pub node: String,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub timeout_seconds: f64,
}

impl Default for KubernetesWitnessSettings {
    fn default() -> Self {
        KubernetesWitnessSettings {
            api_url: String::new(),
            node: "{host}".into(),
            token_file: None,
            ca_file: None,
            timeout_seconds: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WitnessSettings {
    pub consul: Option<ConsulWitnessSettings>,
    pub bmc: Option<BmcWitnessSettings>,
    pub kubernetes: Option<KubernetesWitnessSettings>,
}

/// The `[recovery]` section. `validate` names each bad key as `recovery.<key>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoverySettings {
    /// `dry-run` (default: detect and plan, never act), `approve` (an admin approves each
    /// incident before fencing) or `auto`.
    pub mode: Mode,
    /// Seconds between detection rounds in `serve`.
    pub interval_seconds: f64,
    /// Nova's `[DEFAULT] service_down_time`; must match nova.conf.
    pub service_down_time: f64,
    /// A host's telemetry has stopped when its newest sample is older than this.
    pub telemetry_max_age_seconds: f64,
    pub min_confirmations: usize,
    pub include_disabled: bool,
    /// Guard: more than this share of an AZ's hosts looking dead at once (suspected, or dead
    /// to one of the two witnesses already) stops recovery there.
    pub max_share_per_az: f64,
    /// Guard: more than this many hosts looking dead at once stops recovery everywhere.
    pub max_hosts: usize,
    pub host_cooldown_seconds: f64,
    pub vm_cooldown_seconds: f64,
    pub max_concurrent: usize,
    pub max_concurrent_per_az: usize,
    /// An evacuation Nova has not finished after this long is closed as failed (the server
    /// is left as Nova has it; nothing is retried automatically).
    pub evacuation_timeout_seconds: f64,
    /// How often an evacuation under way is polled.
    pub poll_seconds: f64,
    /// The SQLite leader lease's length.
    pub lease_seconds: f64,
    pub priority: PrioritySettings,
    pub fence: FenceSettings,
    pub witnesses: WitnessSettings,
}

impl Default for RecoverySettings {
    fn default() -> Self {
        RecoverySettings {
            mode: Mode::DryRun,
            interval_seconds: 30.0,
            service_down_time: 60.0,
            telemetry_max_age_seconds: 180.0,
            min_confirmations: 0,
            include_disabled: false,
            max_share_per_az: 0.5,
            max_hosts: 3,
            host_cooldown_seconds: 3600.0,
            vm_cooldown_seconds: 1800.0,
            max_concurrent: 4,
            max_concurrent_per_az: 2,
            evacuation_timeout_seconds: 900.0,
            poll_seconds: 2.0,
            lease_seconds: 60.0,
            priority: PrioritySettings::default(),
            fence: FenceSettings::default(),
            witnesses: WitnessSettings::default(),
        }
    }
}

impl Section for RecoverySettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        self.problems(key_prefix)
    }

    fn resolve_files(&mut self, config_dir: &Path) {
        let resolve = |f: &mut Option<PathBuf>| {
            if let Some(p) = f.as_mut().filter(|p| p.is_relative()) {
                *p = config_dir.join(&*p);
            }
        };
        if let Some(c) = self.witnesses.consul.as_mut() {
            resolve(&mut c.token_file);
        }
        if let Some(k) = self.witnesses.kubernetes.as_mut() {
            resolve(&mut k.token_file);
            resolve(&mut k.ca_file);
        }
    }
}

impl RecoverySettings {
    /// Every problem with the section, each naming its key (`<prefix>.<key>`) and what to do.
    pub fn problems(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        self.number_problems(key_prefix, &mut out);
        self.hook_problems(key_prefix, &mut out);
        out
    }

    /// Durations, shares and counts.
    fn number_problems(&self, key_prefix: &str, out: &mut Vec<ConfigProblem>) {
        let mut p = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: format!("{key_prefix}.{key}"),
                message,
            })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        for (key, v) in [
            ("interval_seconds", self.interval_seconds),
            ("service_down_time", self.service_down_time),
            ("telemetry_max_age_seconds", self.telemetry_max_age_seconds),
            (
                "evacuation_timeout_seconds",
                self.evacuation_timeout_seconds,
            ),
            ("poll_seconds", self.poll_seconds),
            ("lease_seconds", self.lease_seconds),
        ] {
            if !positive(v) {
                p(
                    key,
                    format!("must be a positive number of seconds, got {v}"),
                );
            }
        }
        for (key, v) in [
            ("host_cooldown_seconds", self.host_cooldown_seconds),
            ("vm_cooldown_seconds", self.vm_cooldown_seconds),
        ] {
            if !non_negative(v) {
                p(key, format!("must be a number of seconds >= 0, got {v}"));
            }
        }
        if !(self.max_share_per_az.is_finite()
            && self.max_share_per_az > 0.0
            && self.max_share_per_az < 1.0)
        {
            p(
                "max_share_per_az",
                format!(
                    "must be a share in (0, 1) (1 would let a whole AZ be fenced at once), got {}",
                    self.max_share_per_az
                ),
            );
        }
        for (key, v) in [
            ("max_hosts", self.max_hosts),
            ("max_concurrent", self.max_concurrent),
            ("max_concurrent_per_az", self.max_concurrent_per_az),
        ] {
            if v == 0 {
                p(
                    key,
                    "must be at least 1 (use mode = \"dry-run\" to stop recovery)".into(),
                );
            }
        }
        if self.min_confirmations > self.witness_count() {
            p(
                "min_confirmations",
                format!(
                    "asks for {} confirmation(s) but {} optional witness(es) are configured under \
                     [recovery.witnesses]",
                    self.min_confirmations,
                    self.witness_count()
                ),
            );
        }
    }

    /// The fencing hook and the witnesses.
    fn hook_problems(&self, key_prefix: &str, out: &mut Vec<ConfigProblem>) {
        let mut p = |key: &str, message: String| {
            out.push(ConfigProblem {
                key: format!("{key_prefix}.{key}"),
                message,
            })
        };
        let positive = |v: f64| v.is_finite() && v > 0.0;
        match (&self.fence.exec, &self.fence.http) {
            (Some(_), Some(_)) => p(
                "fence",
                "set one fencing hook, exec or http, not both".into(),
            ),
            (None, None) if self.mode != Mode::DryRun => p(
                "fence",
                format!(
                    "mode = {:?} needs a fencing hook ([recovery.fence.exec] or \
                     [recovery.fence.http]): a VM must never run twice",
                    self.mode.as_str()
                ),
            ),
            _ => {}
        }
        if let Some(e) = &self.fence.exec {
            if e.fence.is_empty() {
                p(
                    "fence.exec.fence",
                    "must name the command that fences (argv)".into(),
                );
            }
            if !positive(e.timeout_seconds) {
                p(
                    "fence.exec.timeout_seconds",
                    format!("must be positive, got {}", e.timeout_seconds),
                );
            }
        }
        if let Some(h) = &self.fence.http {
            if h.fence_url.trim().is_empty() {
                p(
                    "fence.http.fence_url",
                    "must be the URL that fences the host".into(),
                );
            }
            if h.method.is_empty() || !h.method.bytes().all(|b| b.is_ascii_uppercase()) {
                p(
                    "fence.http.method",
                    format!("{:?} is not an HTTP method", h.method),
                );
            }
            if !positive(h.timeout_seconds) {
                p(
                    "fence.http.timeout_seconds",
                    format!("must be positive, got {}", h.timeout_seconds),
                );
            }
        }
        for (key, url) in [
            (
                "witnesses.consul.url",
                self.witnesses.consul.as_ref().map(|c| &c.url),
            ),
            (
                "witnesses.bmc.url",
                self.witnesses.bmc.as_ref().map(|c| &c.url),
            ),
            (
                "witnesses.kubernetes.api_url",
                self.witnesses.kubernetes.as_ref().map(|c| &c.api_url),
            ),
        ] {
            if url.is_some_and(|u| u.trim().is_empty()) {
                p(key, "must be set when the witness is configured".into());
            }
        }
    }

    pub fn witness_count(&self) -> usize {
        let w = &self.witnesses;
        usize::from(w.consul.is_some())
            + usize::from(w.bmc.is_some())
            + usize::from(w.kubernetes.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_every_problem_is_named() {
        assert!(RecoverySettings::default().problems("recovery").is_empty());
        let s = RecoverySettings {
            mode: Mode::Auto,
            max_share_per_az: 1.0,
            max_concurrent: 0,
            min_confirmations: 1,
            poll_seconds: -1.0,
            ..Default::default()
        };
        let keys: Vec<String> = s.problems("recovery").into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "recovery.poll_seconds",
                "recovery.max_share_per_az",
                "recovery.max_concurrent",
                "recovery.min_confirmations",
                "recovery.fence",
            ]
        );
    }
}
