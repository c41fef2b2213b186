//! The Prometheus source: configurable PromQL for steal and load of hosts and VMs, read through
//! Prometheus' HTTP API. Instant queries feed the cluster view; hourly range queries feed the
//! hour-of-week rollups. Holds no policy: a steal above 1.0 is reported and dropped here because
//! it is a unit error, not a judgement.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use super::rollup::weekly_p95;
use super::{HostSample, VmSample};
use crate::model::{HostFacts, Source, VmFacts, WeeklyProfile, WeeklyProfiles};

/// How to reach Prometheus and what to ask it.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusSettings {
    /// Base URL, e.g. `http://prometheus:9090`. Unset: no Prometheus (push only).
    pub url: Option<String>,
    /// A file holding a bearer token for Prometheus (or a proxy in front of it).
    pub bearer_token_file: Option<std::path::PathBuf>,
    pub timeout_seconds: f64,
    /// How often steal and load are read.
    pub interval_seconds: f64,
    /// How many weeks of history the hour-of-week profiles cover.
    pub history_weeks: u32,
    /// How often the profiles are recomputed.
    pub rollup_interval_hours: f64,
    /// The label that names the hypervisor in the host queries' results.
    pub host_label: String,
    /// The label that names the VM (its Nova uuid) in the VM queries' results.
    pub vm_label: String,
    pub queries: Queries,
}

/// PromQL. Each result series must carry `host_label` (host queries) or `vm_label` (VM
/// queries). Steal and CPU use are fractions of CPU time, 0.0..1.0.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queries {
    pub host_steal: String,
    pub host_cpu_use: String,
    pub vm_steal: String,
    pub vm_load5: String,
}

impl Default for Queries {
    fn default() -> Self {
        // libvirt's vcpu.N.delay is what a guest sees as steal: its rate per vCPU, averaged
        // over the host's (or the domain's) vCPUs. `and <the counter>` keeps only the vCPU
        // series that are still scraped now: after a live migration the VM's series on the old
        // host are marked stale at once, but `rate(..[5m])` goes on returning them for up to
        // 5 minutes, which would add the old host's delay to the VM's steal and leave the
        // departed VM's delay in the old host's. `avg` (not `sum / count`) leaves a vCPU
        // whose rate is not known yet (a new series, one sample) out instead of counting it
        // as no steal.
        Queries {
            host_steal: "avg by (host) (rate(libvirt_domain_vcpu_delay_seconds_total[5m]) \
                         and libvirt_domain_vcpu_delay_seconds_total)"
                .into(),
            // The same guard: a host whose node exporter is gone (its series marked stale)
            // would otherwise go on being read for 5 minutes, ever busier as the idle rate
            // decays, and look alive to host-failure recovery's telemetry check.
            host_cpu_use: "1 - avg by (host) (rate(node_cpu_seconds_total{mode=\"idle\"}[5m]) \
                           and node_cpu_seconds_total{mode=\"idle\"})"
                .into(),
            vm_steal: "avg by (uuid) (rate(libvirt_domain_vcpu_delay_seconds_total[5m]) \
                       and libvirt_domain_vcpu_delay_seconds_total)"
                .into(),
            vm_load5: "node_load5".into(),
        }
    }
}

impl Default for PrometheusSettings {
    fn default() -> Self {
        PrometheusSettings {
            url: None,
            bearer_token_file: None,
            timeout_seconds: 10.0,
            interval_seconds: 60.0,
            history_weeks: 4,
            rollup_interval_hours: 6.0,
            host_label: "host".into(),
            vm_label: "uuid".into(),
            queries: Queries::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("Prometheus at {url} did not answer in time ({seconds} s); check it runs, or raise [prometheus] timeout_seconds")]
    Timeout { url: String, seconds: f64 },
    #[error("cannot reach Prometheus at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("Prometheus at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus refused query {query:?}: {error_type}: {error}; fix [prometheus.queries]")]
    Query {
        query: String,
        error_type: String,
        error: String,
    },
    #[error("Prometheus at {url} answered something that is not its API's JSON: {detail}")]
    Garbage { url: String, detail: String },
}

impl PromError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PromError::Timeout { .. } => "timeout",
            PromError::Unreachable { .. } => "unreachable",
            PromError::Status { .. } => "status",
            PromError::Query { .. } => "query",
            PromError::Garbage { .. } => "garbage",
        }
    }
}

#[derive(Deserialize)]
struct ApiAnswer {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ApiData {
    Vector(Vec<InstantSeries>),
    Matrix(Vec<RangeSeries>),
    Scalar(serde::de::IgnoredAny),
    String(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct InstantSeries {
    metric: HashMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct RangeSeries {
    metric: HashMap<String, String>,
    values: Vec<(f64, String)>,
}

/// One reading: the series' labels, its time and value.
pub type Reading = (HashMap<String, String>, f64, f64);

/// What one poll read, with the readings that had to be dropped and why.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Poll {
    pub hosts: Vec<HostSample>,
    pub vms: Vec<VmSample>,
    /// e.g. `host_steal cmp-3: 12.5 is above 1.0 (a unit error: percent, or ns as seconds?)`.
    pub dropped: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    pub settings: PrometheusSettings,
}

impl Prometheus {
    /// `None` when no URL is configured.
    pub fn new(settings: &PrometheusSettings) -> Result<Option<Prometheus>, String> {
        let Some(url) = settings.url.clone() else {
            return Ok(None);
        };
        let token = match &settings.bearer_token_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("prometheus.bearer_token_file {}: {e}", f.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(settings.timeout_seconds))
            .user_agent(concat!("nova-steward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("prometheus: cannot build an HTTP client: {e}"))?;
        Ok(Some(Prometheus {
            http,
            base: url.trim_end_matches('/').to_string(),
            token,
            settings: settings.clone(),
        }))
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<ApiData, PromError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.get(&url).query(params);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                PromError::Timeout {
                    url: url.clone(),
                    seconds: self.settings.timeout_seconds,
                }
            } else {
                PromError::Unreachable {
                    url: url.clone(),
                    detail: e.to_string(),
                }
            }
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| PromError::Unreachable {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let answer: Option<ApiAnswer> = serde_json::from_slice(&body).ok();
        let query = params
            .iter()
            .find(|(k, _)| *k == "query")
            .map(|(_, q)| q.clone())
            .unwrap_or_default();
        match answer {
            // Prometheus answers 400/422 with an error body for a bad query.
            Some(a) if a.status == "error" => Err(PromError::Query {
                query,
                error_type: a.error_type.unwrap_or_default(),
                error: a.error.unwrap_or_default(),
            }),
            Some(ApiAnswer {
                data: Some(data), ..
            }) if status.is_success() => Ok(data),
            _ if !status.is_success() => Err(PromError::Status {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
            _ => Err(PromError::Garbage {
                url,
                detail: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            }),
        }
    }

    /// An instant query evaluated at `time`.
    pub async fn instant(&self, query: &str, time: f64) -> Result<Vec<Reading>, PromError> {
        let data = self
            .get(
                "/api/v1/query",
                &[("query", query.to_string()), ("time", format!("{time:.3}"))],
            )
            .await?;
        match data {
            ApiData::Vector(v) => Ok(v
                .into_iter()
                .filter_map(|s| Some((s.metric, s.value.0, parse_value(&s.value.1)?)))
                .collect()),
            _ => Err(PromError::Garbage {
                url: self.base.clone(),
                detail: format!("query {query:?} did not give an instant vector"),
            }),
        }
    }

    /// A range query; one entry per series with its finite values.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<(HashMap<String, String>, Vec<(f64, f64)>)>, PromError> {
        let data = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", query.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ],
            )
            .await?;
        match data {
            ApiData::Matrix(m) => Ok(m
                .into_iter()
                .map(|s| {
                    let values = s
                        .values
                        .iter()
                        .filter_map(|(t, v)| Some((*t, parse_value(v)?)))
                        .collect();
                    (s.metric, values)
                })
                .collect()),
            _ => Err(PromError::Garbage {
                url: self.base.clone(),
                detail: format!("query {query:?} did not give a range matrix"),
            }),
        }
    }

    /// Read steal, CPU use and load of every host and VM as of `now`.
    pub async fn poll(&self, now: f64) -> Result<Poll, PromError> {
        let q = &self.settings.queries;
        let (host_steal, host_cpu, vm_steal, vm_load) = futures_util::future::try_join4(
            self.instant(&q.host_steal, now),
            self.instant(&q.host_cpu_use, now),
            self.instant(&q.vm_steal, now),
            self.instant(&q.vm_load5, now),
        )
        .await?;
        let mut poll = Poll::default();
        let (hl, vl) = (&self.settings.host_label, &self.settings.vm_label);
        let mut hosts: HashMap<String, HostFacts> = HashMap::new();
        let fresh = |at: f64| HostFacts {
            observed_at: at,
            source: Source::Prometheus,
            ..Default::default()
        };
        for (name, at, v) in keyed(host_steal, hl, "host_steal", &mut poll.dropped) {
            if let Some(v) = fraction("host_steal", &name, v, &mut poll.dropped) {
                hosts.entry(name).or_insert_with(|| fresh(at)).steal = Some(v);
            }
        }
        for (name, at, v) in keyed(host_cpu, hl, "host_cpu_use", &mut poll.dropped) {
            if let Some(v) = fraction("host_cpu_use", &name, v, &mut poll.dropped) {
                hosts.entry(name).or_insert_with(|| fresh(at)).cpu_use = Some(v);
            }
        }
        let mut vms: HashMap<String, VmFacts> = HashMap::new();
        let fresh_vm = |at: f64| VmFacts {
            observed_at: at,
            source: Source::Prometheus,
            ..Default::default()
        };
        for (uuid, at, v) in keyed(vm_steal, vl, "vm_steal", &mut poll.dropped) {
            if let Some(v) = fraction("vm_steal", &uuid, v, &mut poll.dropped) {
                vms.entry(uuid).or_insert_with(|| fresh_vm(at)).steal = Some(v);
            }
        }
        for (uuid, at, v) in keyed(vm_load, vl, "vm_load5", &mut poll.dropped) {
            if v >= 0.0 {
                vms.entry(uuid).or_insert_with(|| fresh_vm(at)).load5 = Some(v);
            } else {
                poll.dropped
                    .push(format!("vm_load5 {uuid}: {v} is negative"));
            }
        }
        poll.hosts = hosts
            .into_iter()
            .map(|(host, facts)| HostSample { host, facts })
            .collect();
        poll.vms = vms
            .into_iter()
            .map(|(uuid, facts)| VmSample { uuid, facts })
            .collect();
        Ok(poll)
    }

    /// Hour-of-week profiles over `history_weeks` up to `now`: p95 steal per host, and p95
    /// load per role (from the VMs whose role `vm_roles` gives). One range query a week each,
    /// at one point an hour (the p95 of that hour), so 5,000 hosts stay within Prometheus'
    /// 11,000 points per series.
    pub async fn rollup(
        &self,
        now: f64,
        vm_roles: &HashMap<String, String>,
    ) -> Result<WeeklyProfiles, PromError> {
        const WEEK: f64 = 7.0 * 24.0 * 3600.0;
        let weeks = self.settings.history_weeks.max(1);
        let end = (now / 3600.0).floor() * 3600.0;
        let q = &self.settings.queries;
        let hourly = |expr: &str| format!("quantile_over_time(0.95, ({expr})[1h:5m])");
        let mut host_samples: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        let mut role_samples: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        for w in (0..weeks).rev() {
            let (start, stop) = (
                end - f64::from(w + 1) * WEEK + 3600.0,
                end - f64::from(w) * WEEK,
            );
            for (labels, values) in self
                .range(&hourly(&q.host_steal), start, stop, 3600.0)
                .await?
            {
                if let Some(host) = labels.get(&self.settings.host_label) {
                    // A point at t covers (t - 1h, t]: it belongs to the hour before t.
                    host_samples.entry(host.clone()).or_default().extend(
                        values
                            .iter()
                            .filter(|(_, v)| *v <= 1.0)
                            .map(|(t, v)| (t - 1800.0, *v)),
                    );
                }
            }
            if vm_roles.is_empty() {
                continue;
            }
            for (labels, values) in self
                .range(&hourly(&q.vm_load5), start, stop, 3600.0)
                .await?
            {
                let role = labels
                    .get(&self.settings.vm_label)
                    .and_then(|uuid| vm_roles.get(uuid));
                if let Some(role) = role {
                    role_samples
                        .entry(role.clone())
                        .or_default()
                        .extend(values.iter().map(|(t, v)| (t - 1800.0, *v)));
                }
            }
        }
        let profile =
            |samples: Vec<(f64, f64)>| -> WeeklyProfile { weekly_p95(&samples, weeks, now) };
        Ok(WeeklyProfiles {
            host_steal: host_samples
                .into_iter()
                .map(|(k, s)| (k, profile(s)))
                .collect(),
            role_demand: role_samples
                .into_iter()
                .map(|(k, s)| (k, profile(s)))
                .collect(),
        })
    }
}

fn parse_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The readings that carry `label`; the others are reported.
fn keyed(
    readings: Vec<Reading>,
    label: &str,
    query: &str,
    dropped: &mut Vec<String>,
) -> Vec<(String, f64, f64)> {
    let mut missing = 0;
    let out = readings
        .into_iter()
        .filter_map(|(labels, at, v)| match labels.get(label) {
            Some(name) if !name.is_empty() => Some((name.clone(), at, v)),
            _ => {
                missing += 1;
                None
            }
        })
        .collect();
    if missing > 0 {
        dropped.push(format!(
            "{query}: {missing} series without label {label:?}; fix the query or [prometheus] labels"
        ));
    }
    out
}

/// A fraction of CPU time; above 1.0 is a unit error and is dropped with its reason.
fn fraction(query: &str, subject: &str, v: f64, dropped: &mut Vec<String>) -> Option<f64> {
    if (0.0..=1.0).contains(&v) {
        Some(v)
    } else {
        dropped.push(format!(
            "{query} {subject}: {v} is outside 0..1 (a unit error: a percentage, or nanoseconds published as seconds?)"
        ));
        None
    }
}
