//! Planning (PURE): for each candidate, worst first, a destination in its AZ chosen by the
//! scoring core (operation `live_migrate`), inside every limit. Time is an input; no I/O.
//!
//! A destination must: pass the profile's filters exactly as at placement time (`same_az`,
//! `role_spread`, `steal`'s `max_steal`, ...); be in the VM's AZ (checked here too: a host with
//! no AZ never qualifies); have room for the VM (free vCPU, RAM and, for a block migration,
//! disk, as Placement counts them, allocation ratios applied); stay under the role's per-host
//! cap (the profile's `role_spread.max_per_host` in `hard` mode, counting the moves planned
//! earlier in the cycle; a `soft` cap only weighs, as at placement); not be a host the VM left within
//! `no_return_hours`; and have a predicted steal at least `steal_margin` below the VM's steal.
//! Among those, the highest scoring-core weight wins. Each planned move is applied to the
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

/// One planning cycle.
pub fn plan(input: &PlanInput, profile: &Profile, opts: &Options, cfg: &RebalanceSettings) -> Plan {
    let now = input.now;
    let fig = figures(profile);
    let mut out = Plan {
        generated_at: now,
        mode: cfg.mode,
        actions: Vec::new(),
        skipped: Vec::new(),
        steal_only: input.detection.steal_only.clone(),
        budget: input.budget.clone(),
    };
    let skip = |out: &mut Plan, c: &Candidate, az: Option<&str>, limit: Limit, detail: String| {
        out.skipped.push(Skipped {
            vm: c.vm.clone(),
            source_host: c.host.clone(),
            az: az.map(str::to_string),
            severity: c.severity,
            limit,
            detail,
        })
    };
    let candidates = &input.detection.candidates;
    if let Some(w) = cfg
        .forbidden_windows
        .iter()
        .find(|w| super::Window::parse(w).is_ok_and(|win| win.contains(now)))
    {
        for c in candidates {
            let az = c.host.as_deref().and_then(|h| input.view.host_az(h));
            skip(
                &mut out,
                c,
                az,
                Limit::ForbiddenWindow,
                format!("no migration starts during {w} UTC (rebalance.forbidden_windows)"),
            );
        }
        return out;
    }

    // Working state per AZ, built only for the AZs that have candidates.
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

    let mut counts = Counts::default();
    let in_flight: std::collections::HashSet<&str> =
        input.in_flight.iter().map(|f| f.vm.as_str()).collect();
    for f in input.in_flight {
        counts.add(&f.az, &f.source_host, &f.target_host);
    }
    let cooldown = cfg.cooldown_hours * 3600.0;
    let no_return = cfg.no_return_hours * 3600.0;
    let mut last_move: HashMap<&str, f64> = HashMap::new();
    let mut left: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in input.history {
        let t = last_move.entry(m.vm.as_str()).or_insert(m.at);
        *t = t.max(m.at);
        if m.at > now - no_return {
            left.entry(m.vm.as_str())
                .or_default()
                .push(m.from_host.as_str());
        }
    }

    for c in candidates {
        let source = c.host.as_deref();
        let az = source.and_then(|h| input.view.host_az(h));
        let planned = out.actions.len();
        if planned >= cfg.max_actions_per_cycle as usize {
            skip(
                &mut out,
                c,
                az,
                Limit::MaxActionsPerCycle,
                format!(
                    "this cycle already plans {planned} action(s) (rebalance.max_actions_per_cycle)"
                ),
            );
            continue;
        }
        if in_flight.contains(c.vm.as_str()) {
            skip(
                &mut out,
                c,
                az,
                Limit::InFlight,
                "a migration of this VM is under way".into(),
            );
            continue;
        }
        if let Some(at) = last_move
            .get(c.vm.as_str())
            .filter(|at| **at > now - cooldown)
        {
            skip(
                &mut out,
                c,
                az,
                Limit::Cooldown,
                format!(
                    "moved {:.1} h ago; rebalance.cooldown_hours is {}",
                    (now - at) / 3600.0,
                    cfg.cooldown_hours
                ),
            );
            continue;
        }
        let (Some(source), Some(az)) = (source, az) else {
            let detail = match source {
                None => "the VM's host is unknown".to_string(),
                Some(h) => format!(
                    "the AZ of host {h} is unknown (put it in an aggregate with availability_zone metadata)"
                ),
            };
            skip(&mut out, c, az, Limit::MissingFacts, detail);
            continue;
        };
        let Some(size) = input.sizes.get(&c.vm) else {
            skip(
                &mut out,
                c,
                Some(az),
                Limit::MissingFacts,
                "the VM's flavor size is unknown".into(),
            );
            continue;
        };
        if counts.global >= cfg.max_concurrent {
            skip(
                &mut out,
                c,
                Some(az),
                Limit::MaxConcurrent,
                format!(
                    "{} migration(s) in flight or planned (rebalance.max_concurrent = {})",
                    counts.global, cfg.max_concurrent
                ),
            );
            continue;
        }
        let in_az = counts.per_az.get(az).copied().unwrap_or(0);
        if in_az >= cfg.max_concurrent_per_az {
            skip(
                &mut out,
                c,
                Some(az),
                Limit::MaxConcurrentPerAz,
                format!(
                    "{in_az} migration(s) in AZ {az} in flight or planned (rebalance.max_concurrent_per_az = {})",
                    cfg.max_concurrent_per_az
                ),
            );
            continue;
        }
        let from_source = counts.per_source.get(source).copied().unwrap_or(0);
        if from_source >= cfg.max_concurrent_per_source {
            skip(
                &mut out,
                c,
                Some(az),
                Limit::MaxConcurrentPerSource,
                format!(
                    "{from_source} migration(s) leave host {source} (rebalance.max_concurrent_per_source = {})",
                    cfg.max_concurrent_per_source
                ),
            );
            continue;
        }
        let bytes = size.bytes();
        let bucket = refill(out.budget.per_az.get(az), cfg, now);
        if (bytes as f64) > bucket.tokens {
            skip(
                &mut out,
                c,
                Some(az),
                Limit::ByteBudget,
                format!(
                    "AZ {az} has {} of its migration budget left, the move needs {} (rebalance.budget_gib_per_az_per_hour = {})",
                    gib(bucket.tokens),
                    gib(bytes as f64),
                    cfg.budget_gib_per_az_per_hour
                ),
            );
            continue;
        }
        let Some(work) = azs.get_mut(az) else {
            skip(
                &mut out,
                c,
                Some(az),
                Limit::NoDestination,
                format!("no compute host of AZ {az} is known to Placement"),
            );
            continue;
        };

        // Ask the scoring core, as Nova's scheduler would for this live migration.
        let facts = input.view.vms.get(&c.vm);
        let role = facts.and_then(|f| f.role.clone());
        work.req.instance = Instance {
            uuid: c.vm.clone(),
            project_id: facts.and_then(|f| f.project_id.clone()),
            flavor: Flavor {
                name: facts.and_then(|f| f.flavor.clone()),
                vcpus: Some(size.vcpus),
                memory_mb: Some(size.memory_mb),
                root_gb: Some(size.disk_gb),
                ..Default::default()
            },
            current_host: Some(source.to_string()),
            current_az: Some(az.to_string()),
            ..Default::default()
        };
        work.req.ignore_hosts = vec![source.to_string()];
        let (filtered, weights) =
            scoring::filter_and_weigh(&work.req, profile, input.view, opts, now);
        let role = filtered.role.clone().or(role);
        let vm_load = c.load_per_vcpu * c.vcpus;
        let left_hosts = left.get(c.vm.as_str());
        let index = input.view.role_index();
        let mut refusals = Refusals::default();
        let mut busy_targets = 0usize;
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, host) in work.req.hosts.iter().enumerate() {
            if host.host == source {
                continue;
            }
            if host.az.as_deref() != Some(az) {
                refusals.add("in another AZ");
                continue;
            }
            if let Some(r) = &filtered.rejections[i] {
                refusals.add(format!("rejected by {}", r.plugin));
                continue;
            }
            if let Err(why) = room(host, size) {
                refusals.add(why);
                continue;
            }
            if let (Some(cap), Some(role)) = (fig.role_cap, role.as_deref()) {
                let there = index
                    .hosts_of(role)
                    .and_then(|m| m.get(&host.host))
                    .copied()
                    .unwrap_or(0)
                    + work
                        .added_role
                        .get(&(role.to_string(), i))
                        .copied()
                        .unwrap_or(0);
                if there >= cap {
                    refusals.add(format!("at the cap of {cap} VM(s) of role {role}"));
                    continue;
                }
            }
            if left_hosts.is_some_and(|l| l.contains(&host.host.as_str())) {
                refusals.add("left by this VM within rebalance.no_return_hours");
                continue;
            }
            let Some(predicted) =
                predicted_steal(work, i, vm_load, input, &fig.steal, opts.max_age_seconds)
            else {
                refusals.add("with unknown steal");
                continue;
            };
            if predicted > c.steal - cfg.steal_margin {
                refusals.add(format!(
                    "not predicted {:.0} points of steal below the VM's {:.1}%",
                    cfg.steal_margin * 100.0,
                    c.steal * 100.0
                ));
                continue;
            }
            let w = weights[i];
            if best.is_some_and(|(_, bw, _)| bw >= w) {
                continue;
            }
            if counts.per_target.get(&host.host).copied().unwrap_or(0)
                >= cfg.max_concurrent_per_target
            {
                busy_targets += 1;
                refusals.add("already receiving rebalance.max_concurrent_per_target migration(s)");
                continue;
            }
            best = Some((i, w, predicted));
        }
        let others = work.req.hosts.iter().filter(|h| h.host != source).count();
        let Some((i, weight, predicted)) = best else {
            let limit = if busy_targets > 0 {
                Limit::MaxConcurrentPerTarget
            } else {
                Limit::NoDestination
            };
            skip(&mut out, c, Some(az), limit, refusals.summary(others, az));
            continue;
        };

        // Apply the move to the working state before the next decision.
        let target = work.req.hosts[i].host.clone();
        {
            let h = Arc::make_mut(&mut work.req.hosts[i]);
            h.vcpus_used = h.vcpus_used.map(|u| u + size.vcpus);
            h.memory_mb_free = h.memory_mb_free.map(|f| f - size.memory_mb);
            if size.block_migration {
                h.disk_gb_free = h.disk_gb_free.map(|f| f - size.disk_gb);
            }
        }
        work.added_load[i] += vm_load;
        if let Some(role) = role.as_ref() {
            *work.added_role.entry((role.clone(), i)).or_default() += 1;
        }
        counts.add(az, source, &target);
        out.budget.per_az.insert(
            az.to_string(),
            Bucket {
                tokens: bucket.tokens - bytes as f64,
                updated_at: bucket.updated_at,
            },
        );
        out.actions.push(PlannedAction {
            vm: c.vm.clone(),
            source_host: source.to_string(),
            target_host: target.clone(),
            az: az.to_string(),
            role: role.clone(),
            reason: format!(
                "load {:.2}/vCPU with {:.1}% steal on {source} over the window; {target} is predicted at {:.1}% steal and scores {:.2} (best of {others} host(s) in AZ {az})",
                c.load_per_vcpu,
                c.steal * 100.0,
                predicted * 100.0,
                weight
            ),
            load_per_vcpu: c.load_per_vcpu,
            steal_at_source: c.steal,
            predicted_steal_at_target: predicted,
            severity: c.severity,
            score: weight,
            bytes,
            block_migration: size.block_migration,
            vcpus: size.vcpus,
            memory_mb: size.memory_mb,
            disk_gb: size.disk_gb,
        });
    }
    // Every AZ the plan looked at carries its refilled bucket forward, spent or not.
    for az in azs.keys() {
        if !out.budget.per_az.contains_key(az) || !out.actions.iter().any(|a| &a.az == az) {
            let b = refill(input.budget.per_az.get(az), cfg, now);
            out.budget.per_az.insert(az.clone(), b);
        }
    }
    out
}
