//! Steward's own Prometheus metrics, served at `/metrics`: the API's and the background
//! jobs' (telemetry polling, rollups, cluster refresh).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const HOSTS_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0,
];
const SOURCE_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub hosts_per_request: HistogramVec,
    pub degraded: IntCounterVec,
    /// Hosts of accepted callouts, by how they were sent (`full`, `reference`).
    pub callout_hosts: IntCounterVec,
    pub rejections: IntCounterVec,
    pub telemetry_samples: IntCounterVec,
    pub cluster_hosts: IntGauge,
    pub cluster_vms: IntGauge,
    pub source_errors: IntCounterVec,
    /// 1 while a source refuses steward's reads by this policy rule (Nova's, by name).
    pub source_forbidden: IntGaugeVec,
    pub source_last_success: GaugeVec,
    pub source_duration: HistogramVec,
    pub telemetry_dropped: IntCounterVec,
    /// VMs the rebalancer's detection holds as candidates now.
    pub rebalance_candidates: IntGauge,
    /// Rebalance actions closed, by final state (done, failed, aborted).
    pub rebalance_actions_total: IntCounterVec,
    /// Rebalance actions in the journal now, by state.
    pub rebalance_actions: IntGaugeVec,
    pub rebalance_bytes_moved: IntCounter,
    pub rebalance_hook_failures: IntCounterVec,
    /// 1 while this replica is the rebalance leader.
    pub rebalance_leader: IntGauge,
    pub repair_runs: IntCounterVec,
    /// Host-failure recovery's metrics ([`RecoveryMetrics`]).
    pub recovery: RecoveryMetrics,
    /// The jobs' standing problems, which `/healthz` reports.
    pub problems: Arc<Problems>,
}

/// What `/healthz` reports besides "ok": each job's standing problem (the last run failed in a
/// way an operator must fix), with what to do. A job clears its own once it succeeds.
#[derive(Debug, Default)]
pub struct Problems(Mutex<BTreeMap<&'static str, String>>);

impl Problems {
    pub fn set(&self, job: &'static str, detail: String) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(job, detail);
        }
    }

    pub fn clear(&self, job: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(job);
        }
    }

    /// `(job, detail)`, job name order.
    pub fn list(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
            .unwrap_or_default()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let m = Metrics {
            requests: counters(
                &r,
                "steward_http_requests_total",
                "HTTP requests by route, method and status",
                &["route", "method", "status"],
            ),
            latency: histograms(
                &r,
                "steward_http_request_duration_seconds",
                "Time to answer an HTTP request, by route",
                LATENCY_BUCKETS,
                &["route", "method"],
            ),
            hosts_per_request: histograms(
                &r,
                "steward_scoring_hosts_per_request",
                "Candidate hosts in one filter or weigh request",
                HOSTS_BUCKETS,
                &["route"],
            ),
            callout_hosts: counters(
                &r,
                "steward_callout_hosts_total",
                "Hosts of accepted filter and weigh requests, by how they were sent: in full, or by reference to an entry of the host cache",
                &["sent"],
            ),
            degraded: counters(
                &r,
                "steward_scoring_degraded_total",
                "Answers marked degraded (telemetry or cluster facts missing or stale)",
                &["route"],
            ),
            rejections: counters(
                &r,
                "steward_scoring_rejections_total",
                "Hosts rejected by the filter, by plugin",
                &["plugin"],
            ),
            telemetry_samples: counters(
                &r,
                "steward_telemetry_samples_total",
                "Telemetry samples accepted",
                &["kind"],
            ),
            cluster_hosts: registered(&r, IntGauge::new("steward_cluster_hosts", "Hypervisors steward knows")),
            cluster_vms: registered(&r, IntGauge::new("steward_cluster_vms", "VMs steward knows")),
            source_errors: counters(
                &r,
                "steward_source_errors_total",
                "Failed reads of a data source (prometheus, nova, placement, keystone, store), by kind",
                &["source", "kind"],
            ),
            source_forbidden: registered(&r, IntGaugeVec::new(Opts::new("steward_source_forbidden", "1 while a data source refuses steward's reads by this policy rule (see /healthz for what to do)"), &["source", "policy"])),
            source_last_success: registered(&r, GaugeVec::new(Opts::new("steward_source_last_success_timestamp_seconds", "When a data source was last read successfully by a task (unix seconds)"), &["source", "task"])),
            source_duration: histograms(
                &r,
                "steward_source_refresh_duration_seconds",
                "Time to read a data source, by task (poll, rollup, refresh)",
                SOURCE_BUCKETS,
                &["source", "task"],
            ),
            telemetry_dropped: counters(
                &r,
                "steward_telemetry_dropped_total",
                "Telemetry readings dropped as unusable (unit errors, missing labels), by query",
                &["query"],
            ),
            rebalance_candidates: registered(&r, IntGauge::new("steward_rebalance_candidates", "VMs the rebalancer holds as noisy-neighbour candidates")),
            rebalance_actions_total: counters(
                &r,
                "steward_rebalance_actions_total",
                "Rebalance actions closed, by final state",
                &["state"],
            ),
            rebalance_actions: registered(&r, IntGaugeVec::new(Opts::new("steward_rebalance_actions", "Rebalance actions in the journal, by current state"), &["state"])),
            rebalance_bytes_moved: registered(&r, IntCounter::new("steward_rebalance_bytes_moved_total", "Bytes copied by rebalance live migrations (RAM plus disk, as Nova reports them)")),
            rebalance_hook_failures: counters(
                &r,
                "steward_rebalance_hook_failures_total",
                "Failed drain or rejoin hook steps, by hook",
                &["hook"],
            ),
            rebalance_leader: registered(&r, IntGauge::new("steward_rebalance_leader", "1 while this replica is the rebalance leader")),
            repair_runs: counters(
                &r,
                "steward_repair_runs_total",
                "Inventory repair runs finished, by result (ok, failed)",
                &["result"],
            ),
            recovery: RecoveryMetrics::register(&r),
            problems: Arc::default(),
            registry: r,
        };
        m.seed();
        m
    }

    /// Series that exist from the start, at 0, and the build's version.
    fn seed(&self) {
        for sent in ["full", "reference"] {
            self.callout_hosts.with_label_values(&[sent]);
        }
        for result in ["ok", "failed"] {
            self.repair_runs.with_label_values(&[result]);
        }
        let build = registered(
            &self.registry,
            IntGaugeVec::new(
                Opts::new("steward_build_info", "Steward's version"),
                &["version"],
            ),
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Every final state exported from the start, at 0: an alert on
        // `increase(...{state="failed"}[1h])` then sees the first failure, which it would miss
        // on a series that did not exist before it.
        for state in crate::store::journal::ActionState::ALL {
            if state.is_final() {
                self.rebalance_actions_total
                    .with_label_values(&[state.as_str()]);
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A metric, registered.
fn registered<C: Collector + Clone + 'static>(r: &Registry, metric: prometheus::Result<C>) -> C {
    let metric = metric.expect("valid metric");
    r.register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn histograms(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    registered(
        r,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        ),
    )
}

/// Host-failure recovery's metrics (`recover`), registered into steward's registry.
#[derive(Debug, Clone)]
pub struct RecoveryMetrics {
    /// Hosts both mandatory witnesses (and the optional ones) call dead this round.
    pub suspected_hosts: IntGauge,
    /// 1 while a partition guard holds, by scope (`cloud`, `az:<name>`).
    pub guard: IntGaugeVec,
    /// Incidents in the journal now, by state.
    pub incidents: IntGaugeVec,
    /// VMs of incidents in the journal now, by state.
    pub vms: IntGaugeVec,
    /// Fencing attempts that failed or timed out, by host: each one pages.
    pub fence_failures: IntCounterVec,
    /// Evacuations closed, by outcome (done, failed, blocked).
    pub evacuations: IntCounterVec,
    /// 1 while this replica leads recovery.
    pub leader: IntGauge,
    /// Unix seconds of the last detection round that read Nova.
    pub last_round: Gauge,
}

impl RecoveryMetrics {
    pub fn register(registry: &Registry) -> RecoveryMetrics {
        let m = RecoveryMetrics {
            suspected_hosts: IntGauge::new(
                "steward_recovery_suspected_hosts",
                "Hypervisors recovery suspects dead this round (Nova's service down AND telemetry stopped)",
            )
            .expect("valid metric"),
            guard: IntGaugeVec::new(
                Opts::new(
                    "steward_recovery_guard",
                    "1 while the partition guard holds (too many hosts look dead at once), by scope",
                ),
                &["scope"],
            )
            .expect("valid metric"),
            incidents: IntGaugeVec::new(
                Opts::new("steward_recovery_incidents", "Recovery incidents in the journal, by state"),
                &["state"],
            )
            .expect("valid metric"),
            vms: IntGaugeVec::new(
                Opts::new("steward_recovery_vms", "VMs of recovery incidents in the journal, by state"),
                &["state"],
            )
            .expect("valid metric"),
            fence_failures: IntCounterVec::new(
                Opts::new(
                    "steward_recovery_fence_failures_total",
                    "Fencing hook runs that failed or timed out (recovery of that host stopped)",
                ),
                &["host"],
            )
            .expect("valid metric"),
            evacuations: IntCounterVec::new(
                Opts::new(
                    "steward_recovery_evacuations_total",
                    "Evacuations closed, by outcome (done, failed, blocked)",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
            leader: IntGauge::new("steward_recovery_leader", "1 while this replica leads recovery")
                .expect("valid metric"),
            last_round: Gauge::new(
                "steward_recovery_last_round_timestamp_seconds",
                "Unix time of the last recovery round that read Nova's services",
            )
            .expect("valid metric"),
        };
        m.guard.with_label_values(&["cloud"]);
        for s in crate::store::recovery::IncidentState::ALL {
            m.incidents.with_label_values(&[s.as_str()]);
        }
        for s in crate::store::recovery::VmState::ALL {
            m.vms.with_label_values(&[s.as_str()]);
            if s.is_final() {
                m.evacuations.with_label_values(&[s.as_str()]);
            }
        }
        for c in [
            Box::new(m.suspected_hosts.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.guard.clone()),
            Box::new(m.incidents.clone()),
            Box::new(m.vms.clone()),
            Box::new(m.fence_failures.clone()),
            Box::new(m.evacuations.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.last_round.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        m
    }
}
