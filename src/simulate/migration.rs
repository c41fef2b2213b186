//! A live migration as Nova's libvirt driver runs it, in the twin (PURE).
//!
//! Pre-copy: a block migration first copies the local disk; then RAM is copied at the host's
//! `live_migration_bandwidth` while the guest dirties pages at a rate that grows with its CPU
//! demand (`dirty_gib_per_core_second` per busy core); each pass copies what the previous one
//! left dirty, until what is left fits in `max_downtime_ms` at the bandwidth (the switch-over).
//! A move that has not converged after Nova's `live_migration_completion_timeout` (seconds
//! per GiB of data) is aborted (`live_migration_timeout_action = abort`, the default): the VM
//! stays on its source and the bytes copied are spent. While copying, the migration takes
//! `cpu_cores` of CPU on both the source and the target. Not modelled: libvirt's growing
//! downtime steps, auto-converge and post-copy (off by default in Nova).

use serde::{Deserialize, Serialize};

/// The `[migration]` section of a scenario.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationSpec {
    /// GiB of guest memory dirtied per second per busy core.
    pub dirty_gib_per_core_second: f64,
    /// Nova's `live_migration_completion_timeout`: seconds per GiB of data.
    pub completion_timeout_per_gib: f64,
    /// Nova's `live_migration_downtime` (ms): the largest pause at switch-over.
    pub max_downtime_ms: f64,
    /// CPU the copy takes on the source and on the target while it runs.
    pub cpu_cores: f64,
}

impl Default for MigrationSpec {
    fn default() -> Self {
        MigrationSpec {
            dirty_gib_per_core_second: 0.05,
            completion_timeout_per_gib: 800.0,
            max_downtime_ms: 500.0,
            cpu_cores: 1.0,
        }
    }
}

impl MigrationSpec {
    pub fn problems(&self) -> Vec<String> {
        [
            ("dirty_gib_per_core_second", self.dirty_gib_per_core_second),
            (
                "completion_timeout_per_gib",
                self.completion_timeout_per_gib,
            ),
            ("max_downtime_ms", self.max_downtime_ms),
            ("cpu_cores", self.cpu_cores),
        ]
        .into_iter()
        .filter(|(_, v)| !(v.is_finite() && *v >= 0.0))
        .map(|(k, v)| format!("migration.{k}: must be a number >= 0, got {v}"))
        .collect()
    }
}

/// How a migration ends: after how many seconds, whether it converged, GiB sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub seconds: f64,
    pub converged: bool,
    pub gib_sent: f64,
}

/// The pre-copy of `ram_gib` (and `disk_gib` first) at `bandwidth` GiB/s for a guest busy on
/// `busy_cores`.
pub fn precopy(
    spec: &MigrationSpec,
    ram_gib: f64,
    disk_gib: f64,
    busy_cores: f64,
    bandwidth: f64,
) -> Outcome {
    let timeout = spec.completion_timeout_per_gib * (ram_gib + disk_gib);
    let dirty = spec.dirty_gib_per_core_second * busy_cores.max(0.0);
    let switch_over = bandwidth * spec.max_downtime_ms / 1000.0;
    let mut elapsed = disk_gib / bandwidth;
    let mut sent = disk_gib;
    let mut left = ram_gib;
    // A bounded number of passes: when the guest dirties as fast as the link copies, the
    // passes stop shrinking and the timeout ends it.
    for _ in 0..1000 {
        if left <= switch_over {
            return Outcome {
                seconds: elapsed + left / bandwidth,
                converged: true,
                gib_sent: sent + left,
            };
        }
        let pass = left / bandwidth;
        if elapsed + pass > timeout {
            break;
        }
        elapsed += pass;
        sent += left;
        left = (dirty * pass).min(ram_gib);
    }
    let spent = (timeout - elapsed).max(0.0);
    Outcome {
        seconds: timeout,
        converged: false,
        gib_sent: sent + spent * bandwidth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_guest_converges_in_about_bytes_over_bandwidth() {
        let o = precopy(&MigrationSpec::default(), 8.0, 40.0, 0.0, 1.0);
        assert!(o.converged);
        assert!((o.seconds - 48.0).abs() < 1e-9, "{o:?}");
    }

    #[test]
    fn a_busy_guest_takes_longer_and_a_too_busy_one_is_aborted_at_the_timeout() {
        let spec = MigrationSpec::default();
        let busy = precopy(&spec, 8.0, 0.0, 4.0, 1.0);
        assert!(busy.converged);
        assert!(busy.seconds > 8.0 * 1.2, "{busy:?}");
        // dirtying 1 GiB/s on a 1 GiB/s link never converges
        let hot = precopy(&spec, 8.0, 0.0, 20.0, 1.0);
        assert!(!hot.converged);
        assert_eq!(hot.seconds, 800.0 * 8.0);
        assert!(hot.gib_sent > 8.0);
    }
}
