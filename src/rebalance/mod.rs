//! The noisy-neighbour rebalancer: `detect` finds VMs that suffer steal under load, `plan`
//! picks same-AZ destinations inside the limits. Both are PURE (time is an input). `execute`
//! carries approved actions through the journal, `hooks/` drain and rejoin, `leader` elects.
//!
//! The types in this file are the contract between planning (pure) and execution (the
//! journaled state machine in `execute`, the API and the simulator): a [`Plan`] holds
//! [`PlannedAction`]s, each with its reason and the numbers behind it, and [`Skipped`]
//! candidates, each with the [`Limit`] that stopped it. They are plain data with serde so the
//! executor can journal them and the API can show them as they are.

pub mod cycle;
pub mod detect;
pub mod execute;
pub mod hooks;
pub mod leader;
pub mod plan;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// One live migration the planner proposes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PlannedAction {
    /// The instance uuid.
    pub vm: String,
    /// Nova's compute host name (`OS-EXT-SRV-ATTR:host`) the VM runs on.
    pub source_host: String,
    /// The compute host name to pass to `os-migrateLive` as `host`.
    pub target_host: String,
    /// The availability zone of both hosts (a move never leaves it).
    pub az: String,
    pub role: Option<String>,
    /// Why this VM moves and why there, in words, with the figures.
    pub reason: String,
    /// The VM's mean load5 per vCPU over the detection window.
    pub load_per_vcpu: f64,
    /// The VM's mean CPU steal (0..1) over the detection window, on the source host.
    pub steal_at_source: f64,
    /// The steal (0..1) the planner predicts for the VM on the target host.
    pub predicted_steal_at_target: f64,
    /// Detection's ranking figure (higher is worse off).
    pub severity: f64,
    /// The scoring core's raw weight of the target host for this VM (higher is better).
    pub score: f64,
    /// Bytes the migration moves: RAM, plus the local disk for a block migration.
    pub bytes: u64,
    /// The VM has local (non-volume) disk: the move is a block migration (`block_migration`
    /// `auto` lets Nova decide; this flag is what the budget assumed).
    pub block_migration: bool,
    /// The VM's size, as the planner counted it against the target's room.
    pub vcpus: f64,
    pub memory_mb: f64,
    pub disk_gb: f64,
}

/// A limit that stopped a candidate from being planned this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `rebalance.forbidden_windows`: no migration starts in this time of day (UTC).
    ForbiddenWindow,
    /// `rebalance.max_actions_per_cycle`.
    MaxActionsPerCycle,
    /// `rebalance.max_concurrent`: migrations in flight plus planned, cloud-wide.
    MaxConcurrent,
    /// `rebalance.max_concurrent_per_az`.
    MaxConcurrentPerAz,
    /// `rebalance.max_concurrent_per_source`.
    MaxConcurrentPerSource,
    /// `rebalance.max_concurrent_per_target` (every acceptable target is at it).
    MaxConcurrentPerTarget,
    /// `rebalance.budget_gib_per_az_per_hour`: the AZ's token bucket holds too few bytes.
    ByteBudget,
    /// `rebalance.cooldown_hours`: the VM moved too recently.
    Cooldown,
    /// The VM is already being migrated (an in-flight action).
    InFlight,
    /// No host passes: same AZ, room, role cap, scoring filters, steal margin, no return.
    NoDestination,
    /// What planning needs about the VM or its host is missing (AZ, size, source host).
    MissingFacts,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ForbiddenWindow => "forbidden_window",
            Limit::MaxActionsPerCycle => "max_actions_per_cycle",
            Limit::MaxConcurrent => "max_concurrent",
            Limit::MaxConcurrentPerAz => "max_concurrent_per_az",
            Limit::MaxConcurrentPerSource => "max_concurrent_per_source",
            Limit::MaxConcurrentPerTarget => "max_concurrent_per_target",
            Limit::ByteBudget => "byte_budget",
            Limit::Cooldown => "cooldown",
            Limit::InFlight => "in_flight",
            Limit::NoDestination => "no_destination",
            Limit::MissingFacts => "missing_facts",
        }
    }
}

/// A candidate the planner did not act on this cycle, and the limit that stopped it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Skipped {
    pub vm: String,
    pub source_host: Option<String>,
    pub az: Option<String>,
    pub severity: f64,
    pub limit: Limit,
    /// The figures behind the limit (e.g. "AZ az1 has 12.0 GiB of budget left, the move needs 40.0 GiB").
    pub detail: String,
}

/// A VM that suffers steal without being busy: reported, never moved (its own work would not
/// speed up much; the busy neighbours are the ones to look at).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StealReport {
    pub vm: String,
    pub host: Option<String>,
    pub steal: f64,
    pub load_per_vcpu: f64,
}

/// An unfinished action from the journal (planned and awaiting approval, approved, or under
/// way): it counts against the concurrency limits, and its VM is not planned again.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct InFlight {
    pub vm: String,
    pub source_host: String,
    pub target_host: String,
    pub az: String,
}

/// A finished move (from the journal): for the per-VM cooldown and "no return to a host the VM
/// left within `no_return_hours`".
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct MoveRecord {
    pub vm: String,
    pub from_host: String,
    pub to_host: String,
    /// Unix seconds the move started.
    pub at: f64,
}

/// One AZ's token bucket of migration bytes.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Bucket {
    /// Bytes available now.
    pub tokens: f64,
    /// Unix seconds `tokens` was computed at.
    pub updated_at: f64,
}

/// The byte budget per AZ: an input to planning and its output (bytes the plan spends are
/// taken out). An AZ with no bucket yet starts full.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct BudgetState {
    pub per_az: BTreeMap<String, Bucket>,
}

/// What one planning cycle decided.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Plan {
    /// Unix seconds: the `now` the plan was computed for.
    pub generated_at: f64,
    pub mode: Mode,
    /// In the order to start them (worst-off VM first).
    pub actions: Vec<PlannedAction>,
    /// Candidates not acted on, each with the limit that stopped it.
    pub skipped: Vec<Skipped>,
    /// Steal without high load: reported, not acted on.
    pub steal_only: Vec<StealReport>,
    /// The budget after this plan's actions are paid for. The executor refunds an action that
    /// never starts by not persisting this state, or by planning again.
    pub budget: BudgetState,
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
    pub execution: crate::config::ExecutionSettings,
    /// `[rebalance.hooks]`: drain and rejoin around each migration.
    pub hooks: crate::config::HooksSettings,
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
            execution: crate::config::ExecutionSettings::default(),
            hooks: crate::config::HooksSettings::default(),
        }
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

impl RebalanceSettings {
    /// Every problem with the section, as (`rebalance.<key>`, what is wrong and what to do).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut p = |key: &str, msg: String| out.push((format!("rebalance.{key}"), msg));
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
        for (key, v) in [
            ("steal_enter", self.steal_enter),
            ("steal_exit", self.steal_exit),
            ("steal_margin", self.steal_margin),
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
            ..Default::default()
        };
        let keys: Vec<String> = s.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "rebalance.steal_margin",
                "rebalance.load_exit",
                "rebalance.max_concurrent_per_az",
                "rebalance.forbidden_windows[1]",
            ]
        );
        assert!(RebalanceSettings::default().validate().is_empty());
    }
}
