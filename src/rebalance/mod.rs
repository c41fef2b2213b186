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
pub mod service;
pub mod settings;

pub use settings::{ExecutionSettings, Mode, RebalanceSettings, Window, GIB};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// What the move is predicted to give back, in core-seconds: the steal it removes times
    /// the VM's busy cores, over `gain_hours`. Always more than `copy_cost_core_seconds`.
    #[serde(default)]
    pub predicted_gain_core_seconds: f64,
    /// What the copy is predicted to take: `bytes` at `copy_gib_per_second`, on both hosts at
    /// `copy_cpu_cores` each, in core-seconds.
    #[serde(default)]
    pub copy_cost_core_seconds: f64,
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
