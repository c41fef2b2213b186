//! Host-failure recovery: `suspect` (PURE) reads the witnesses into evidence, `plan` (PURE)
//! applies the guards, cool-downs, priority and budgets, `execute` fences, forces the compute
//! service down and evacuates through Nova's scheduler, journaled and resumable, as the leader
//! the rebalancer elects. `witness` reads the optional witnesses, `cli` is `steward evacuate`.

pub mod cli;
pub mod execute;
pub mod plan;
pub mod report;
pub mod settings;
pub mod suspect;
pub mod witness;

pub use crate::rebalance::settings::Mode;
pub use settings::*;

/// What the pure cores read from the settings.
impl RecoverySettings {
    pub fn thresholds(&self) -> suspect::Thresholds {
        suspect::Thresholds {
            service_down_time: self.service_down_time,
            telemetry_max_age_seconds: self.telemetry_max_age_seconds,
            min_confirmations: self.min_confirmations,
            include_disabled: self.include_disabled,
        }
    }

    pub fn host_limits(&self) -> plan::HostLimits {
        plan::HostLimits {
            max_share_per_az: self.max_share_per_az,
            max_hosts: self.max_hosts,
            host_cooldown_seconds: self.host_cooldown_seconds,
        }
    }

    pub fn vm_limits(&self) -> plan::VmLimits {
        plan::VmLimits {
            max_concurrent: self.max_concurrent,
            max_concurrent_per_az: self.max_concurrent_per_az,
            vm_cooldown_seconds: self.vm_cooldown_seconds,
        }
    }
}
