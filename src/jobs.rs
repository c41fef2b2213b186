//! Background jobs that keep the cluster view current: reading membership from Nova, polling
//! Prometheus for steal and load, and rolling up hour-of-week profiles. They join adapters (telemetry, store, cluster); a
//! failure keeps the last good data (which then goes stale on its own) and is counted in
//! `/metrics`. Nothing here blocks a scoring request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{inventory, ClusterHandle};
use crate::metrics::Metrics;
use crate::openstack::{self, nova::Nova};
use crate::store::Store;
use crate::telemetry;
use crate::telemetry::prometheus::{PromError, Prometheus};
use crate::unix_now;

/// Where the cluster's membership comes from, and how it is read.
#[derive(Clone)]
pub struct NovaSource {
    pub nova: Arc<Nova>,
    pub role_key: String,
    pub default_az: String,
    pub every: Duration,
}

/// What the jobs work with.
#[derive(Clone)]
pub struct Jobs {
    pub prometheus: Option<Prometheus>,
    pub nova: Option<NovaSource>,
    pub store: Store,
    pub cluster: Arc<ClusterHandle>,
    pub metrics: Metrics,
}

/// The job name `/healthz` reports the Nova refresh's problem under.
pub const NOVA_REFRESH: &str = "nova_refresh";

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSummary {
    pub hosts: usize,
    pub vms: usize,
    pub dropped: usize,
}

impl Jobs {
    fn failed(&self, source: &str, kind: &str) {
        self.metrics
            .source_errors
            .with_label_values(&[source, kind])
            .inc();
    }

    fn succeeded(&self, source: &str, job: &str, started: Instant, now: f64) {
        self.metrics
            .source_duration
            .with_label_values(&[source, job])
            .observe(started.elapsed().as_secs_f64());
        self.metrics
            .source_last_success
            .with_label_values(&[source, job])
            .set(now);
    }

    /// Read steal and load from Prometheus once and publish them.
    pub async fn poll_prometheus(&self, now: f64) -> Result<PollSummary, PromError> {
        let Some(prom) = &self.prometheus else {
            return Ok(PollSummary {
                hosts: 0,
                vms: 0,
                dropped: 0,
            });
        };
        let started = Instant::now();
        let poll = prom.poll(now).await.inspect_err(|e| {
            self.failed("prometheus", e.kind());
            tracing::warn!(error = %e, "telemetry poll failed; keeping the last readings, which go stale");
        })?;
        for d in &poll.dropped {
            let query = d
                .split_whitespace()
                .next()
                .unwrap_or("unknown")
                .trim_end_matches(':');
            self.metrics
                .telemetry_dropped
                .with_label_values(&[query])
                .inc();
        }
        if !poll.dropped.is_empty() {
            tracing::warn!(
                dropped = poll.dropped.len(),
                first = %poll.dropped[0],
                "telemetry readings dropped as unusable"
            );
        }
        // Prometheus can be read again, so a store failure does not hold the readings back.
        if let Err(e) = self.store.save_telemetry(&poll.hosts, &poll.vms, now).await {
            self.failed("store", "write");
            tracing::error!(error = %e, "cannot save polled telemetry; it is used but will not survive a restart");
        }
        let (n_hosts, n_vms) = self
            .cluster
            .update(|view| {
                telemetry::merge(view, &poll.hosts, &poll.vms);
                (view.hosts.len(), view.vms.len())
            })
            .await;
        self.metrics.cluster_hosts.set(n_hosts as i64);
        self.metrics.cluster_vms.set(n_vms as i64);
        self.succeeded("prometheus", "poll", started, now);
        Ok(PollSummary {
            hosts: poll.hosts.len(),
            vms: poll.vms.len(),
            dropped: poll.dropped.len(),
        })
    }

    /// Recompute the hour-of-week profiles, keep them in the store and publish them.
    pub async fn rollup(&self, now: f64) -> Result<(usize, usize), PromError> {
        let Some(prom) = &self.prometheus else {
            return Ok((0, 0));
        };
        let started = Instant::now();
        let roles: HashMap<String, String> = self
            .cluster
            .snapshot()
            .vms
            .iter()
            .filter_map(|(u, v)| Some((u.to_string(), v.role.clone()?)))
            .collect();
        let profiles = prom.rollup(now, &roles).await.inspect_err(|e| {
            self.failed("prometheus", e.kind());
            tracing::warn!(error = %e, "rollup failed; keeping the previous hour-of-week profiles");
        })?;
        let counts = (profiles.host_steal.len(), profiles.role_demand.len());
        for (kind, set) in [
            ("host_steal", &profiles.host_steal),
            ("role_demand", &profiles.role_demand),
        ] {
            if let Err(e) = self.store.save_weekly(kind, set).await {
                self.failed("store", "write");
                tracing::error!(error = %e, kind, "cannot save the profiles; they are used but will not survive a restart");
            }
        }
        let profiles = Arc::new(profiles);
        self.cluster.update(|view| view.weekly = profiles).await;
        self.succeeded("prometheus", "rollup", started, now);
        tracing::info!(
            hosts = counts.0,
            roles = counts.1,
            "hour-of-week profiles rolled up"
        );
        Ok(counts)
    }

    /// A refused refresh: counted by kind; one that Nova's policy refused also names the rule
    /// and what to grant, on `/metrics` (`steward_source_forbidden`) and `/healthz`, since the
    /// view then stays what it was (empty after a start).
    fn nova_refresh_failed(&self, e: &openstack::Error) {
        let forbidden = match e {
            openstack::Error::Status(s) if s.status == 403 => {
                Some(openstack::nova::read_policy(&s.url).unwrap_or("(a read of the cluster view)"))
            }
            _ => None,
        };
        let Some(rule) = forbidden else {
            self.failed("nova", e.kind());
            tracing::warn!(error = %e, "cluster refresh from Nova failed; keeping the last view");
            return;
        };
        self.failed("nova", "forbidden");
        self.metrics
            .source_forbidden
            .with_label_values(&["nova", rule])
            .set(1);
        // /healthz answers without a token: the rule and the remedy, not Nova's URL or message.
        let detail = format!(
            "Nova's policy refuses steward's user {rule} (HTTP 403); steward keeps the last \
             view, in which hosts and VMs are missing. Merge etc/keystone/nova-policy.steward.yaml \
             into Nova's policy.yaml and give the user the steward_reader role \
             (etc/keystone/register-steward.sh), or give it admin"
        );
        tracing::error!(policy = rule, error = %e, "cluster refresh from Nova refused: {detail}");
        self.metrics.problems.set(NOVA_REFRESH, detail);
    }

    /// Read hypervisors, aggregates, servers and server groups from Nova and lay them over the
    /// view. A failed or cut-short listing publishes nothing: the last good view stays.
    pub async fn refresh_nova(&self, now: f64) -> Result<(usize, usize), openstack::Error> {
        let Some(src) = &self.nova else {
            return Ok((0, 0));
        };
        let started = Instant::now();
        let listed = futures_util::future::try_join4(
            src.nova.hypervisors(),
            src.nova.aggregates(),
            src.nova.servers(),
            src.nova.server_groups(),
        )
        .await;
        let (hypervisors, aggregates, servers, groups) =
            listed.inspect_err(|e| self.nova_refresh_failed(e))?;
        self.metrics.source_forbidden.reset();
        self.metrics.problems.clear(NOVA_REFRESH);
        let inv = inventory::build(
            &hypervisors,
            &servers,
            &groups,
            &aggregates,
            &src.role_key,
            &src.default_az,
        );
        // The raw listings are the largest thing held; free them before the view is copied.
        drop((hypervisors, aggregates, servers, groups));
        let counts = (inv.hosts.len(), inv.vms.len());
        let (n_hosts, n_vms) = self
            .cluster
            .update(|view| {
                inventory::apply(view, &inv);
                (view.hosts.len(), view.vms.len())
            })
            .await;
        self.metrics.cluster_hosts.set(n_hosts as i64);
        self.metrics.cluster_vms.set(n_vms as i64);
        self.succeeded("nova", "refresh", started, now);
        Ok(counts)
    }

    /// Run the loops until the process ends. Each waits its interval after a run ends, so a
    /// slow Prometheus never piles up runs.
    pub fn spawn(self) {
        if let Some(src) = self.nova.clone() {
            let refresher = self.clone();
            actix_web::rt::spawn(async move {
                loop {
                    let _ = refresher.refresh_nova(unix_now()).await;
                    actix_web::rt::time::sleep(src.every).await;
                }
            });
        }
        let Some(prom) = self.prometheus.clone() else {
            return;
        };
        let poll_every = Duration::from_secs_f64(prom.settings.interval_seconds);
        let rollup_every = Duration::from_secs_f64(prom.settings.rollup_interval_hours * 3600.0);
        let poller = self.clone();
        actix_web::rt::spawn(async move {
            loop {
                let _ = poller.poll_prometheus(unix_now()).await;
                actix_web::rt::time::sleep(poll_every).await;
            }
        });
        actix_web::rt::spawn(async move {
            loop {
                let _ = self.rollup(unix_now()).await;
                actix_web::rt::time::sleep(rollup_every).await;
            }
        });
    }
}
