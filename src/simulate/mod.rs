//! The digital twin (PURE): a synthetic cloud whose VMs follow daily demand curves, run under
//! three strategies on the very same workload, with the service's own scoring and planning.
//!
//! Steal model: a host whose VMs want `D` cores of CPU and that has `C` physical cores gives
//! every VM on it a steal of `1 - C / D` when `D > C`, else none. Strategies:
//! - `nova-default`: Nova's RAM weigher alone (most free RAM in the requested AZ);
//! - `steward-placement`: the scoring core (`scoring::filter_and_weigh`, operation boot);
//! - `steward-rebalance`: the same placement, then every `rebalance.interval_seconds` the
//!   service's `rebalance::detect` and `rebalance::plan`, with moves executed as `auto` mode
//!   would: the target is reserved at start, the VM leaves its source when the copy of its
//!   bytes at `migration_gib_per_second` is done.
//!
//! The scenario text comes in as a string and the report goes out as data: no I/O here.

pub mod report;
pub mod workload;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{
    ClusterView, Flavor, Host, HostFacts, Instance, Operation, SchedulingRequest, Source, VmFacts,
    WeeklyProfile, WeeklyProfiles, HOURS_PER_WEEK,
};
use crate::rebalance::detect::{detect, DetectState, History};
use crate::rebalance::plan::{plan, PlanInput, VmSize};
use crate::rebalance::{BudgetState, InFlight, MoveRecord, PlannedAction, RebalanceSettings, GIB};
use crate::scoring::{self, builtin_profiles, Options, Profile, ProfileSpec};

use workload::{Curve, Rng};

/// Monday 2026-11-23 00:00 UTC: a week starts there, so hour-of-week profiles line up.
pub const DEFAULT_START: f64 = 1_795_392_000.0;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Physical cores (threads) the VMs' vCPUs share.
    pub pcpus: f64,
    pub memory_mb: f64,
    pub disk_gb: f64,
    #[serde(default = "four")]
    pub cpu_allocation_ratio: f64,
    #[serde(default = "one")]
    pub ram_allocation_ratio: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    pub name: String,
    /// How many VMs of the role.
    pub count: u32,
    pub vcpus: f64,
    pub memory_mb: f64,
    /// Local disk; copied by a block migration.
    #[serde(default)]
    pub disk_gb: f64,
    #[serde(default = "yes")]
    pub block_migration: bool,
    pub curve: Curve,
    /// Demand per vCPU (0..1) off-peak and at the curve's peak.
    pub base: f64,
    #[serde(default)]
    pub peak: f64,
    /// Standard deviation of the per-step noise on demand per vCPU.
    #[serde(default = "noise")]
    pub noise: f64,
    /// Per-VM intensity is uniform in `1 ± spread`: some replicas are busier than others.
    #[serde(default = "spread")]
    pub spread: f64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "seed")]
    pub seed: u64,
    #[serde(default = "hours")]
    pub hours: f64,
    #[serde(default = "step")]
    pub step_minutes: f64,
    /// Unix seconds of the first step (default: a Monday, 00:00 UTC).
    #[serde(default = "start")]
    pub start_unix: f64,
    pub azs: Vec<String>,
    pub hosts_per_az: u32,
    pub host: HostSpec,
    pub roles: Vec<RoleSpec>,
    /// The scheduling profile steward places VMs with.
    #[serde(default = "profile")]
    pub placement_profile: String,
    /// Profiles layered over the built-in ones, as in steward.toml.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// Migration throughput: how long a move takes (bytes / this rate).
    #[serde(default = "mig_rate")]
    pub migration_gib_per_second: f64,
    /// The service's `[rebalance]` section, as in steward.toml.
    #[serde(default)]
    pub rebalance: RebalanceSettings,
}

fn four() -> f64 {
    4.0
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn noise() -> f64 {
    0.05
}
fn spread() -> f64 {
    0.3
}
fn seed() -> u64 {
    42
}
fn hours() -> f64 {
    48.0
}
fn step() -> f64 {
    5.0
}
fn start() -> f64 {
    DEFAULT_START
}
fn profile() -> String {
    "default".into()
}
fn mig_rate() -> f64 {
    1.0
}

impl Scenario {
    /// Parse and check a scenario; every problem names its key.
    pub fn parse(text: &str) -> Result<Scenario, Vec<String>> {
        let scn: Scenario = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let problems = scn.problems();
        if problems.is_empty() {
            Ok(scn)
        } else {
            Err(problems)
        }
    }

    /// What is wrong with the scenario, one line per key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !(positive(self.hours) && self.hours <= 24.0 * 28.0) {
            p.push(format!("hours: must be in (0, 672], got {}", self.hours));
        }
        if !(positive(self.step_minutes) && self.step_minutes <= 60.0) {
            p.push(format!(
                "step_minutes: must be in (0, 60], got {}",
                self.step_minutes
            ));
        }
        if !self.start_unix.is_finite() {
            p.push("start_unix: must be a unix time in seconds".into());
        }
        if self.azs.is_empty() || self.azs.iter().any(|a| a.trim().is_empty()) {
            p.push("azs: list at least one AZ name, none empty".into());
        }
        if self.hosts_per_az == 0 {
            p.push("hosts_per_az: must be at least 1".into());
        }
        let h = &self.host;
        for (key, v) in [
            ("host.pcpus", h.pcpus),
            ("host.memory_mb", h.memory_mb),
            ("host.disk_gb", h.disk_gb),
            ("host.cpu_allocation_ratio", h.cpu_allocation_ratio),
            ("host.ram_allocation_ratio", h.ram_allocation_ratio),
        ] {
            if !positive(v) {
                p.push(format!("{key}: must be a positive number, got {v}"));
            }
        }
        if self.roles.is_empty() {
            p.push("roles: describe at least one [[roles]]".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, r) in self.roles.iter().enumerate() {
            let key = format!("roles[{i}] ({})", r.name);
            if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
                p.push(format!("{key}.name: must be non-empty and unique"));
            }
            for (k, v) in [("vcpus", r.vcpus), ("memory_mb", r.memory_mb)] {
                if !positive(v) {
                    p.push(format!("{key}.{k}: must be a positive number, got {v}"));
                }
            }
            for (k, v) in [
                ("disk_gb", r.disk_gb),
                ("noise", r.noise),
                ("spread", r.spread),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    p.push(format!("{key}.{k}: must be a number >= 0, got {v}"));
                }
            }
            for (k, v) in [("base", r.base), ("peak", r.peak)] {
                if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                    p.push(format!(
                        "{key}.{k}: must be a demand per vCPU in [0, 1], got {v}"
                    ));
                }
            }
        }
        if !positive(self.migration_gib_per_second) {
            p.push(format!(
                "migration_gib_per_second: must be positive, got {}",
                self.migration_gib_per_second
            ));
        }
        p.extend(
            crate::settings::Section::validate(&self.rebalance, "rebalance")
                .into_iter()
                .map(|p| p.to_string()),
        );
        for (key, name) in [
            ("placement_profile", &self.placement_profile),
            ("rebalance.profile", &self.rebalance.profile),
        ] {
            if let Err(e) = self.profile(name) {
                p.push(format!("{key}: {e}"));
            }
        }
        p
    }

    /// A profile by name: the built-ins with the scenario's profiles layered over them.
    pub fn profile(&self, name: &str) -> Result<Profile, String> {
        let mut specs = builtin_profiles();
        for (k, v) in &self.profiles {
            specs.insert(k.clone(), v.clone());
        }
        let spec = specs.get(name).ok_or_else(|| {
            format!(
                "profile {name:?} does not exist; profiles: {}",
                specs.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        Profile::build(name, spec).map_err(|errs| {
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// A way of running the cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    NovaDefault,
    StewardPlacement,
    StewardRebalance,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [
        Strategy::NovaDefault,
        Strategy::StewardPlacement,
        Strategy::StewardRebalance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::NovaDefault => "nova-default",
            Strategy::StewardPlacement => "steward-placement",
            Strategy::StewardRebalance => "steward-rebalance",
        }
    }
}

/// What one strategy gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    pub strategy: String,
    /// Percentiles of VM steal (0..1) over every VM at every step.
    pub steal_p50: f64,
    pub steal_p95: f64,
    pub steal_p99: f64,
    /// Live migrations started.
    pub migrations: u32,
    pub gib_moved: f64,
    /// VMs that ran, at any time, outside the AZ they were booted in.
    pub az_violations: u32,
    /// The most VMs of one role on one host, at any time.
    pub worst_role_stacking: u32,
    /// VMs no host had room for at boot.
    pub unplaced: u32,
    /// The most GiB started in one AZ within any hour.
    pub max_gib_per_az_in_an_hour: f64,
    /// Every AZ's starts kept the token bucket's bound (burst + rate x time) over every interval.
    pub budget_respected: bool,
    /// The shortest time between two moves of the same VM (none if no VM moved twice).
    pub min_hours_between_moves_of_a_vm: Option<f64>,
    pub cooldown_respected: bool,
    /// Every move started, in order: what the budget and cooldown figures are computed from.
    pub moves: Vec<MoveOut>,
}

/// One live migration the twin started.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoveOut {
    pub vm: String,
    pub role: String,
    pub from_host: String,
    pub to_host: String,
    pub az: String,
    /// Hours since the scenario's start.
    pub at_hours: f64,
    pub gib: f64,
}

/// The comparison of every strategy on one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub hours: f64,
    pub azs: usize,
    pub hosts: usize,
    pub vms: usize,
    pub budget_gib_per_az_per_hour: f64,
    pub budget_burst_gib: f64,
    pub cooldown_hours: f64,
    pub strategies: Vec<StrategyReport>,
}

struct SimHost {
    name: String,
    az: String,
    vcpus_used: f64,
    mem_used: f64,
    disk_used: f64,
}

struct SimVm {
    uuid: String,
    role: usize,
    /// The AZ it was booted in (requested round-robin per role).
    az: String,
    host: Option<usize>,
    intensity: f64,
}

struct Migration {
    vm: usize,
    from: usize,
    to: usize,
    finish: f64,
}

/// The cloud of one run.
struct Twin<'a> {
    scn: &'a Scenario,
    hosts: Vec<SimHost>,
    vms: Vec<SimVm>,
    /// (host, role) -> VMs.
    stacking: Vec<Vec<u32>>,
    worst_stacking: u32,
    az_violations: std::collections::HashSet<usize>,
}

impl<'a> Twin<'a> {
    fn new(scn: &'a Scenario) -> Twin<'a> {
        let mut hosts = Vec::new();
        for az in &scn.azs {
            for i in 0..scn.hosts_per_az {
                hosts.push(SimHost {
                    name: format!("{az}-cmp{:03}", i + 1),
                    az: az.clone(),
                    vcpus_used: 0.0,
                    mem_used: 0.0,
                    disk_used: 0.0,
                });
            }
        }
        let mut vms = Vec::new();
        for (r, role) in scn.roles.iter().enumerate() {
            for i in 0..role.count {
                let n = vms.len() as u64;
                let u = Rng::keyed(scn.seed, 1, n).uniform();
                vms.push(SimVm {
                    uuid: format!("{:08x}-0000-4000-8000-{:012x}", r, i),
                    role: r,
                    az: scn.azs[i as usize % scn.azs.len()].clone(),
                    host: None,
                    intensity: 1.0 + role.spread * (2.0 * u - 1.0),
                });
            }
        }
        let stacking = vec![vec![0; scn.roles.len()]; hosts.len()];
        Twin {
            scn,
            hosts,
            vms,
            stacking,
            worst_stacking: 0,
            az_violations: Default::default(),
        }
    }

    fn size(&self, vm: usize) -> VmSize {
        let r = &self.scn.roles[self.vms[vm].role];
        VmSize {
            vcpus: r.vcpus,
            memory_mb: r.memory_mb,
            disk_gb: r.disk_gb,
            block_migration: r.block_migration && r.disk_gb > 0.0,
        }
    }

    fn fits(&self, h: usize, s: &VmSize) -> bool {
        let spec = &self.scn.host;
        let host = &self.hosts[h];
        host.vcpus_used + s.vcpus <= spec.pcpus * spec.cpu_allocation_ratio
            && host.mem_used + s.memory_mb <= spec.memory_mb * spec.ram_allocation_ratio
            && host.disk_used + s.disk_gb <= spec.disk_gb
    }

    fn reserve(&mut self, h: usize, s: &VmSize, sign: f64) {
        let host = &mut self.hosts[h];
        host.vcpus_used += sign * s.vcpus;
        host.mem_used += sign * s.memory_mb;
        host.disk_used += sign * s.disk_gb;
    }

    /// The VM now runs on `h` (its allocation there is already reserved).
    fn land(&mut self, vm: usize, h: usize) {
        let role = self.vms[vm].role;
        if let Some(old) = self.vms[vm].host {
            self.stacking[old][role] -= 1;
        }
        self.vms[vm].host = Some(h);
        self.stacking[h][role] += 1;
        self.worst_stacking = self.worst_stacking.max(self.stacking[h][role]);
        if self.hosts[h].az != self.vms[vm].az {
            self.az_violations.insert(vm);
        }
    }

    /// Demand per vCPU of a VM at a step: its role's curve, its intensity, the step's noise.
    /// Moves whose copy is done at `t`: the VM runs on its target, the source is freed.
    fn finish(&mut self, migrations: &mut Vec<Migration>, t: f64) {
        let (done, running): (Vec<Migration>, Vec<Migration>) = std::mem::take(migrations)
            .into_iter()
            .partition(|m| m.finish <= t);
        *migrations = running;
        for m in done {
            let size = self.size(m.vm);
            self.reserve(m.from, &size, -1.0);
            self.land(m.vm, m.to);
        }
    }

    /// Each host's CPU demand and steal at step `k` (time `t`); each VM's own into `vm_demand`.
    fn demand_and_steal(
        &self,
        scn: &Scenario,
        k: u64,
        t: f64,
        vm_demand: &mut [f64],
    ) -> (Vec<f64>, Vec<f64>) {
        let mut demand = vec![0.0; self.hosts.len()];
        for (i, v) in self.vms.iter().enumerate() {
            vm_demand[i] = self.demand(i, k, t) * scn.roles[v.role].vcpus;
            if let Some(h) = v.host {
                demand[h] += vm_demand[i];
            }
        }
        let pcpus = scn.host.pcpus;
        let steal = demand
            .iter()
            .map(|&d| if d > pcpus { 1.0 - pcpus / d } else { 0.0 })
            .collect();
        (demand, steal)
    }

    fn demand(&self, vm: usize, step: u64, t: f64) -> f64 {
        let v = &self.vms[vm];
        let r = &self.scn.roles[v.role];
        let hour = (t / 3600.0).rem_euclid(24.0);
        let level = r.base + (r.peak - r.base).max(0.0) * r.curve.shape(hour);
        let noise = r.noise * Rng::keyed(self.scn.seed, 2 + vm as u64, step).normal();
        (level * v.intensity + noise).clamp(0.0, 1.0)
    }

    /// What the role's weekly demand profile would show after some weeks of history: busy
    /// vCPUs per VM at each hour of the week (the high end of its replicas).
    fn weekly(&self) -> Arc<WeeklyProfiles> {
        let mut role_demand = HashMap::new();
        for r in &self.scn.roles {
            let values = (0..HOURS_PER_WEEK)
                .map(|h| {
                    let hour = (h % 24) as f64 + 0.5;
                    let level = r.base + (r.peak - r.base).max(0.0) * r.curve.shape(hour);
                    (level * (1.0 + r.spread)).min(1.0) * r.vcpus
                })
                .collect();
            role_demand.insert(
                r.name.clone(),
                WeeklyProfile {
                    values,
                    weeks: 4,
                    computed_at: self.scn.start_unix,
                },
            );
        }
        Arc::new(WeeklyProfiles {
            host_steal: HashMap::new(),
            role_demand,
        })
    }

    fn model_host(&self, h: usize) -> Host {
        let spec = &self.scn.host;
        let host = &self.hosts[h];
        Host {
            host: host.name.clone(),
            nodename: host.name.clone(),
            az: Some(host.az.clone()),
            hypervisor_type: Some("QEMU".into()),
            vcpus_total: Some(spec.pcpus),
            vcpus_used: Some(host.vcpus_used),
            cpu_allocation_ratio: Some(spec.cpu_allocation_ratio),
            memory_mb_total: Some(spec.memory_mb),
            memory_mb_free: Some(spec.memory_mb - host.mem_used),
            ram_allocation_ratio: Some(spec.ram_allocation_ratio),
            disk_gb_total: Some(spec.disk_gb),
            disk_gb_free: Some(spec.disk_gb - host.disk_used),
            ..Default::default()
        }
    }

    /// Steward's view at time `t`, with the given per-host demand (cores) and steal.
    fn view(&self, t: f64, demand: &[f64], steal: &[f64], vm_demand: &[f64]) -> ClusterView {
        let pcpus = self.scn.host.pcpus;
        let mut view = ClusterView::default();
        for (i, h) in self.hosts.iter().enumerate() {
            view.hosts.insert(
                h.name.clone(),
                HostFacts {
                    az: Some(h.az.clone()),
                    steal: Some(steal[i]),
                    load5: Some(demand[i]),
                    cpu_use: Some((demand[i] / pcpus).min(1.0)),
                    vcpus: Some(pcpus),
                    observed_at: t,
                    source: Source::Push,
                },
            );
        }
        for (i, v) in self.vms.iter().enumerate() {
            let Some(h) = v.host else { continue };
            let r = &self.scn.roles[v.role];
            view.vms.insert(
                v.uuid.clone(),
                VmFacts {
                    host: Some(self.hosts[h].name.clone()),
                    role: Some(r.name.clone()),
                    steal: Some(steal[h]),
                    load5: Some(vm_demand[i]),
                    vcpus: Some(r.vcpus),
                    observed_at: t,
                    source: Source::Push,
                    az: Some(self.hosts[h].az.clone()),
                    project_id: None,
                    flavor: Some(r.name.clone()),
                },
            );
        }
        view
    }

    /// Boot every VM in one shuffled order, the same for every strategy.
    fn boot(&mut self, strategy: Strategy, profile: &Profile, opts: &Options) -> u32 {
        let mut order: Vec<usize> = (0..self.vms.len()).collect();
        Rng::new(self.scn.seed ^ 0xB007).shuffle(&mut order);
        let t = self.scn.start_unix;
        let weekly = self.weekly();
        let zeros = vec![0.0; self.hosts.len()];
        let mut view = self.view(t, &zeros, &zeros, &vec![0.0; self.vms.len()]);
        view.weekly = weekly;
        let mut unplaced = 0;
        for vm in order {
            let size = self.size(vm);
            let az = self.vms[vm].az.clone();
            let fitting: Vec<usize> = (0..self.hosts.len())
                .filter(|&h| self.hosts[h].az == az && self.fits(h, &size))
                .collect();
            let chosen = match strategy {
                Strategy::NovaDefault => fitting.iter().copied().min_by(|&a, &b| {
                    // Nova's RAM weigher: most free RAM first; the first listed on a tie.
                    self.hosts[a].mem_used.total_cmp(&self.hosts[b].mem_used)
                }),
                Strategy::StewardPlacement | Strategy::StewardRebalance => {
                    let role = &self.scn.roles[self.vms[vm].role];
                    let req = SchedulingRequest {
                        operation: Operation::Boot,
                        instance: Instance {
                            uuid: self.vms[vm].uuid.clone(),
                            flavor: Flavor {
                                name: Some(role.name.clone()),
                                vcpus: Some(size.vcpus),
                                memory_mb: Some(size.memory_mb),
                                root_gb: Some(size.disk_gb),
                                ..Default::default()
                            },
                            requested_az: Some(az.clone()),
                            hints: [("steward_role".to_string(), role.name.clone())].into(),
                            ..Default::default()
                        },
                        ignore_hosts: Vec::new(),
                        hosts: fitting
                            .iter()
                            .map(|&h| std::sync::Arc::new(self.model_host(h)))
                            .collect(),
                    };
                    let (out, weights) = scoring::filter_and_weigh(&req, profile, &view, opts, t);
                    fitting
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| out.rejections[*i].is_none())
                        .max_by(|a, b| weights[a.0].total_cmp(&weights[b.0]).then(b.0.cmp(&a.0)))
                        .map(|(_, &h)| h)
                }
            };
            let Some(h) = chosen else {
                unplaced += 1;
                continue;
            };
            self.reserve(h, &size, 1.0);
            self.land(vm, h);
            // The next decision sees this VM (a fresh view rebuilds the role index).
            let r = &self.scn.roles[self.vms[vm].role];
            let mut next = ClusterView::default();
            next.hosts = std::mem::take(&mut view.hosts);
            next.vms = std::mem::take(&mut view.vms);
            next.weekly = Arc::clone(&view.weekly);
            next.vms.insert(
                self.vms[vm].uuid.clone(),
                VmFacts {
                    host: Some(self.hosts[h].name.clone()),
                    role: Some(r.name.clone()),
                    vcpus: Some(r.vcpus),
                    observed_at: t,
                    az: Some(self.hosts[h].az.clone()),
                    ..Default::default()
                },
            );
            view = next;
        }
        unplaced
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    crate::model::nearest_rank(sorted, q).unwrap_or(0.0)
}

/// Run one strategy over the scenario.
pub fn run(scn: &Scenario, strategy: Strategy) -> Result<StrategyReport, String> {
    let placement = scn.profile(&scn.placement_profile)?;
    let rebalance_profile = scn.profile(&scn.rebalance.profile)?;
    let step = scn.step_minutes * 60.0;
    let opts = Options {
        role_metadata_key: "role".into(),
        max_age_seconds: (2.0 * step).max(300.0),
        ..Options::default()
    };
    let cfg = &scn.rebalance;
    let mut twin = Twin::new(scn);
    let unplaced = twin.boot(strategy, &placement, &opts);
    let weekly = twin.weekly();
    let uuid_index: HashMap<String, usize> = twin
        .vms
        .iter()
        .enumerate()
        .map(|(i, v)| (v.uuid.clone(), i))
        .collect();
    let host_index: HashMap<String, usize> = twin
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.clone(), i))
        .collect();
    let sizes: HashMap<String, VmSize> = (0..twin.vms.len())
        .map(|i| (twin.vms[i].uuid.clone(), twin.size(i)))
        .collect();

    let steps = (scn.hours * 60.0 / scn.step_minutes).round() as u64;
    let mut samples: Vec<f64> = Vec::with_capacity(steps as usize * twin.vms.len());
    let mut migrations: Vec<Migration> = Vec::new();
    let mut history = History::default();
    let mut detect_state = DetectState::default();
    let mut budget = BudgetState::default();
    let mut moved = Moved::default();
    let mut next_cycle = scn.start_unix;
    let mut vm_demand = vec![0.0; twin.vms.len()];
    for k in 0..steps {
        let t = scn.start_unix + k as f64 * step;
        twin.finish(&mut migrations, t);
        let (demand, steal) = twin.demand_and_steal(scn, k, t, &mut vm_demand);
        samples.extend(twin.vms.iter().filter_map(|v| v.host.map(|h| steal[h])));

        if strategy != Strategy::StewardRebalance {
            continue;
        }
        let mut view = twin.view(t, &demand, &steal, &vm_demand);
        view.weekly = Arc::clone(&weekly);
        history.record(&view, t, cfg.window_seconds * 2.0);
        if t < next_cycle {
            continue;
        }
        next_cycle = t + cfg.interval_seconds;
        let detection = detect(&history, &detect_state, cfg, t);
        let hosts: Vec<Host> = (0..twin.hosts.len()).map(|h| twin.model_host(h)).collect();
        let in_flight: Vec<InFlight> = migrations
            .iter()
            .map(|m| InFlight {
                vm: twin.vms[m.vm].uuid.clone(),
                source_host: twin.hosts[m.from].name.clone(),
                target_host: twin.hosts[m.to].name.clone(),
                az: twin.hosts[m.from].az.clone(),
            })
            .collect();
        let input = PlanInput {
            view: &view,
            hosts: &hosts,
            sizes: &sizes,
            detection: &detection,
            in_flight: &in_flight,
            history: &moved.moves,
            budget: &budget,
            now: t,
        };
        let p = plan(&input, &rebalance_profile, &opts, cfg);
        detect_state = detection.state;
        budget = p.budget.clone();
        for a in &p.actions {
            let (Some(&vm), Some(&from), Some(&to)) = (
                uuid_index.get(&a.vm),
                host_index.get(&a.source_host),
                host_index.get(&a.target_host),
            ) else {
                return Err(format!(
                    "the plan names a VM or host the twin does not have: {} {} -> {}",
                    a.vm, a.source_host, a.target_host
                ));
            };
            migrations.push(moved.start(&mut twin, scn, a, [vm, from, to], t));
        }
    }
    samples.sort_by(f64::total_cmp);

    let (budget_respected, max_hour) = bucket_kept(&moved.starts_per_az, cfg);
    let min_gap = min_hours_between_moves(&moved.moves);
    Ok(StrategyReport {
        strategy: strategy.as_str().into(),
        steal_p50: percentile(&samples, 0.50),
        steal_p95: percentile(&samples, 0.95),
        steal_p99: percentile(&samples, 0.99),
        migrations: moved.moves.len() as u32,
        gib_moved: moved.gib_moved,
        az_violations: twin.az_violations.len() as u32,
        worst_role_stacking: twin.worst_stacking,
        unplaced,
        max_gib_per_az_in_an_hour: max_hour / GIB,
        budget_respected,
        min_hours_between_moves_of_a_vm: min_gap,
        cooldown_respected: min_gap.is_none_or(|g| g >= cfg.cooldown_hours),
        moves: moved.moves_out,
    })
}

/// The moves the rebalancer started in the twin, and what the report needs of them.
#[derive(Default)]
struct Moved {
    moves: Vec<MoveRecord>,
    moves_out: Vec<MoveOut>,
    /// Per AZ: (start, bytes) of each move.
    starts_per_az: BTreeMap<String, Vec<(f64, f64)>>,
    gib_moved: f64,
}

impl Moved {
    /// Start a planned move of VM `vm` from host `from` to `to` (twin indexes) at `t`: the
    /// target's room is taken now, the copy lasts `bytes / rate`.
    fn start(
        &mut self,
        twin: &mut Twin<'_>,
        scn: &Scenario,
        a: &PlannedAction,
        [vm, from, to]: [usize; 3],
        t: f64,
    ) -> Migration {
        let size = twin.size(vm);
        twin.reserve(to, &size, 1.0);
        let seconds = a.bytes as f64 / (scn.migration_gib_per_second * GIB);
        self.moves.push(MoveRecord {
            vm: a.vm.clone(),
            from_host: a.source_host.clone(),
            to_host: a.target_host.clone(),
            at: t,
        });
        self.gib_moved += a.bytes as f64 / GIB;
        self.moves_out.push(MoveOut {
            vm: a.vm.clone(),
            role: scn.roles[twin.vms[vm].role].name.clone(),
            from_host: a.source_host.clone(),
            to_host: a.target_host.clone(),
            az: a.az.clone(),
            at_hours: (t - scn.start_unix) / 3600.0,
            gib: a.bytes as f64 / GIB,
        });
        self.starts_per_az
            .entry(a.az.clone())
            .or_default()
            .push((t, a.bytes as f64));
        Migration {
            vm,
            from,
            to,
            finish: t + seconds,
        }
    }
}

/// The token bucket's promise: over any interval, at most burst + rate x its length. Also the
/// most bytes an AZ started within an hour.
fn bucket_kept(
    starts_per_az: &BTreeMap<String, Vec<(f64, f64)>>,
    cfg: &RebalanceSettings,
) -> (bool, f64) {
    let (burst, rate) = (cfg.burst_bytes(), cfg.refill_bytes_per_second());
    let mut budget_respected = true;
    let mut max_hour = 0.0f64;
    for starts in starts_per_az.values() {
        for i in 0..starts.len() {
            let mut sum = 0.0;
            for s in &starts[i..] {
                sum += s.1;
                let span = s.0 - starts[i].0;
                if sum > burst + rate * span + 1.0 {
                    budget_respected = false;
                }
                if span < 3600.0 {
                    max_hour = max_hour.max(sum);
                }
            }
        }
    }
    (budget_respected, max_hour)
}

/// The shortest time between two moves of one VM, in hours.
fn min_hours_between_moves(moves: &[MoveRecord]) -> Option<f64> {
    let mut per_vm: HashMap<&str, Vec<f64>> = HashMap::new();
    for m in moves {
        per_vm.entry(m.vm.as_str()).or_default().push(m.at);
    }
    per_vm
        .values()
        .flat_map(|ts| ts.windows(2).map(|w| (w[1] - w[0]) / 3600.0))
        .min_by(f64::total_cmp)
}

/// Run every strategy on the scenario.
pub fn simulate(scn: &Scenario) -> Result<Report, String> {
    let strategies = Strategy::ALL
        .iter()
        .map(|s| run(scn, *s))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Report {
        scenario: scn.name.clone(),
        description: scn.description.clone(),
        seed: scn.seed,
        hours: scn.hours,
        azs: scn.azs.len(),
        hosts: scn.azs.len() * scn.hosts_per_az as usize,
        vms: scn.roles.iter().map(|r| r.count as usize).sum(),
        budget_gib_per_az_per_hour: scn.rebalance.budget_gib_per_az_per_hour,
        budget_burst_gib: scn.rebalance.burst_bytes() / GIB,
        cooldown_hours: scn.rebalance.cooldown_hours,
        strategies,
    })
}
