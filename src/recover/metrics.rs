//! Recovery's own metrics, registered into steward's registry (served at `/metrics`).

use prometheus::{Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::store::recovery::{IncidentState, VmState};

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
                    "1 while the partition guard holds (too many hosts suspected at once), by scope",
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
        for s in IncidentState::ALL {
            m.incidents.with_label_values(&[s.as_str()]);
        }
        for s in VmState::ALL {
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
