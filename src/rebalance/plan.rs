//! Planning (PURE): for each candidate, worst first, a destination in its AZ chosen by the
//! scoring core (operation `live_migrate`), inside every limit. Time is an input; no I/O.
//!
//! A destination must: pass the profile's filters exactly as at placement time (`same_az`,
//! `role_spread`, `steal`'s `max_steal`, ...); be in the VM's AZ (checked here too: a host with
//! no AZ never qualifies); have room for the VM (free vCPU, RAM and, for a block migration,
//! disk, as Placement counts them, allocation ratios applied); stay under the role's per-host
//! cap (the profile's `role_spread.max_per_host` in `hard` mode, counting the moves planned
//! earlier in the cycle; a `soft` cap only weighs, as at placement); not be a host the VM left within
//! `no_return_hours`; have its compute service enabled and up (Nova's scheduler and conductor
//! refuse any other, after the VM was drained); have a predicted steal at least `steal_margin`
//! below the VM's steal; pay for its copy (the steal it removes on the VM's busy cores over
//! `gain_hours` must exceed the core-seconds its copy takes on both hosts, at
//! `copy_gib_per_second` and `copy_cpu_cores`); and, with `peak_margin` set and roles learned, a
//! predicted peak over the coming day (the `steal` plugin's peak fit, with the VM) at least
//! `peak_margin` below the VM's predicted peak where it runs. Among those, the highest
//! scoring-core weight wins (the same weight carries the peak fit, so the destination is chosen
//! for the day ahead, not the minute). Each planned move is applied to the
//! working state (room, role counts, CPU use of the target; concurrency counters; the AZ's
//! byte bucket) before the next candidate is considered.
//!
//! Predicted steal on a target: the steal plugin's blend of the host's fresh steal and its
//! weekly profile over the plugin's horizon, raised to the overload the VM's load would add
//! (`1 - capacity / demand` when the host's CPU demand exceeds its vCPUs). A host with neither
//! a fresh steal sample nor a profile is not a destination (unknown is not zero).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    ClusterView, Flavor, Host, Instance, Operation, SchedulingRequest, HOURS_PER_WEEK,
};
use crate::scoring::plugins::{RoleSpread, RoleSpreadMode, Steal};
use crate::scoring::{self, Options, Profile};

use super::detect::{Candidate, Detection};
use super::{
    Bucket, BudgetState, InFlight, Limit, MoveRecord, Plan, PlannedAction, RebalanceSettings,
    Skipped, GIB,
};

/// A VM's size and disk kind, from its flavor and its block device mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmSize {
    pub vcpus: f64,
    pub memory_mb: f64,
    /// Local (ephemeral + root, not volume-backed) disk in GiB.
    pub disk_gb: f64,
    /// The VM has local disk: moving it copies the disk too.
    pub block_migration: bool,
}

impl VmSize {
    /// Bytes a live migration moves: RAM, plus the local disk for a block migration.
    pub fn bytes(&self) -> u64 {
        let ram = self.memory_mb.max(0.0) * 1024.0 * 1024.0;
        let disk = if self.block_migration {
            self.disk_gb.max(0.0) * GIB
        } else {
            0.0
        };
        (ram + disk) as u64
    }
}

/// Everything one planning cycle reads. The caller gathers it (cluster view, Placement's
/// compute nodes, the journal, the stored budget) and passes `now`.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub view: &'a ClusterView,
    /// Compute nodes with their AZ and Placement's room (totals, use, free, ratios).
    pub hosts: &'a [Host],
    /// Hosts whose compute service Nova's scheduler places nothing on (disabled or down), with
    /// the refusal's wording: never a destination, still a source.
    pub closed: &'a HashMap<String, &'static str>,
    /// Size per VM uuid.
    pub sizes: &'a HashMap<String, VmSize>,
    pub detection: &'a Detection,
    pub in_flight: &'a [InFlight],
    /// Finished moves (at least those within `max(cooldown, no_return)`).
    pub history: &'a [MoveRecord],
    pub budget: &'a BudgetState,
    pub now: f64,
}

/// The parts of the profile the planner needs beyond filter and weigh.
struct ProfileFigures {
    role_cap: Option<u32>,
    steal: Steal,
}

fn figures(profile: &Profile) -> ProfileFigures {
    let params = |name: &str| {
        profile
            .plugins
            .iter()
            .find(|p| p.plugin.name() == name)
            .map(|p| p.params.clone())
    };
    let role_cap = params("role_spread")
        .and_then(|p| serde_json::from_value(p).ok())
        .and_then(|p| RoleSpread::from_params(p).ok())
        .filter(|r| r.mode == RoleSpreadMode::Hard)
        .map(|r| r.max_per_host);
    let empty = || serde_json::Value::Object(Default::default());
    let steal = serde_json::from_value(params("steal").unwrap_or_else(empty))
        .ok()
        .and_then(|p| Steal::from_params(p).ok())
        .or_else(|| {
            serde_json::from_value(empty())
                .ok()
                .and_then(|p| Steal::from_params(p).ok())
        });
    ProfileFigures {
        role_cap,
        // The defaults always build; a profile's own parameters were validated at load.
        steal: steal.unwrap_or(Steal {
            saturation: 0.25,
            max_steal: None,
            horizon_hours: 4,
            predict_weight: 0.5,
            overlap_weight: 0.3,
            peak_horizon_hours: 24,
            peak_saturation: 1.5,
            unknown_load_per_vcpu: 0.5,
        }),
    }
}

/// The hosts of one AZ as a scheduling request whose host list is the working state.
struct AzWork {
    req: SchedulingRequest,
    /// Extra CPU demand (busy vCPUs) planned onto each host this cycle.
    added_load: Vec<f64>,
    /// (role, host index) -> VMs of that role planned onto the host this cycle.
    added_role: HashMap<(String, usize), u32>,
}

/// Concurrency counters: in flight plus planned.
#[derive(Default)]
struct Counts {
    global: u32,
    per_az: HashMap<String, u32>,
    per_source: HashMap<String, u32>,
    per_target: HashMap<String, u32>,
}

impl Counts {
    fn add(&mut self, az: &str, source: &str, target: &str) {
        self.global += 1;
        *self.per_az.entry(az.to_string()).or_default() += 1;
        *self.per_source.entry(source.to_string()).or_default() += 1;
        *self.per_target.entry(target.to_string()).or_default() += 1;
    }
}

fn gib(bytes: f64) -> String {
    format!("{:.1} GiB", bytes / GIB)
}

/// Why hosts were turned down, counted for the skipped candidate's detail.
#[derive(Default)]
struct Refusals(BTreeMap<String, u32>);

impl Refusals {
    fn add(&mut self, why: impl Into<String>) {
        *self.0.entry(why.into()).or_default() += 1;
    }

    fn summary(&self, hosts: usize, az: &str) -> String {
        let parts: Vec<String> = self.0.iter().map(|(w, n)| format!("{n} {w}")).collect();
        format!(
            "none of the {hosts} other host(s) in AZ {az} qualifies: {}",
            if parts.is_empty() {
                "there are none".to_string()
            } else {
                parts.join(", ")
            }
        )
    }
}

/// The steal a VM would see on `host` of `work` after the moves planned so far and its own.
fn predicted_steal(
    work: &AzWork,
    i: usize,
    vm_load: f64,
    input: &PlanInput,
    steal: &Steal,
    max_age: f64,
) -> Option<f64> {
    let host = &work.req.hosts[i];
    let facts = input.view.hosts.get(&host.host);
    let fresh = facts.filter(|f| input.now - f.observed_at <= max_age);
    let now = fresh.and_then(|f| f.steal);
    let start = crate::model::hour_of_week(input.now);
    let predicted = input.view.weekly.host_steal.get(&host.host).and_then(|p| {
        (0..=steal.horizon_hours as usize)
            .filter_map(|a| p.at((start + a) % HOURS_PER_WEEK))
            .max_by(f64::total_cmp)
    });
    let blended = match (now, predicted) {
        (None, None) => return None,
        (Some(n), None) => n,
        (None, Some(p)) => p,
        (Some(n), Some(p)) => (1.0 - steal.predict_weight) * n + steal.predict_weight * p,
    };
    let cpus = host
        .vcpus_total
        .or_else(|| facts.and_then(|f| f.vcpus))
        .filter(|c| *c > 0.0);
    let overload = match (cpus, fresh.and_then(|f| f.cpu_use)) {
        (Some(cpus), Some(used)) => {
            let demand = used * cpus + work.added_load[i] + vm_load;
            if demand > cpus {
                1.0 - cpus / demand
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    Some(blended.max(overload))
}

/// Does the VM fit on the host (Placement's capacity: `total * ratio - used`)?
fn room(host: &Host, size: &VmSize) -> Result<(), &'static str> {
    let (Some(total), Some(used)) = (host.vcpus_total, host.vcpus_used) else {
        return Err("with unknown vCPU room");
    };
    if total * host.cpu_allocation_ratio.unwrap_or(1.0) - used < size.vcpus {
        return Err("without vCPU room");
    }
    let (Some(total), Some(free)) = (host.memory_mb_total, host.memory_mb_free) else {
        return Err("with unknown RAM room");
    };
    let ratio = host.ram_allocation_ratio.unwrap_or(1.0);
    if total * ratio - (total - free) < size.memory_mb {
        return Err("without RAM room");
    }
    if size.block_migration && size.disk_gb > 0.0 {
        match host.disk_gb_free {
            Some(free) if free >= size.disk_gb => {}
            Some(_) => return Err("without disk room"),
            None => return Err("with unknown disk room"),
        }
    }
    Ok(())
}

/// Top the AZ's bucket up to `now`. A bucket never seen starts full.
fn refill(bucket: Option<&Bucket>, cfg: &RebalanceSettings, now: f64) -> Bucket {
    let burst = cfg.burst_bytes();
    match bucket {
        None => Bucket {
            tokens: burst,
            updated_at: now,
        },
        Some(b) => {
            let elapsed = (now - b.updated_at).max(0.0);
            Bucket {
                tokens: (b.tokens + elapsed * cfg.refill_bytes_per_second()).min(burst),
                updated_at: now.max(b.updated_at),
            }
        }
    }
}

/// One planning cycle: the forbidden windows first, then per candidate, worst first, the
/// limits, then a destination; each planned move updates the working state.
pub fn plan(input: &PlanInput, profile: &Profile, opts: &Options, cfg: &RebalanceSettings) -> Plan {
    let now = input.now;
    let mut out = Plan {
        generated_at: now,
        mode: cfg.mode,
        actions: Vec::new(),
        skipped: Vec::new(),
        steal_only: input.detection.steal_only.clone(),
        budget: input.budget.clone(),
    };
    let candidates = &input.detection.candidates;
    if let Some(w) = forbidden_window(cfg, now) {
        for c in candidates {
            let az = c.host.as_deref().and_then(|h| input.view.host_az(h));
            let detail =
                format!("no migration starts during {w} UTC (rebalance.forbidden_windows)");
            out.skipped
                .push(skipped(c, az, Limit::ForbiddenWindow, detail));
        }
        return out;
    }
    let mut cycle = Cycle {
        input,
        profile,
        opts,
        cfg,
        fig: figures(profile),
        azs: az_work(input, candidates),
        counts: Counts::default(),
        past: Past::of(input, cfg),
    };
    for f in input.in_flight {
        cycle.counts.add(&f.az, &f.source_host, &f.target_host);
    }
    for c in candidates {
        match cycle.plan_one(c, &mut out) {
            Ok(action) => out.actions.push(action),
            Err(s) => out.skipped.push(s),
        }
    }
    // Every AZ the plan looked at carries its refilled bucket forward, spent or not.
    for az in cycle.azs.keys() {
        if !out.budget.per_az.contains_key(az) || !out.actions.iter().any(|a| &a.az == az) {
            let b = refill(input.budget.per_az.get(az), cfg, now);
            out.budget.per_az.insert(az.clone(), b);
        }
    }
    out
}

/// The forbidden window `now` falls in, if any.
fn forbidden_window(cfg: &RebalanceSettings, now: f64) -> Option<&str> {
    cfg.forbidden_windows
        .iter()
        .find(|w| super::Window::parse(w).is_ok_and(|win| win.contains(now)))
        .map(String::as_str)
}

fn skipped(c: &Candidate, az: Option<&str>, limit: Limit, detail: String) -> Skipped {
    Skipped {
        vm: c.vm.clone(),
        source_host: c.host.clone(),
        az: az.map(str::to_string),
        severity: c.severity,
        limit,
        detail,
    }
}

/// Working state per AZ, built only for the AZs that have candidates.
fn az_work(input: &PlanInput, candidates: &[Candidate]) -> HashMap<String, AzWork> {
    let host_az = |h: &Host| -> Option<String> {
        h.az.clone()
            .or_else(|| input.view.host_az(&h.host).map(str::to_string))
    };
    let wanted: std::collections::HashSet<&str> = candidates
        .iter()
        .filter_map(|c| c.host.as_deref().and_then(|h| input.view.host_az(h)))
        .collect();
    let mut azs: HashMap<String, AzWork> = HashMap::new();
    for h in input.hosts {
        let Some(az) = host_az(h).filter(|a| wanted.contains(a.as_str())) else {
            continue;
        };
        let work = azs.entry(az.clone()).or_insert_with(|| AzWork {
            req: SchedulingRequest {
                operation: Operation::LiveMigrate,
                instance: Instance::default(),
                ignore_hosts: Vec::new(),
                hosts: Vec::new(),
            },
            added_load: Vec::new(),
            added_role: HashMap::new(),
        });
        let mut h = h.clone();
        h.az = Some(az);
        // Roles come from steward's view; the instance lists would only be copied for nothing.
        h.instance_uuids = Vec::new();
        work.req.hosts.push(Arc::new(h));
        work.added_load.push(0.0);
    }
    azs
}

/// What the journal's finished moves say: when each VM last moved, and the hosts it left
/// within `no_return_hours`.
struct Past<'a> {
    last_move: HashMap<&'a str, f64>,
    left: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Past<'a> {
    fn of(input: &PlanInput<'a>, cfg: &RebalanceSettings) -> Past<'a> {
        let no_return = cfg.no_return_hours * 3600.0;
        let mut past = Past {
            last_move: HashMap::new(),
            left: HashMap::new(),
        };
        for m in input.history {
            let t = past.last_move.entry(m.vm.as_str()).or_insert(m.at);
            *t = t.max(m.at);
            if m.at > input.now - no_return {
                past.left
                    .entry(m.vm.as_str())
                    .or_default()
                    .push(m.from_host.as_str());
            }
        }
        past
    }
}

/// A candidate that passed the limits: where it is, its size and its AZ's refilled bucket.
struct Passed<'c> {
    source: &'c str,
    az: &'c str,
    size: &'c VmSize,
    bucket: Bucket,
}

/// A destination: the host's index in its AZ's work, its weight and predicted steal.
struct Target {
    index: usize,
    weight: f64,
    predicted: f64,
}

/// One planning cycle's working state.
struct Cycle<'a> {
    input: &'a PlanInput<'a>,
    profile: &'a Profile,
    opts: &'a Options,
    cfg: &'a RebalanceSettings,
    fig: ProfileFigures,
    azs: HashMap<String, AzWork>,
    counts: Counts,
    past: Past<'a>,
}

impl<'a> Cycle<'a> {
    /// One candidate: the limits, a destination, then the move applied to the working state.
    fn plan_one(&mut self, c: &'a Candidate, out: &mut Plan) -> Result<PlannedAction, Skipped> {
        let p = self.limits(c, out)?;
        let skip = |limit, detail| skipped(c, Some(p.az), limit, detail);
        if !self.azs.contains_key(p.az) {
            let detail = format!("no compute host of AZ {} is known to Placement", p.az);
            return Err(skip(Limit::NoDestination, detail));
        }
        let role = self.ask_scoring(c, &p);
        let (target, role) = self.destination(c, &p, role).map_err(|(l, d)| skip(l, d))?;
        Ok(self.apply(c, &p, target, role, out))
    }

    /// The limits, in order: actions per cycle, in flight, cooldown, known facts, then the
    /// concurrency limits and the AZ's byte budget.
    fn limits(&self, c: &'a Candidate, out: &Plan) -> Result<Passed<'a>, Skipped> {
        let (cfg, now) = (self.cfg, self.input.now);
        let source = c.host.as_deref();
        let az = source.and_then(|h| self.input.view.host_az(h));
        let planned = out.actions.len();
        if planned >= cfg.max_actions_per_cycle as usize {
            let detail = format!(
                "this cycle already plans {planned} action(s) (rebalance.max_actions_per_cycle)"
            );
            return Err(skipped(c, az, Limit::MaxActionsPerCycle, detail));
        }
        if self.input.in_flight.iter().any(|f| f.vm == c.vm) {
            let detail = "a migration of this VM is under way".into();
            return Err(skipped(c, az, Limit::InFlight, detail));
        }
        let cooldown = cfg.cooldown_hours * 3600.0;
        if let Some(at) = self
            .past
            .last_move
            .get(c.vm.as_str())
            .filter(|at| **at > now - cooldown)
        {
            let detail = format!(
                "moved {:.1} h ago; rebalance.cooldown_hours is {}",
                (now - at) / 3600.0,
                cfg.cooldown_hours
            );
            return Err(skipped(c, az, Limit::Cooldown, detail));
        }
        let (Some(source), Some(az)) = (source, az) else {
            let detail = match source {
                None => "the VM's host is unknown".to_string(),
                Some(h) => format!(
                    "the AZ of host {h} is unknown (put it in an aggregate with availability_zone metadata)"
                ),
            };
            return Err(skipped(c, az, Limit::MissingFacts, detail));
        };
        let Some(size) = self.input.sizes.get(&c.vm) else {
            let detail = "the VM's flavor size is unknown".into();
            return Err(skipped(c, Some(az), Limit::MissingFacts, detail));
        };
        if let Some((limit, detail)) = self.concurrency(az, source) {
            return Err(skipped(c, Some(az), limit, detail));
        }
        let bucket = refill(out.budget.per_az.get(az), cfg, now);
        let bytes = size.bytes() as f64;
        if bytes > bucket.tokens {
            let detail = format!(
                "AZ {az} has {} of its migration budget left, the move needs {} (rebalance.budget_gib_per_az_per_hour = {})",
                gib(bucket.tokens),
                gib(bytes),
                cfg.budget_gib_per_az_per_hour
            );
            return Err(skipped(c, Some(az), Limit::ByteBudget, detail));
        }
        Ok(Passed {
            source,
            az,
            size,
            bucket,
        })
    }

    /// The concurrency limit a move out of `source` in `az` would pass: global, per AZ, per
    /// source (per target is checked per destination).
    fn concurrency(&self, az: &str, source: &str) -> Option<(Limit, String)> {
        let (cfg, counts) = (self.cfg, &self.counts);
        if counts.global >= cfg.max_concurrent {
            return Some((
                Limit::MaxConcurrent,
                format!(
                    "{} migration(s) in flight or planned (rebalance.max_concurrent = {})",
                    counts.global, cfg.max_concurrent
                ),
            ));
        }
        let in_az = counts.per_az.get(az).copied().unwrap_or(0);
        if in_az >= cfg.max_concurrent_per_az {
            return Some((
                Limit::MaxConcurrentPerAz,
                format!(
                    "{in_az} migration(s) in AZ {az} in flight or planned (rebalance.max_concurrent_per_az = {})",
                    cfg.max_concurrent_per_az
                ),
            ));
        }
        let from_source = counts.per_source.get(source).copied().unwrap_or(0);
        if from_source >= cfg.max_concurrent_per_source {
            return Some((
                Limit::MaxConcurrentPerSource,
                format!(
                    "{from_source} migration(s) leave host {source} (rebalance.max_concurrent_per_source = {})",
                    cfg.max_concurrent_per_source
                ),
            ));
        }
        None
    }

    /// Ask the scoring core, as Nova's scheduler would for this live migration: the hosts'
    /// filter verdicts and weights, and the VM's role.
    fn ask_scoring(&mut self, c: &Candidate, p: &Passed) -> Scored {
        let input = self.input;
        let work = self.azs.get_mut(p.az).expect("checked by plan_one");
        let facts = input.view.vms.get(&c.vm);
        let role = facts.and_then(|f| f.role.clone());
        work.req.instance = Instance {
            uuid: c.vm.clone(),
            project_id: facts.and_then(|f| f.project_id.clone()),
            flavor: Flavor {
                name: facts.and_then(|f| f.flavor.clone()),
                vcpus: Some(p.size.vcpus),
                memory_mb: Some(p.size.memory_mb),
                root_gb: Some(p.size.disk_gb),
                ..Default::default()
            },
            current_host: Some(p.source.to_string()),
            current_az: Some(p.az.to_string()),
            ..Default::default()
        };
        work.req.ignore_hosts = vec![p.source.to_string()];
        let (filtered, weights) =
            scoring::filter_and_weigh(&work.req, self.profile, input.view, self.opts, input.now);
        Scored {
            role: filtered.role.clone().or(role),
            rejected_by: filtered
                .rejections
                .iter()
                .map(|r| r.as_ref().map(|r| r.plugin.to_string()))
                .collect(),
            weights,
        }
    }

    /// The best destination in the VM's AZ, or the limit that stopped every host and why.
    fn destination(
        &self,
        c: &Candidate,
        p: &Passed,
        scored: Scored,
    ) -> Result<(Target, Option<String>), (Limit, String)> {
        let work = &self.azs[p.az];
        let vm_load = c.load_per_vcpu * c.vcpus;
        let mut refusals = Refusals::default();
        let mut busy_targets = 0usize;
        let mut best: Option<Target> = None;
        let peaks = match self.cfg.peak_margin {
            Some(_) => self.peaks(work, p.source),
            None => Peaks::default(),
        };
        // The copy costs the same whichever host it goes to.
        let cost = self.copy_cost(p.size);
        for (i, host) in work.req.hosts.iter().enumerate() {
            if host.host == p.source {
                continue;
            }
            if let Err(why) = self.acceptable(c, p, &scored, work, i) {
                refusals.add(why);
                continue;
            }
            let predicted = match self.steal_margin(c, work, i, vm_load) {
                Ok(predicted) => predicted,
                Err(why) => {
                    refusals.add(why);
                    continue;
                }
            };
            if let Err(why) = self.peak_gain(&peaks, i) {
                refusals.add(why);
                continue;
            }
            let gain = self.gain(c, predicted, vm_load);
            if gain <= cost {
                refusals.add(format!(
                    "predicted to give back less than the copy's {cost:.0} core-seconds over rebalance.gain_hours"
                ));
                continue;
            }
            let weight = scored.weights[i];
            if best.as_ref().is_some_and(|b| b.weight >= weight) {
                continue;
            }
            if self.target_busy(&host.host) {
                busy_targets += 1;
                refusals.add("already receiving rebalance.max_concurrent_per_target migration(s)");
                continue;
            }
            best = Some(Target {
                index: i,
                weight,
                predicted,
            });
        }
        match best {
            Some(t) => Ok((t, scored.role)),
            None => {
                let others = work.req.hosts.iter().filter(|h| h.host != p.source).count();
                let limit = if busy_targets > 0 {
                    Limit::MaxConcurrentPerTarget
                } else {
                    Limit::NoDestination
                };
                Err((limit, refusals.summary(others, p.az)))
            }
        }
    }

    /// Host `i` of the AZ: same AZ, open to new instances, passes the filters, has room, is under the role cap and is
    /// not a host the VM left recently.
    fn acceptable(
        &self,
        c: &Candidate,
        p: &Passed,
        scored: &Scored,
        work: &AzWork,
        i: usize,
    ) -> Result<(), String> {
        let host = &work.req.hosts[i];
        if host.az.as_deref() != Some(p.az) {
            return Err("in another AZ".into());
        }
        if let Some(why) = self.input.closed.get(&host.host) {
            return Err((*why).to_string());
        }
        if let Some(plugin) = &scored.rejected_by[i] {
            return Err(format!("rejected by {plugin}"));
        }
        room(host, p.size).map_err(str::to_string)?;
        self.role_cap(scored.role.as_deref(), work, i)?;
        let left = self.past.left.get(c.vm.as_str());
        if left.is_some_and(|l| l.contains(&host.host.as_str())) {
            return Err("left by this VM within rebalance.no_return_hours".into());
        }
        Ok(())
    }

    /// The profile's hard cap of VMs of one role per host, counting this cycle's moves.
    fn role_cap(&self, role: Option<&str>, work: &AzWork, i: usize) -> Result<(), String> {
        let (Some(cap), Some(role)) = (self.fig.role_cap, role) else {
            return Ok(());
        };
        let host = &work.req.hosts[i].host;
        let index = self.input.view.role_index();
        let there = index
            .hosts_of(role)
            .and_then(|m| m.get(host))
            .copied()
            .unwrap_or(0)
            + work
                .added_role
                .get(&(role.to_string(), i))
                .copied()
                .unwrap_or(0);
        if there >= cap {
            return Err(format!("at the cap of {cap} VM(s) of role {role}"));
        }
        Ok(())
    }

    /// The target's predicted steal, if it is at least `steal_margin` below the VM's.
    fn steal_margin(
        &self,
        c: &Candidate,
        work: &AzWork,
        i: usize,
        vm_load: f64,
    ) -> Result<f64, String> {
        let (cfg, max_age) = (self.cfg, self.opts.max_age_seconds);
        let Some(predicted) =
            predicted_steal(work, i, vm_load, self.input, &self.fig.steal, max_age)
        else {
            return Err("with unknown steal".into());
        };
        if predicted > c.steal - cfg.steal_margin {
            return Err(format!(
                "not predicted {:.0} points of steal below the VM's {:.1}%",
                cfg.steal_margin * 100.0,
                c.steal * 100.0
            ));
        }
        Ok(predicted)
    }

    /// Core-seconds the move is predicted to give back: the steal it removes (the VM's now,
    /// less the target's predicted) on the VM's busy cores, over `gain_hours`.
    fn gain(&self, c: &Candidate, predicted: f64, vm_load: f64) -> f64 {
        (c.steal - predicted).max(0.0) * vm_load.max(0.0) * self.cfg.gain_hours * 3600.0
    }

    /// Core-seconds the copy is predicted to take: its bytes at `copy_gib_per_second`, with
    /// `copy_cpu_cores` busy on the source and on the target.
    fn copy_cost(&self, size: &VmSize) -> f64 {
        let seconds = size.bytes() as f64 / GIB / self.cfg.copy_gib_per_second;
        seconds * 2.0 * self.cfg.copy_cpu_cores
    }

    /// The predicted peak (busy share of its CPUs at the highest hour of the steal plugin's
    /// peak horizon) with the moving VM on each host of the AZ, and on its source; `None`
    /// where no role has been learned yet.
    fn peaks(&self, work: &AzWork, source: &str) -> Peaks {
        let ctx = scoring::Context::new(&work.req, self.input.view, self.opts, self.input.now);
        let steal = &self.fig.steal;
        let share = |i: usize| steal.peak_fit(&ctx, i).map(|f| f.after / f.cpus);
        let hosts: Vec<Option<f64>> = (0..work.req.hosts.len()).map(share).collect();
        let at_source = work
            .req
            .hosts
            .iter()
            .position(|h| h.host == source)
            .and_then(|i| hosts[i]);
        Peaks { hosts, at_source }
    }

    /// Gain over cost: the VM's predicted peak on target `i` must be at least `peak_margin`
    /// below its predicted peak where it runs, or the move is not worth its copy.
    fn peak_gain(&self, peaks: &Peaks, i: usize) -> Result<(), String> {
        if peaks.hosts.is_empty() {
            return Ok(());
        }
        let (Some(margin), Some(source), Some(target)) =
            (self.cfg.peak_margin, peaks.at_source, peaks.hosts[i])
        else {
            return Ok(());
        };
        if target > source - margin {
            return Err(format!(
                "not predicted {:.0} points of peak below its host's {:.0}%",
                margin * 100.0,
                source * 100.0
            ));
        }
        Ok(())
    }

    /// `rebalance.max_concurrent_per_target`: the host already receives enough migrations.
    fn target_busy(&self, host: &str) -> bool {
        self.counts.per_target.get(host).copied().unwrap_or(0) >= self.cfg.max_concurrent_per_target
    }

    /// Apply the move to the working state before the next decision, and describe it.
    fn apply(
        &mut self,
        c: &Candidate,
        p: &Passed,
        t: Target,
        role: Option<String>,
        out: &mut Plan,
    ) -> PlannedAction {
        let (az, source, size) = (p.az, p.source, p.size);
        let work = self.azs.get_mut(az).expect("checked by plan_one");
        let others = work.req.hosts.iter().filter(|h| h.host != source).count();
        let vm_load = c.load_per_vcpu * c.vcpus;
        let target = work.req.hosts[t.index].host.clone();
        {
            let h = Arc::make_mut(&mut work.req.hosts[t.index]);
            h.vcpus_used = h.vcpus_used.map(|u| u + size.vcpus);
            h.memory_mb_free = h.memory_mb_free.map(|f| f - size.memory_mb);
            if size.block_migration {
                h.disk_gb_free = h.disk_gb_free.map(|f| f - size.disk_gb);
            }
        }
        work.added_load[t.index] += vm_load;
        if let Some(role) = role.as_ref() {
            *work.added_role.entry((role.clone(), t.index)).or_default() += 1;
        }
        self.counts.add(az, source, &target);
        let bytes = size.bytes();
        out.budget.per_az.insert(
            az.to_string(),
            Bucket {
                tokens: p.bucket.tokens - bytes as f64,
                updated_at: p.bucket.updated_at,
            },
        );
        PlannedAction {
            vm: c.vm.clone(),
            source_host: source.to_string(),
            target_host: target.clone(),
            az: az.to_string(),
            role,
            reason: format!(
                "load {:.2}/vCPU with {:.1}% steal on {source} over the window; {target} is predicted at {:.1}% steal and scores {:.2} (best of {others} host(s) in AZ {az})",
                c.load_per_vcpu,
                c.steal * 100.0,
                t.predicted * 100.0,
                t.weight
            ),
            load_per_vcpu: c.load_per_vcpu,
            steal_at_source: c.steal,
            predicted_steal_at_target: t.predicted,
            predicted_gain_core_seconds: self.gain(c, t.predicted, vm_load),
            copy_cost_core_seconds: self.copy_cost(size),
            severity: c.severity,
            score: t.weight,
            bytes,
            block_migration: size.block_migration,
            vcpus: size.vcpus,
            memory_mb: size.memory_mb,
            disk_gb: size.disk_gb,
        }
    }
}

/// Predicted peak shares with the moving VM: per host of its AZ, and on its source.
#[derive(Default)]
struct Peaks {
    hosts: Vec<Option<f64>>,
    at_source: Option<f64>,
}

/// The scoring core's answer for one candidate.
struct Scored {
    role: Option<String>,
    /// Per host of the AZ: the plugin that rejected it, if any.
    rejected_by: Vec<Option<String>>,
    weights: Vec<f64>,
}
