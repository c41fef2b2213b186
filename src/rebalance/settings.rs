//! `[rebalance]` and `[rebalance.execution]`: the rebalancer's settings, its [`Mode`] and
//! forbidden [`Window`]s, and their validation (`[rebalance.hooks]` is `hooks::settings`'s).
//! Imports nothing of the rebalancer's code, so `config` may read it while the rebalancer's
//! service reads the validated configuration.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::hooks::settings::HooksSettings;
use crate::settings::{ConfigProblem, Problems, Section};

/// What the rebalancer does with a plan. `DryRun` is the default: plans are computed and shown,
/// never executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    DryRun,
    /// Plans wait for an admin's approval (`POST /v1/rebalance/plans/{id}/approve`).
    Approve,
    /// Planned actions are executed without approval.
    Auto,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Approve => "approve",
            Mode::Auto => "auto",
        }
    }
}

/// The `[rebalance]` configuration section: detection, planning and limits.
/// `validate` names each bad key as `rebalance.<key>`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RebalanceSettings {
    /// `dry-run` (default), `approve` or `auto`.
    pub mode: Mode,
    /// The scheduling profile whose filters and weights pick destinations.
    pub profile: String,
    /// Seconds between planning cycles.
    pub interval_seconds: f64,
    /// Detection window: load and steal must be sustained over it.
    pub window_seconds: f64,
    /// Samples needed inside the window before a VM can become a candidate.
    pub min_samples: usize,
    /// Enter: mean load5 per vCPU at or above this AND mean steal at or above `steal_enter`.
    pub load_enter: f64,
    pub steal_enter: f64,
    /// Exit (hysteresis): a candidate stays one until load or steal falls below these.
    pub load_exit: f64,
    pub steal_exit: f64,
    /// A target's predicted steal must be at least this much (absolute, 0..1) below the
    /// VM's steal at its source.
    pub steal_margin: f64,
    /// The move must pay for itself over the coming day: the VM's predicted peak on the
    /// target (its host's busy CPUs at the highest hour of the scoring profile's
    /// `peak_horizon_hours`, with the VM, as a share of the host's CPUs) must be at least this
    /// much (absolute, 0..1) below its predicted peak where it runs. Off by default (`None`):
    /// a role-level prediction cannot see that a VM is busier than its role, and in the twin
    /// the rule turned down moves that helped. Applies once roles have been learned.
    pub peak_margin: Option<f64>,
    /// A move must pay for its copy: its predicted gain (the VM's steal at its source minus
    /// the target's predicted steal, times the VM's busy cores, counted over `gain_hours`)
    /// must exceed the copy's CPU (its bytes at `copy_gib_per_second`, taking
    /// `copy_cpu_cores` on the source and on the target while it runs), in core-seconds.
    pub gain_hours: f64,
    /// The hosts' `[libvirt] live_migration_bandwidth` as the planner counts a copy's time,
    /// GiB/s.
    pub copy_gib_per_second: f64,
    /// CPU a live migration's copy takes on each of its two hosts while it runs (cores).
    pub copy_cpu_cores: f64,
    pub max_concurrent: u32,
    pub max_concurrent_per_az: u32,
    pub max_concurrent_per_source: u32,
    pub max_concurrent_per_target: u32,
    /// Token bucket per AZ: refill rate, in GiB per hour.
    pub budget_gib_per_az_per_hour: f64,
    /// Token bucket size in GiB (how much may be spent at once); defaults to one hour's refill.
    pub budget_burst_gib: Option<f64>,
    /// `HH:MM-HH:MM` in UTC, during which no migration is planned (may wrap midnight).
    pub forbidden_windows: Vec<String>,
    /// A VM that moved is not moved again for this long.
    pub cooldown_hours: f64,
    /// A VM never returns to a host it left within this long.
    pub no_return_hours: f64,
    pub max_actions_per_cycle: u32,
    /// `[rebalance.execution]`: how approved actions are carried out.
    pub execution: ExecutionSettings,
    /// `[rebalance.hooks]`: drain and rejoin around each migration.
    pub hooks: HooksSettings,
}

impl Default for RebalanceSettings {
    fn default() -> Self {
        RebalanceSettings {
            mode: Mode::DryRun,
            profile: "default".into(),
            interval_seconds: 300.0,
            window_seconds: 900.0,
            min_samples: 3,
            load_enter: 0.7,
            steal_enter: 0.10,
            load_exit: 0.5,
            steal_exit: 0.05,
            steal_margin: 0.05,
            peak_margin: None,
            gain_hours: 1.0,
            copy_gib_per_second: 1.0,
            copy_cpu_cores: 1.0,
            max_concurrent: 10,
            max_concurrent_per_az: 4,
            max_concurrent_per_source: 1,
            max_concurrent_per_target: 1,
            budget_gib_per_az_per_hour: 200.0,
            budget_burst_gib: None,
            forbidden_windows: Vec::new(),
            cooldown_hours: 6.0,
            no_return_hours: 24.0,
            max_actions_per_cycle: 20,
            execution: ExecutionSettings::default(),
            hooks: HooksSettings::default(),
        }
    }
}

impl RebalanceSettings {
    /// What is wrong with the keys a move's gain and its copy's cost are counted with.
    fn copy_cost_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(self.gain_hours.is_finite() && self.gain_hours > 0.0) {
            let msg = format!(
                "must be a positive number of hours, got {}",
                self.gain_hours
            );
            out.push(("gain_hours", msg));
        }
        if !(self.copy_gib_per_second.is_finite() && self.copy_gib_per_second > 0.0) {
            let msg = format!(
                "must be a positive GiB/s (the hosts' live_migration_bandwidth), got {}",
                self.copy_gib_per_second
            );
            out.push(("copy_gib_per_second", msg));
        }
        if !(self.copy_cpu_cores.is_finite() && self.copy_cpu_cores >= 0.0) {
            let msg = format!(
                "must be a number of cores >= 0, got {}",
                self.copy_cpu_cores
            );
            out.push(("copy_cpu_cores", msg));
        }
        out
    }

    /// The forbidden windows that parse (`validate` reports the others).
    pub fn windows(&self) -> Vec<Window> {
        self.forbidden_windows
            .iter()
            .filter_map(|w| Window::parse(w).ok())
            .collect()
    }

    /// Bucket size in bytes.
    pub fn burst_bytes(&self) -> f64 {
        self.budget_burst_gib
            .unwrap_or(self.budget_gib_per_az_per_hour)
            * GIB
    }

    /// Refill rate in bytes per second.
    pub fn refill_bytes_per_second(&self) -> f64 {
        self.budget_gib_per_az_per_hour * GIB / 3600.0
    }
}

pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// A forbidden time of day, in minutes since 00:00 UTC; `start > end` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_minute: u32,
    pub end_minute: u32,
}

impl Window {
    /// `HH:MM-HH:MM`, UTC.
    pub fn parse(s: &str) -> Result<Window, String> {
        let bad = || format!("{s:?} is not a time window like \"11:00-14:00\" (UTC, HH:MM-HH:MM)");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let minute = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
        };
        let (start_minute, end_minute) = (minute(a).ok_or_else(bad)?, minute(b).ok_or_else(bad)?);
        if start_minute == end_minute {
            return Err(format!("{s:?} is an empty window (start equals end)"));
        }
        Ok(Window {
            start_minute,
            end_minute,
        })
    }

    /// Is this unix time inside the window?
    pub fn contains(&self, unix_seconds: f64) -> bool {
        let minute = ((unix_seconds / 60.0).floor() as i64).rem_euclid(24 * 60) as u32;
        if self.start_minute < self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

impl Section for RebalanceSettings {
    /// Every problem with the section, as (`rebalance.<key>`, what is wrong and what to do).
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut out = Problems::new(key_prefix);
        let mut p = |key: &str, msg: String| out.add(key, msg);
        let fraction = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if self.profile.trim().is_empty() {
            p("profile", "must name a scheduling profile".into());
        }
        for (key, v) in [
            ("interval_seconds", self.interval_seconds),
            ("window_seconds", self.window_seconds),
        ] {
            if !positive(v) {
                p(
                    key,
                    format!("must be a positive number of seconds, got {v}"),
                );
            }
        }
        if self.min_samples == 0 {
            p("min_samples", "must be at least 1".into());
        }
        for (key, msg) in self.copy_cost_problems() {
            p(key, msg);
        }
        for (key, v) in [
            ("steal_enter", self.steal_enter),
            ("steal_exit", self.steal_exit),
            ("steal_margin", self.steal_margin),
            ("peak_margin", self.peak_margin.unwrap_or(0.0)),
        ] {
            if !fraction(v) {
                p(key, format!("must be a share in [0, 1], got {v}"));
            }
        }
        for (key, v) in [
            ("load_enter", self.load_enter),
            ("load_exit", self.load_exit),
        ] {
            if !non_negative(v) {
                p(key, format!("must be a load per vCPU >= 0, got {v}"));
            }
        }
        if self.load_exit > self.load_enter {
            p(
                "load_exit",
                format!(
                    "must not be above load_enter ({}) or candidates would flap, got {}",
                    self.load_enter, self.load_exit
                ),
            );
        }
        if self.steal_exit > self.steal_enter {
            p(
                "steal_exit",
                format!(
                    "must not be above steal_enter ({}) or candidates would flap, got {}",
                    self.steal_enter, self.steal_exit
                ),
            );
        }
        for (key, v) in [
            ("max_concurrent", self.max_concurrent),
            ("max_concurrent_per_az", self.max_concurrent_per_az),
            ("max_concurrent_per_source", self.max_concurrent_per_source),
            ("max_concurrent_per_target", self.max_concurrent_per_target),
            ("max_actions_per_cycle", self.max_actions_per_cycle),
        ] {
            if v == 0 {
                p(
                    key,
                    "must be at least 1 (use mode = \"dry-run\" to stop migrations)".into(),
                );
            }
        }
        if !non_negative(self.budget_gib_per_az_per_hour) {
            p(
                "budget_gib_per_az_per_hour",
                format!(
                    "must be a number of GiB >= 0, got {}",
                    self.budget_gib_per_az_per_hour
                ),
            );
        }
        if let Some(b) = self.budget_burst_gib.filter(|b| !positive(*b)) {
            p(
                "budget_burst_gib",
                format!("must be a positive number of GiB, got {b}"),
            );
        }
        for (key, v) in [
            ("cooldown_hours", self.cooldown_hours),
            ("no_return_hours", self.no_return_hours),
        ] {
            if !non_negative(v) {
                p(key, format!("must be a number of hours >= 0, got {v}"));
            }
        }
        for (i, w) in self.forbidden_windows.iter().enumerate() {
            if let Err(e) = Window::parse(w) {
                p(&format!("forbidden_windows[{i}]"), e);
            }
        }
        out.list
            .extend(self.execution.validate(&format!("{key_prefix}.execution")));
        out.list
            .extend(self.hooks.validate(&format!("{key_prefix}.hooks")));
        out.into_vec()
    }

    fn resolve_files(&mut self, config_dir: &Path) {
        self.hooks.resolve_files(config_dir);
    }
}

/// `[rebalance.execution]`: how approved actions are carried out.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutionSettings {
    /// Nova's `[libvirt] live_migration_completion_timeout`: seconds per GiB copied (RAM, plus
    /// disk for block migrations). Past it (plus the margin) steward aborts the migration.
    pub completion_timeout_seconds_per_gib: f64,
    pub completion_timeout_margin_seconds: f64,
    /// How often a running migration is polled (`GET /servers/{id}/migrations`).
    pub poll_seconds: f64,
    /// Actions one cycle carries out at once (the planner's own limits apply first).
    pub max_parallel: usize,
    /// How often `serve` runs an execution cycle when the mode is `approve` or `auto`.
    pub cycle_seconds: f64,
    /// The leader lease's length: a dead or stopped leader is replaced this long after its
    /// last renewal (renewed every third of it), on every backend.
    pub lease_seconds: f64,
    /// Rejoin hooks are tried this many times within one cycle before the action is left in
    /// `rejoining` for the next cycle (it is never closed with a node still drained).
    pub rejoin_attempts: u32,
    pub rejoin_retry_seconds: f64,
}

impl Default for ExecutionSettings {
    fn default() -> Self {
        ExecutionSettings {
            completion_timeout_seconds_per_gib: 800.0,
            completion_timeout_margin_seconds: 60.0,
            poll_seconds: 5.0,
            max_parallel: 4,
            cycle_seconds: 300.0,
            lease_seconds: 60.0,
            rejoin_attempts: 5,
            rejoin_retry_seconds: 10.0,
        }
    }
}

impl Section for ExecutionSettings {
    fn validate(&self, key_prefix: &str) -> Vec<ConfigProblem> {
        let mut p = Problems::new(key_prefix);
        for (key, value, min) in [
            (
                "completion_timeout_seconds_per_gib",
                self.completion_timeout_seconds_per_gib,
                0.001,
            ),
            (
                "completion_timeout_margin_seconds",
                self.completion_timeout_margin_seconds,
                0.0,
            ),
            ("poll_seconds", self.poll_seconds, 0.01),
            ("cycle_seconds", self.cycle_seconds, 0.01),
            ("lease_seconds", self.lease_seconds, 0.5),
            ("rejoin_retry_seconds", self.rejoin_retry_seconds, 0.0),
        ] {
            if !(value.is_finite() && value >= min) {
                p.add(
                    key,
                    format!("must be a number of at least {min}, got {value}"),
                );
            }
        }
        if self.max_parallel == 0 {
            p.add("max_parallel", "must be at least 1");
        }
        if self.rejoin_attempts == 0 {
            p.add(
                "rejoin_attempts",
                "must be at least 1: the rejoin hooks always run",
            );
        }
        p.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_wrap_midnight() {
        let lunch = Window::parse("11:00-14:00").unwrap();
        let day = 86_400.0 * 100.0;
        assert!(lunch.contains(day + 11.0 * 3600.0));
        assert!(lunch.contains(day + 13.0 * 3600.0 + 59.0 * 60.0));
        assert!(!lunch.contains(day + 14.0 * 3600.0));
        assert!(!lunch.contains(day + 10.0 * 3600.0 + 59.0 * 60.0));
        let night = Window::parse("22:00-02:00").unwrap();
        assert!(night.contains(day + 23.0 * 3600.0));
        assert!(night.contains(day + 3600.0));
        assert!(!night.contains(day + 12.0 * 3600.0));
        for bad in [
            "11-14",
            "25:00-26:00",
            "11:00",
            "11:00-11:00",
            "aa:bb-cc:dd",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validate_names_each_bad_key() {
        let s = RebalanceSettings {
            load_exit: 0.9,
            max_concurrent_per_az: 0,
            forbidden_windows: vec!["11:00-14:00".into(), "lunch".into()],
            steal_margin: 1.5,
            gain_hours: 0.0,
            copy_gib_per_second: -1.0,
            copy_cpu_cores: f64::NAN,
            ..Default::default()
        };
        let keys: Vec<String> = s.validate("rebalance").into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "rebalance.gain_hours",
                "rebalance.copy_gib_per_second",
                "rebalance.copy_cpu_cores",
                "rebalance.steal_margin",
                "rebalance.load_exit",
                "rebalance.max_concurrent_per_az",
                "rebalance.forbidden_windows[1]",
            ]
        );
        assert!(RebalanceSettings::default()
            .validate("rebalance")
            .is_empty());
    }
}
