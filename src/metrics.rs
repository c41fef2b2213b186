//! Steward's own Prometheus metrics, served at `/metrics`: the API's and the background
//! jobs' (telemetry polling, rollups, cluster refresh).

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

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
    /// Host-failure recovery's metrics (`recover::metrics`).
    pub recovery: crate::recover::metrics::RecoveryMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "steward_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "steward_http_request_duration_seconds",
                "Time to answer an HTTP request, by route",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        let hosts_per_request = HistogramVec::new(
            HistogramOpts::new(
                "steward_scoring_hosts_per_request",
                "Candidate hosts in one filter or weigh request",
            )
            .buckets(vec![
                1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let callout_hosts = IntCounterVec::new(
            Opts::new(
                "steward_callout_hosts_total",
                "Hosts of accepted filter and weigh requests, by how they were sent: in full, or by reference to an entry of the host cache",
            ),
            &["sent"],
        )
        .expect("valid metric");
        for sent in ["full", "reference"] {
            callout_hosts.with_label_values(&[sent]);
        }
        let degraded = IntCounterVec::new(
            Opts::new(
                "steward_scoring_degraded_total",
                "Answers marked degraded (telemetry or cluster facts missing or stale)",
            ),
            &["route"],
        )
        .expect("valid metric");
        let rejections = IntCounterVec::new(
            Opts::new(
                "steward_scoring_rejections_total",
                "Hosts rejected by the filter, by plugin",
            ),
            &["plugin"],
        )
        .expect("valid metric");
        let telemetry_samples = IntCounterVec::new(
            Opts::new(
                "steward_telemetry_samples_total",
                "Telemetry samples accepted",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let cluster_hosts = IntGauge::new("steward_cluster_hosts", "Hypervisors steward knows")
            .expect("valid metric");
        let cluster_vms =
            IntGauge::new("steward_cluster_vms", "VMs steward knows").expect("valid metric");
        let source_errors = IntCounterVec::new(
            Opts::new(
                "steward_source_errors_total",
                "Failed reads of a data source (prometheus, nova, placement, keystone, store), by kind",
            ),
            &["source", "kind"],
        )
        .expect("valid metric");
        let source_last_success = GaugeVec::new(
            Opts::new(
                "steward_source_last_success_timestamp_seconds",
                "When a data source was last read successfully by a task (unix seconds)",
            ),
            &["source", "task"],
        )
        .expect("valid metric");
        let source_duration = HistogramVec::new(
            HistogramOpts::new(
                "steward_source_refresh_duration_seconds",
                "Time to read a data source, by task (poll, rollup, refresh)",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["source", "task"],
        )
        .expect("valid metric");
        let telemetry_dropped = IntCounterVec::new(
            Opts::new(
                "steward_telemetry_dropped_total",
                "Telemetry readings dropped as unusable (unit errors, missing labels), by query",
            ),
            &["query"],
        )
        .expect("valid metric");
        let rebalance_candidates = IntGauge::new(
            "steward_rebalance_candidates",
            "VMs the rebalancer holds as noisy-neighbour candidates",
        )
        .expect("valid metric");
        let rebalance_actions_total = IntCounterVec::new(
            Opts::new(
                "steward_rebalance_actions_total",
                "Rebalance actions closed, by final state",
            ),
            &["state"],
        )
        .expect("valid metric");
        let rebalance_actions = IntGaugeVec::new(
            Opts::new(
                "steward_rebalance_actions",
                "Rebalance actions in the journal, by current state",
            ),
            &["state"],
        )
        .expect("valid metric");
        let rebalance_bytes_moved = IntCounter::new(
            "steward_rebalance_bytes_moved_total",
            "Bytes copied by rebalance live migrations (RAM plus disk, as Nova reports them)",
        )
        .expect("valid metric");
        let rebalance_hook_failures = IntCounterVec::new(
            Opts::new(
                "steward_rebalance_hook_failures_total",
                "Failed drain or rejoin hook steps, by hook",
            ),
            &["hook"],
        )
        .expect("valid metric");
        let rebalance_leader = IntGauge::new(
            "steward_rebalance_leader",
            "1 while this replica is the rebalance leader",
        )
        .expect("valid metric");
        let repair_runs = IntCounterVec::new(
            Opts::new(
                "steward_repair_runs_total",
                "Inventory repair runs finished, by result (ok, failed)",
            ),
            &["result"],
        )
        .expect("valid metric");
        for result in ["ok", "failed"] {
            repair_runs.with_label_values(&[result]);
        }
        let build = IntGaugeVec::new(
            Opts::new("steward_build_info", "Steward's version"),
            &["version"],
        )
        .expect("valid metric");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Every final state exported from the start, at 0: an alert on
        // `increase(...{state="failed"}[1h])` then sees the first failure, which it would miss
        // on a series that did not exist before it.
        for state in crate::store::journal::ActionState::ALL {
            if state.is_final() {
                rebalance_actions_total.with_label_values(&[state.as_str()]);
            }
        }
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(hosts_per_request.clone()),
            Box::new(degraded.clone()),
            Box::new(callout_hosts.clone()),
            Box::new(rejections.clone()),
            Box::new(telemetry_samples.clone()),
            Box::new(cluster_hosts.clone()),
            Box::new(cluster_vms.clone()),
            Box::new(source_errors.clone()),
            Box::new(source_last_success.clone()),
            Box::new(source_duration.clone()),
            Box::new(telemetry_dropped.clone()),
            Box::new(rebalance_candidates.clone()),
            Box::new(rebalance_actions_total.clone()),
            Box::new(rebalance_actions.clone()),
            Box::new(rebalance_bytes_moved.clone()),
            Box::new(rebalance_hook_failures.clone()),
            Box::new(rebalance_leader.clone()),
            Box::new(repair_runs.clone()),
            Box::new(build),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        let recovery = crate::recover::metrics::RecoveryMetrics::register(&registry);
        Metrics {
            recovery,
            registry,
            requests,
            latency,
            hosts_per_request,
            degraded,
            callout_hosts,
            rejections,
            telemetry_samples,
            cluster_hosts,
            cluster_vms,
            source_errors,
            source_last_success,
            source_duration,
            telemetry_dropped,
            rebalance_candidates,
            rebalance_actions_total,
            rebalance_actions,
            rebalance_bytes_moved,
            rebalance_hook_failures,
            rebalance_leader,
            repair_runs,
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
