//! `[rebalance.hooks]`: which hooks run around a migration and how each reaches its
//! orchestrator; validated here, built into hooks by `hooks::from_settings`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::settings::{resolve_in_place, ConfigProblem, Problems, Section};

/// `[rebalance.hooks]`: what takes a VM's workload out before its migration and puts it back.
/// Drain hooks run in this order (kubernetes, consul, exec, http); rejoin hooks in reverse.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HooksSettings {
    pub kubernetes: Option<KubernetesHookSettings>,
    pub consul: Option<ConsulHookSettings>,
    pub exec: Vec<ExecHookSettings>,
    pub http: Vec<HttpHookSettings>,
}

/// Which Kubernetes node or Consul node a VM is: `name` (the server's name) or
/// `metadata:<key>` (a server metadata key; a VM without it is refused before any drain).
pub fn parse_node_from(s: &str) -> Result<Option<String>, String> {
    match s {
        "name" => Ok(None),
        _ => match s.strip_prefix("metadata:") {
            Some(k) if !k.trim().is_empty() => Ok(Some(k.to_string())),
            _ => Err(format!(
                "{s:?} is not a node mapping; use \"name\" or \"metadata:<key>\""
            )),
        },
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesHookSettings {
    /// The API server, e.g. `https://k8s.example.net:6443`.
    pub api_url: String,
    /// A file holding a bearer token (a service account allowed to patch nodes and evict pods).
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle of the API server.
    pub ca_file: Option<PathBuf>,
    pub node_from: String,
    /// After a 429 (a PodDisruptionBudget says not now), ask again this much later.
    pub evict_retry_seconds: f64,
    /// Give up the drain (and fail the action, after uncordoning) past this.
    pub drain_timeout_seconds: f64,
    pub request_timeout_seconds: f64,
}

impl Default for KubernetesHookSettings {
    fn default() -> Self {
        KubernetesHookSettings {
            api_url: String::new(),
            token_file: None,
            ca_file: None,
            node_from: "name".into(),
            evict_retry_seconds: 5.0,
            drain_timeout_seconds: 600.0,
            request_timeout_seconds: 30.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsulHookSettings {
    /// The Consul agent of the VM (a template: `{node}` is the mapped node name).
    pub agent_url: String,
    pub token_file: Option<PathBuf>,
    pub node_from: String,
    /// The maintenance reason Consul shows (a template).
    pub reason: String,
    pub request_timeout_seconds: f64,
}

impl Default for ConsulHookSettings {
    fn default() -> Self {
        ConsulHookSettings {
            agent_url: "http://{node}:8500".into(),
            token_file: None,
            node_from: "name".into(),
            reason: "steward: live migration of {vm} from {source} to {target}".into(),
            request_timeout_seconds: 30.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExecHookSettings {
    pub name: String,
    /// argv templates; empty: nothing to run at that step.
    pub drain: Vec<String>,
    pub rejoin: Vec<String>,
    pub timeout_seconds: f64,
}

impl Default for ExecHookSettings {
    fn default() -> Self {
        ExecHookSettings {
            name: "exec".into(),
            drain: Vec::new(),
            rejoin: Vec::new(),
            timeout_seconds: 120.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpHookSettings {
    pub name: String,
    pub method: String,
    /// URL templates (values are percent-encoded); empty: nothing to call at that step.
    pub drain_url: String,
    pub rejoin_url: String,
    /// Body template (values inserted as they are); empty: no body.
    pub body: String,
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: f64,
}

impl Default for HttpHookSettings {
    fn default() -> Self {
        HttpHookSettings {
            name: "http".into(),
            method: "POST".into(),
            drain_url: String::new(),
            rejoin_url: String::new(),
            body: String::new(),
            headers: BTreeMap::new(),
            timeout_seconds: 30.0,
        }
    }
}

impl Section for HooksSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        if let Some(k) = &self.kubernetes {
            k.check(&mut p);
        }
        if let Some(c) = &self.consul {
            c.check(&mut p);
        }
        let mut names = HashSet::new();
        for (i, h) in self.exec.iter().enumerate() {
            h.check(&format!("exec[{i}]"), &mut p);
            if !names.insert(h.name.clone()) {
                p.add(
                    &format!("exec[{i}].name"),
                    format!("hook name {:?} is used twice; names label metrics", h.name),
                );
            }
        }
        for (i, h) in self.http.iter().enumerate() {
            h.check(&format!("http[{i}]"), &mut p);
            if !names.insert(h.name.clone()) {
                p.add(
                    &format!("http[{i}].name"),
                    format!("hook name {:?} is used twice; names label metrics", h.name),
                );
            }
        }
        p.into_vec()
    }

    fn resolve_files(&mut self, config_dir: &Path) {
        if let Some(k) = self.kubernetes.as_mut() {
            resolve_in_place(&mut k.token_file, config_dir);
            resolve_in_place(&mut k.ca_file, config_dir);
        }
        if let Some(c) = self.consul.as_mut() {
            resolve_in_place(&mut c.token_file, config_dir);
        }
    }
}

impl KubernetesHookSettings {
    fn check(&self, p: &mut Problems) {
        if url::Url::parse(&self.api_url).is_err() {
            p.add(
                "kubernetes.api_url",
                format!(
                    "{:?} is not a URL; name the API server, e.g. https://k8s.example.net:6443",
                    self.api_url
                ),
            );
        }
        if let Err(m) = parse_node_from(&self.node_from) {
            p.add("kubernetes.node_from", m);
        }
        for (key, v) in [
            ("evict_retry_seconds", self.evict_retry_seconds),
            ("drain_timeout_seconds", self.drain_timeout_seconds),
            ("request_timeout_seconds", self.request_timeout_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                p.add(
                    &format!("kubernetes.{key}"),
                    format!("must be a positive number, got {v}"),
                );
            }
        }
    }
}

impl ConsulHookSettings {
    fn check(&self, p: &mut Problems) {
        if self.agent_url.trim().is_empty() {
            p.add(
                "consul.agent_url",
                "must name the VM's Consul agent, e.g. http://{node}:8500",
            );
        }
        if let Err(m) = parse_node_from(&self.node_from) {
            p.add("consul.node_from", m);
        }
        if !(self.request_timeout_seconds.is_finite() && self.request_timeout_seconds > 0.0) {
            p.add(
                "consul.request_timeout_seconds",
                "must be a positive number",
            );
        }
    }
}

impl ExecHookSettings {
    fn check(&self, at: &str, p: &mut Problems) {
        if self.drain.is_empty() && self.rejoin.is_empty() {
            p.add(
                at,
                format!(
                    "hook {:?} has neither drain nor rejoin; give at least one argv",
                    self.name
                ),
            );
        }
        if !(self.timeout_seconds.is_finite() && self.timeout_seconds > 0.0) {
            p.add(
                &format!("{at}.timeout_seconds"),
                "must be a positive number",
            );
        }
    }
}

impl HttpHookSettings {
    fn check(&self, at: &str, p: &mut Problems) {
        if self.drain_url.is_empty() && self.rejoin_url.is_empty() {
            p.add(
                at,
                format!("hook {:?} has neither drain_url nor rejoin_url", self.name),
            );
        }
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_uppercase()) {
            p.add(
                &format!("{at}.method"),
                format!(
                    "{:?} is not an HTTP method (GET, POST, PUT, ...)",
                    self.method
                ),
            );
        }
        if !(self.timeout_seconds.is_finite() && self.timeout_seconds > 0.0) {
            p.add(
                &format!("{at}.timeout_seconds"),
                "must be a positive number",
            );
        }
    }
}
