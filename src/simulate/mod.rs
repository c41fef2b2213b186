//! The digital twin (PURE): a synthetic cloud whose VMs follow daily demand curves, run under
//! several strategies on the very same workload, with the service's own scoring and planning.
//!
//! Strategies (`Scenario::strategies`):
//! - `nova-default`: Nova 34's default filters and weighers as nova-scheduler computes them
//!   (`nova`: RAM, CPU and disk weighers normalised and summed, `host_subset_size = 1`);
//! - `nova-groups`: the same, each role in one soft-anti-affinity server group;
//! - `steward-deployed`: Nova's weighers plus StewardFilter and StewardWeigher at the shipped
//!   snippet's `[steward] weight_multiplier` (`steward_weight_multiplier`), and with the
//!   rebalancer (`-rebalance`); `steward-deployed-x<M>` at a recommended multiplier;
//! - `steward-placement`: steward's weight as the only vote (an upper bound, not a deployment).
//!
//! The rebalancer runs the service's `rebalance::detect` and `rebalance::plan` every
//! `rebalance.interval_seconds`, with moves executed as `auto` mode would: the target is
//! reserved at start, the VM leaves its source when the copy of its bytes at
//! `migration_gib_per_second` is done. Steal and unserved CPU: see `measure`.
//!
//! The cloud can be alive: a role's VMs arrive over the run (`arrivals_per_hour`) and are
//! deleted after their lifetime (`lifetime_hours`), drawn up front, the same for every
//! strategy. A step deletes the VMs due to leave before it boots the VMs due, so a boot can
//! use the room a departure freed.
//!
//! The scenario text comes in as a string and the report goes out as data: no I/O here.

pub mod measure;
pub mod migration;
pub mod nova;
pub mod recorded;
pub mod report;
pub mod telemetry;
#[cfg(test)]
mod tests;
mod twin;
pub mod workload;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{ClusterView, Host};
use crate::rebalance::detect::{detect, DetectState, History};
use crate::rebalance::plan::{plan, PlanInput, VmSize};
use crate::rebalance::{BudgetState, InFlight, MoveRecord, RebalanceSettings, GIB};
use crate::scoring::{builtin_profiles, Options, Profile, ProfileSpec};

use twin::{BootContext, Observed, Twin};
use workload::{Curve, Rng};

/// Monday 2026-11-23 00:00 UTC: a week starts there, so hour-of-week profiles line up.
pub const DEFAULT_START: f64 = 1_795_392_000.0;

/// The most VMs a role's arrivals may boot over a run (the expected number): the workload
/// holds every VM's demand at every step.
const MAX_ARRIVALS: f64 = 100_000.0;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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

/// One kind of host in `[[host_kinds]]`: its size, as `[host]`'s, and how many of it each AZ
/// has.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostKind {
    /// Hosts of this kind in every AZ.
    pub count_per_az: u32,
    pub pcpus: f64,
    pub memory_mb: f64,
    pub disk_gb: f64,
    #[serde(default = "four")]
    pub cpu_allocation_ratio: f64,
    #[serde(default = "one")]
    pub ram_allocation_ratio: f64,
}

impl HostKind {
    pub fn spec(&self) -> HostSpec {
        HostSpec {
            pcpus: self.pcpus,
            memory_mb: self.memory_mb,
            disk_gb: self.disk_gb,
            cpu_allocation_ratio: self.cpu_allocation_ratio,
            ram_allocation_ratio: self.ram_allocation_ratio,
        }
    }
}

/// The most hosts an AZ may have (a bound on what one run allocates).
pub const MAX_HOSTS_PER_AZ: u64 = 10_000;

// The keys a role leaves out are skipped when the scenario is written back (`-f json`'s
// `scenario_as_run`), so a scenario without them reads as it did before they existed.
fn is_one(v: &f64) -> bool {
    *v == 1.0
}
fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
    /// When the role's VMs boot (hours after the start): a role booting mid-run is new, with
    /// no history in steward's profiles.
    #[serde(default)]
    pub boot_at_hours: f64,
    /// New VMs of the role per hour, a Poisson stream from `boot_at_hours` to the end of the
    /// run, beside the `count` VMs there from the start (or from `boot_at_hours`). They are
    /// requested round-robin over the AZs, continuing the `count` VMs' turn.
    #[serde(default)]
    pub arrivals_per_hour: f64,
    /// Mean lifetime of every VM of the role (the `count` VMs too), exponential: its owner
    /// deletes it that long after its boot, at least one step later. None: VMs live to the end.
    /// With arrivals, the role settles near `arrivals_per_hour x lifetime_hours` VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_hours: Option<f64>,
    /// On Saturdays and Sundays (UTC) the curve's swing above `base` (peak - base) is scaled
    /// by this (0.3: a weekend peak 30 % as high over the base; above 1: busier weekends).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weekend_factor: f64,
    /// Share of the noise's variance common to all VMs of the role at a time (0..1): a
    /// role-wide wave. The total variance stays `noise`².
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noise_correlation: f64,
    /// How long a noise value lasts, minutes (default: one step, white noise): values drawn
    /// every `noise_minutes`, interpolated between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_minutes: Option<f64>,
    /// Bursts per VM and day (0: none): `burst_height` more demand per vCPU for
    /// `burst_minutes`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bursts_per_day: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst_minutes: f64,
    /// Demand per vCPU a burst adds (0..1).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst_height: f64,
    /// Share of burst windows in which the role's VMs burst together (0..1): the correlation
    /// of two VMs' bursts.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub burst_correlation: f64,
}

impl RoleSpec {
    /// How the role's noise moves at a step of `step_minutes`.
    pub fn noise_shape(&self, step_minutes: f64) -> workload::NoiseShape {
        workload::NoiseShape {
            knot_steps: self.noise_minutes.map_or(1.0, |m| m / step_minutes),
            correlation: self.noise_correlation,
        }
    }

    pub fn bursts(&self) -> workload::Bursts {
        workload::Bursts {
            per_day: self.bursts_per_day,
            minutes: self.burst_minutes,
            correlation: self.burst_correlation,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
    /// The single-kind form: `hosts_per_az` hosts of size `[host]` in every AZ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_per_az: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostSpec>,
    /// The mixed form, instead of `[host]` and `hosts_per_az`: each kind's size and count per
    /// AZ. Within an AZ the kinds are interleaved evenly (`twin::hosts_of`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_kinds: Vec<HostKind>,
    pub roles: Vec<RoleSpec>,
    /// The scheduling profile steward places VMs with.
    #[serde(default = "profile")]
    pub placement_profile: String,
    /// Profiles layered over the built-in ones, as in steward.toml.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// Each host's `live_migration_bandwidth`, GiB/s.
    #[serde(default = "mig_rate")]
    pub migration_gib_per_second: f64,
    /// How a live migration copies, converges or is aborted (`migration::MigrationSpec`).
    #[serde(default)]
    pub migration: migration::MigrationSpec,
    /// The service's `[rebalance]` section, as in steward.toml.
    #[serde(default)]
    pub rebalance: RebalanceSettings,
    /// StewardWeigher's multiplier in `steward-deployed`: the shipped snippet's
    /// `[steward] weight_multiplier`.
    #[serde(default = "one")]
    pub steward_weight_multiplier: f64,
    /// Another multiplier to show beside it (`steward-deployed-x<M>`).
    #[serde(default)]
    pub recommended_weight_multiplier: Option<f64>,
    /// Share of VMs booted with no role (no hint, no server group): steward cannot tell
    /// their role, and Nova puts them in no group.
    #[serde(default)]
    pub roleless_share: f64,
    /// What steward learns and when (`telemetry::TelemetrySpec`).
    #[serde(default)]
    pub telemetry: telemetry::TelemetrySpec,
    /// A recorded cloud (`steward simulate --from-prometheus`): its hosts, and its VMs with
    /// their measured demand, replace `azs` x `hosts_per_az` and the roles' generated VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded: Option<recorded::Recorded>,
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
        let mut scn: Scenario = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        scn.copy_cost_from_the_link(text);
        let problems = scn.problems();
        if problems.is_empty() {
            Ok(scn)
        } else {
            Err(problems)
        }
    }

    /// Steward's `[rebalance]` copy-cost keys, where the scenario does not set them, are what an
    /// operator configures them to: the computes' `live_migration_bandwidth`
    /// (`migration_gib_per_second`) and the CPU a copy takes (`migration.cpu_cores`). Set in
    /// `[rebalance]`, they are steward's belief, which may be wrong about the link.
    fn copy_cost_from_the_link(&mut self, text: &str) {
        let raw: toml::Table = text.parse().unwrap_or_default();
        let set = |key: &str| raw.get("rebalance").and_then(|r| r.get(key)).is_some();
        if !set("copy_gib_per_second") {
            self.rebalance.copy_gib_per_second = self.migration_gib_per_second;
        }
        if !set("copy_cpu_cores") {
            self.rebalance.copy_cpu_cores = self.migration.cpu_cores;
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
        p.extend(self.host_problems());
        if let Some(rec) = &self.recorded {
            p.extend(self.recorded_problems(rec));
        }
        if self.roles.is_empty() && self.recorded.is_none() {
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
            if !(r.boot_at_hours.is_finite() && r.boot_at_hours >= 0.0) {
                p.push(format!(
                    "{key}.boot_at_hours: must be a number of hours >= 0, got {}",
                    r.boot_at_hours
                ));
            }
            let rate = r.arrivals_per_hour;
            if !(rate.is_finite() && rate >= 0.0) {
                p.push(format!(
                    "{key}.arrivals_per_hour: must be a number of VMs per hour >= 0, got {rate}"
                ));
            } else if rate * (self.hours - r.boot_at_hours).max(0.0) > MAX_ARRIVALS {
                p.push(format!(
                    "{key}.arrivals_per_hour: {rate} VMs per hour over {} h would boot about {:.0} \
                     VMs; at most {MAX_ARRIVALS} per role: lower the rate or the hours",
                    (self.hours - r.boot_at_hours).max(0.0),
                    rate * (self.hours - r.boot_at_hours).max(0.0)
                ));
            }
            if let Some(l) = r.lifetime_hours.filter(|l| !positive(*l)) {
                p.push(format!(
                    "{key}.lifetime_hours: must be a positive number of hours (leave it out for \
                     VMs that live to the end), got {l}"
                ));
            }
            if self.recorded.is_some() && (rate != 0.0 || r.lifetime_hours.is_some()) {
                p.push(format!(
                    "{key}: a recorded cloud replays its own VMs as they ran; leave out \
                     arrivals_per_hour and lifetime_hours"
                ));
            }
            for (k, v) in [("base", r.base), ("peak", r.peak)] {
                if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                    p.push(format!(
                        "{key}.{k}: must be a demand per vCPU in [0, 1], got {v}"
                    ));
                }
            }
            p.extend(self.shape_problems(&key, r));
        }
        if !positive(self.migration_gib_per_second) {
            p.push(format!(
                "migration_gib_per_second: must be positive, got {}",
                self.migration_gib_per_second
            ));
        }
        for (key, v) in [
            (
                "steward_weight_multiplier",
                Some(self.steward_weight_multiplier),
            ),
            (
                "recommended_weight_multiplier",
                self.recommended_weight_multiplier,
            ),
        ] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                p.push(format!("{key}: must be a number >= 0, got {v}"));
            }
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

    /// What is wrong with the hosts: one form or the other, sizes positive.
    fn host_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let mut sizes: Vec<(String, &HostSpec)> = Vec::new();
        let kinds: Vec<HostSpec> = self.host_kinds.iter().map(HostKind::spec).collect();
        match (&self.host, self.hosts_per_az, self.host_kinds.is_empty()) {
            (Some(h), Some(n), true) => {
                if n == 0 {
                    p.push("hosts_per_az: must be at least 1".into());
                }
                sizes.push(("host".into(), h));
            }
            (None, None, false) => {
                for (i, k) in self.host_kinds.iter().enumerate() {
                    if k.count_per_az == 0 {
                        p.push(format!(
                            "host_kinds[{i}].count_per_az: must be at least 1 (drop the kind \
                             to have none)"
                        ));
                    }
                    sizes.push((format!("host_kinds[{i}]"), &kinds[i]));
                }
            }
            (_, _, false) => p.push(
                "host_kinds: give the hosts either as [host] with hosts_per_az or as \
                 [[host_kinds]], not both: remove [host] and hosts_per_az"
                    .into(),
            ),
            (None, _, true) => p.push(
                "host: describe the hosts' size in [host] (with hosts_per_az), or list \
                 [[host_kinds]]"
                    .into(),
            ),
            (Some(_), None, true) => p.push(
                "hosts_per_az: [host] needs hosts_per_az, the number of such hosts in each AZ"
                    .into(),
            ),
        }
        let per_az: u64 = self.host_kinds().iter().map(|(_, n)| u64::from(*n)).sum();
        if per_az > MAX_HOSTS_PER_AZ {
            p.push(format!(
                "hosts_per_az / host_kinds: at most {MAX_HOSTS_PER_AZ} hosts per AZ, got {per_az}"
            ));
        }
        for (key, h) in sizes {
            for (k, v) in [
                ("pcpus", h.pcpus),
                ("memory_mb", h.memory_mb),
                ("disk_gb", h.disk_gb),
                ("cpu_allocation_ratio", h.cpu_allocation_ratio),
                ("ram_allocation_ratio", h.ram_allocation_ratio),
            ] {
                if !positive(v) {
                    p.push(format!("{key}.{k}: must be a positive number, got {v}"));
                }
            }
        }
        p
    }

    /// Every kind of host with its count per AZ, in the order listed (none when the
    /// scenario gives neither form).
    pub fn host_kinds(&self) -> Vec<(HostSpec, u32)> {
        if !self.host_kinds.is_empty() {
            return self
                .host_kinds
                .iter()
                .map(|k| (k.spec(), k.count_per_az))
                .collect();
        }
        match (&self.host, self.hosts_per_az) {
            (Some(h), Some(n)) => vec![(h.clone(), n)],
            _ => Vec::new(),
        }
    }

    /// What is wrong with a role's weekend, noise and bursts; `key` names the role.
    fn shape_problems(&self, key: &str, r: &RoleSpec) -> Vec<String> {
        let mut p = Vec::new();
        let share = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !(r.weekend_factor.is_finite() && r.weekend_factor >= 0.0) {
            p.push(format!(
                "{key}.weekend_factor: must be a number >= 0 (1: weekends as weekdays), got {}",
                r.weekend_factor
            ));
        }
        for (k, v) in [
            ("noise_correlation", r.noise_correlation),
            ("burst_correlation", r.burst_correlation),
        ] {
            if !share(v) {
                p.push(format!("{key}.{k}: must be a share in [0, 1], got {v}"));
            }
        }
        if let Some(m) = r.noise_minutes {
            if !(m.is_finite() && m >= self.step_minutes && m <= 7.0 * 1440.0) {
                p.push(format!(
                    "{key}.noise_minutes: must be at least step_minutes ({}) and at most a \
                     week (10080), got {m}; leave it out for a fresh value every step",
                    self.step_minutes
                ));
            }
        }
        if !(r.bursts_per_day.is_finite() && r.bursts_per_day >= 0.0) {
            p.push(format!(
                "{key}.bursts_per_day: must be a number >= 0, got {}",
                r.bursts_per_day
            ));
        } else if r.bursts_per_day > 0.0 {
            let m = r.burst_minutes;
            if !(m.is_finite() && m > 0.0) {
                p.push(format!(
                    "{key}.burst_minutes: bursts_per_day > 0 needs how long a burst lasts, \
                     minutes > 0, got {m}"
                ));
            } else if r.bursts_per_day * m > 1440.0 {
                p.push(format!(
                    "{key}.bursts_per_day: at most one burst at a time, so bursts_per_day x \
                     burst_minutes must be at most 1440 (a day), got {}",
                    r.bursts_per_day * m
                ));
            }
            if !(r.burst_height.is_finite() && r.burst_height > 0.0 && r.burst_height <= 1.0) {
                p.push(format!(
                    "{key}.burst_height: bursts_per_day > 0 needs the demand per vCPU a burst \
                     adds, in (0, 1], got {}",
                    r.burst_height
                ));
            }
        }
        p
    }

    /// What is wrong with a recorded cloud: every VM on a host and AZ it lists, with a role
    /// the scenario has and a demand for every step.
    fn recorded_problems(&self, rec: &recorded::Recorded) -> Vec<String> {
        let mut p = Vec::new();
        if rec.hosts.is_empty() || rec.vms.is_empty() {
            p.push("recorded: needs at least one host and one VM".into());
        }
        let az_of: HashMap<&str, &str> = rec
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.az.as_str()))
            .collect();
        for h in &rec.hosts {
            let s = &h.spec;
            let ok = |v: f64| v.is_finite() && v > 0.0;
            let fine = ok(s.pcpus)
                && ok(s.memory_mb)
                && s.disk_gb >= 0.0
                && ok(s.cpu_allocation_ratio)
                && ok(s.ram_allocation_ratio)
                && self.azs.contains(&h.az);
            if !fine {
                p.push(format!(
                    "recorded.hosts ({}): needs a positive size and ratios and an AZ of `azs`",
                    h.name
                ));
            }
        }
        let steps = steps(self) as usize;
        for v in &rec.vms {
            let role = v.role.as_deref().unwrap_or(recorded::NO_ROLE);
            let fine = az_of.get(v.host.as_str()) == Some(&v.az.as_str())
                && self.roles.iter().any(|r| r.name == role)
                && v.vcpus.is_finite()
                && v.vcpus > 0.0
                && v.memory_mb.is_finite()
                && v.memory_mb > 0.0
                && v.disk_gb >= 0.0
                && v.demand.len() == steps
                && (v.first_step as usize) < steps
                && v.demand.iter().all(|d| d.is_finite() && *d >= 0.0);
            if !fine {
                p.push(format!(
                    "recorded.vms ({}): needs a listed host in its AZ, a role of `roles`, a \
                     positive size and {steps} demands (cores >= 0), one per step",
                    v.uuid
                ));
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

/// How a strategy places a booting VM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    NovaDefault,
    NovaGroups,
    /// Nova's weighers plus StewardFilter and StewardWeigher at this multiplier.
    StewardDeployed {
        multiplier: f64,
    },
    /// Steward's weight alone (an upper bound: no deployment weighs like this).
    StewardAlone,
}

/// A way of running the cloud: a placement, with or without the rebalancer.
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    pub name: String,
    pub placement: Placement,
    pub rebalance: bool,
}

impl Scenario {
    /// Every strategy the twin compares on this scenario, baselines first.
    pub fn strategies(&self) -> Vec<Strategy> {
        let s = |name: &str, placement, rebalance| Strategy {
            name: name.to_string(),
            placement,
            rebalance,
        };
        let deployed = Placement::StewardDeployed {
            multiplier: self.steward_weight_multiplier,
        };
        let mut out = vec![
            s("nova-default", Placement::NovaDefault, false),
            s("nova-groups", Placement::NovaGroups, false),
            s("steward-deployed", deployed, false),
            s("steward-deployed-rebalance", deployed, true),
        ];
        if let Some(m) = self
            .recommended_weight_multiplier
            .filter(|m| *m != self.steward_weight_multiplier)
        {
            let p = Placement::StewardDeployed { multiplier: m };
            out.push(s(&format!("steward-deployed-x{m}"), p, false));
            out.push(s(&format!("steward-deployed-x{m}-rebalance"), p, true));
        }
        out.push(s("steward-placement", Placement::StewardAlone, false));
        out
    }
}

/// What one strategy gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrategyReport {
    pub strategy: String,
    /// Percentiles of VM steal (0..1) over every placed VM at every step, fluid model.
    pub steal_p50: f64,
    pub steal_p95: f64,
    pub steal_p99: f64,
    /// The same under max-min fair share.
    pub fair_steal_p50: f64,
    pub fair_steal_p95: f64,
    pub fair_steal_p99: f64,
    /// The steal samples the percentiles are over: one per VM running at each step.
    pub vm_steps: u64,
    /// Share of the CPU the placed VMs demanded that no host served.
    pub unserved: f64,
    /// The least `unserved` any placement could give: per AZ and step, demand over capacity.
    pub unserved_limit: f64,
    /// Live migrations started.
    pub migrations: u32,
    /// Of those, aborted at Nova's completion timeout (the VM stayed). A move whose VM was
    /// deleted while it copied is not counted here (`Event::Move::vm_deleted`).
    pub migrations_aborted: u32,
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
    /// Where every VM ran when, and what each host had to serve at each step.
    pub trace: Trace,
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
    /// What the plan charged to the AZ's byte budget (RAM, plus disk for a block migration).
    pub gib: f64,
    /// What the pre-copy sent (each pass re-sends what the guest dirtied).
    pub gib_sent: f64,
    pub seconds: f64,
    /// False: aborted at the completion timeout, the VM stayed (or deleted, below).
    pub converged: bool,
    /// What the planner predicted the move gives back and its copy takes, in core-seconds
    /// (`rebalance.gain_hours`, `copy_gib_per_second`, `copy_cpu_cores`).
    pub predicted_gain_core_seconds: f64,
    pub copy_cost_core_seconds: f64,
    /// The VM was deleted while it copied: the move failed there, `gib_sent` and `seconds`
    /// are what it had copied and taken by then.
    pub vm_deleted: bool,
}

/// One change of where a VM runs. `vm` and hosts index the report's `vms` and `hosts`.
/// A VM runs on a host from the step of its boot (or of a move's end) on, inclusive, through
/// the step before its departure (`depart_step - 1`) or to the end of the run. Within a step
/// the events come in the order they happened: moves that end, then departures, then boots.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Boot {
        vm: usize,
        host: usize,
        step: u64,
    },
    /// No host had room (Nova's NoValidHost): the VM never ran (and never departs).
    NoValidHost {
        vm: usize,
        step: u64,
    },
    /// Its owner deleted the VM: from `step` on it runs nowhere and its host has its
    /// resources back. Only a VM that ran departs, at its `depart_step`.
    Departure {
        vm: usize,
        step: u64,
    },
    /// A live migration: on `from` through `end_step - 1`, on `to` from `end_step` when it
    /// converged (else aborted at `end_step`: it stays on `from`); `end_step` None: not
    /// finished when the run ended. It copies, taking CPU on both hosts, in every step `k`
    /// with `start_step < k < end_step`. `vm_deleted`: the VM was deleted while it copied
    /// (its `Departure` follows at `end_step`); as with Nova's libvirt driver, the migration
    /// job loses its guest and fails, and the target's claim is freed.
    Move {
        vm: usize,
        from: usize,
        to: usize,
        start_step: u64,
        end_step: Option<u64>,
        /// GiB sent over the wire.
        gib: f64,
        converged: bool,
        vm_deleted: bool,
    },
}

/// The per-step data every figure is computed from, `[step][host]`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Trace {
    pub events: Vec<Event>,
    /// Cores the VMs running on the host demanded.
    pub host_demand: Vec<Vec<f64>>,
    /// Cores the host had for its VMs.
    pub host_capacity: Vec<Vec<f64>>,
    /// Fluid-model steal of the host's VMs.
    pub host_steal: Vec<Vec<f64>>,
}

/// A host as run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostOut {
    pub name: String,
    pub az: String,
    #[serde(flatten)]
    pub spec: HostSpec,
}

/// A VM as run: its role and size, and the AZ it asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmOut {
    pub uuid: String,
    /// The workload's role (steward and Nova's groups know it only when not `roleless`).
    pub role: String,
    /// Booted with no role hint and in no server group.
    pub roleless: bool,
    pub boot_step: u64,
    /// The step its owner deletes it at (`lifetime_hours`); None: it lives to the end. A VM
    /// that never ran has no `Departure` event even so.
    pub depart_step: Option<u64>,
    pub az: String,
    pub vcpus: f64,
    pub memory_mb: f64,
    pub disk_gb: f64,
}

/// The comparison of every strategy on one scenario, with what it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    pub description: String,
    pub seed: u64,
    pub hours: f64,
    pub azs: usize,
    pub budget_gib_per_az_per_hour: f64,
    pub budget_burst_gib: f64,
    pub cooldown_hours: f64,
    /// The scenario as run (after --hours/--seed).
    pub scenario_as_run: Scenario,
    pub start_unix: f64,
    pub step_seconds: f64,
    pub steps: u64,
    pub hosts: Vec<HostOut>,
    pub vms: Vec<VmOut>,
    /// Cores each VM demanded at each step, `[step][vm]` (the same for every strategy).
    pub vm_demand: Vec<Vec<f64>>,
    pub strategies: Vec<StrategyReport>,
}

/// The workload of one seed: cores each VM demands at each step (0 before it boots and from
/// its departure on), the same for every strategy, and the role profiles steward learns from
/// its telemetry.
pub struct Workload {
    pub demand: Vec<Vec<f64>>,
    pub profiles: telemetry::ProfileTimeline,
    clock: telemetry::Clock,
    /// Per VM: its role and intensity (the generator's, for steps before the run).
    vm_role: Vec<usize>,
    intensity: Vec<f64>,
    boot_step: Vec<u64>,
    depart_step: Vec<Option<u64>>,
}

/// Cores a VM of `role` at `intensity` demands at step `j` (negative: before the run): the
/// role's curve (its swing scaled on weekends), times the intensity, plus noise and bursts.
/// A pure function of `j`, so the warm-up's history follows the same rules as the run.
fn generated(scn: &Scenario, role: usize, intensity: f64, vm: usize, j: i64) -> f64 {
    let r = &scn.roles[role];
    let t = scn.start_unix + j as f64 * scn.step_minutes * 60.0;
    let hour = (t / 3600.0).rem_euclid(24.0);
    let mut swing = (r.peak - r.base).max(0.0);
    if workload::is_weekend(t) {
        swing *= r.weekend_factor;
    }
    let level = r.base + swing * r.curve.shape(hour);
    let noise = workload::noise(scn.seed, role, vm, j, r.noise_shape(scn.step_minutes));
    let mut per_vcpu = level * intensity + r.noise * noise;
    let minute = j as f64 * scn.step_minutes;
    if r.bursts_per_day > 0.0 && workload::bursting(scn.seed, role, vm, minute, &r.bursts()) {
        per_vcpu += r.burst_height;
    }
    per_vcpu.clamp(0.0, 1.0) * r.vcpus
}

impl Workload {
    pub fn new(scn: &Scenario) -> Workload {
        let vms = twin::vms_of(scn);
        let recorded = scn.recorded.as_ref().map(|r| &r.vms);
        let demand = (0..steps(scn))
            .map(|k| {
                vms.iter()
                    .enumerate()
                    .map(|(i, v)| match recorded {
                        _ if k < v.boot_step || v.depart_step.is_some_and(|d| k >= d) => 0.0,
                        Some(rec) => rec[i].demand.get(k as usize).copied().unwrap_or(0.0),
                        None => generated(scn, v.role, v.intensity, i, k as i64),
                    })
                    .collect()
            })
            .collect();
        let clock = telemetry::Clock {
            start: scn.start_unix,
            step: scn.step_minutes * 60.0,
        };
        let mut work = Workload {
            demand,
            profiles: telemetry::ProfileTimeline { at: Vec::new() },
            clock,
            vm_role: vms.iter().map(|v| v.role).collect(),
            intensity: vms.iter().map(|v| v.intensity).collect(),
            boot_step: vms.iter().map(|v| v.boot_step).collect(),
            depart_step: vms.iter().map(|v| v.depart_step).collect(),
        };
        let profiles = {
            let wv = work_view(&work);
            let subjects: Vec<_> = vms
                .iter()
                .enumerate()
                .map(|(i, v)| telemetry::Subject {
                    role: (!v.roleless).then_some(scn.roles[v.role].name.as_str()),
                    series: move |j: i64| work_value(scn, &wv, i, j),
                })
                .collect();
            telemetry::learn(
                &scn.telemetry,
                clock,
                scn.seed,
                &subjects,
                scn.hours * 3600.0,
            )
        };
        work.profiles = profiles;
        work
    }

    /// Cores VM `vm` demanded at step `j`, None before it existed and after it left.
    pub fn value(&self, scn: &Scenario, vm: usize, j: i64) -> Option<f64> {
        work_value(scn, &work_view(self), vm, j)
    }
}

/// The parts of a workload a series reads.
#[derive(Clone, Copy)]
struct WorkView<'a> {
    demand: &'a [Vec<f64>],
    vm_role: &'a [usize],
    intensity: &'a [f64],
    boot_step: &'a [u64],
    depart_step: &'a [Option<u64>],
}

fn work_view(w: &Workload) -> WorkView<'_> {
    WorkView {
        demand: &w.demand,
        vm_role: &w.vm_role,
        intensity: &w.intensity,
        boot_step: &w.boot_step,
        depart_step: &w.depart_step,
    }
}

fn work_value(scn: &Scenario, w: &WorkView, vm: usize, j: i64) -> Option<f64> {
    // A VM of the run's first step stands for its role's VMs before the run: the warm-up's
    // history (even one deleted soon after the start: the role ran before). A VM that boots
    // mid-run did not exist before it: it has no history of its own, and its role has what
    // its first step's VMs give (none for a new role). A deleted VM has no series after it
    // left, so the rollup learns from the VMs that run.
    let boot = w.boot_step[vm] as i64;
    if j < boot && (boot > 0 || j >= 0) {
        return None;
    }
    if w.depart_step[vm].is_some_and(|d| j >= d as i64) {
        return None;
    }
    if j >= 0 {
        return w.demand.get(j as usize).map(|row| row[vm]);
    }
    // A recorded cloud has no history before its window.
    if scn.recorded.is_some() {
        return None;
    }
    Some(generated(scn, w.vm_role[vm], w.intensity[vm], vm, j))
}

fn steps(scn: &Scenario) -> u64 {
    (scn.hours * 60.0 / scn.step_minutes).round() as u64
}

/// A live migration in flight.
struct Migration {
    vm: usize,
    from: usize,
    to: usize,
    start_step: u64,
    start: f64,
    finish: f64,
    gib: f64,
    converged: bool,
    /// Its entry in `RunState::moves_out`.
    out: usize,
}

/// What the per-step measures add up to.
#[derive(Default)]
struct Measures {
    fluid: Vec<f64>,
    fair: Vec<f64>,
    demand: f64,
    unserved: f64,
    limit: f64,
}

/// Measure one step: the trace's rows and the samples.
fn measure(
    twin: &Twin,
    demand: &[f64],
    in_flight: &[Migration],
    m: &mut Measures,
    trace: &mut Trace,
) -> Vec<f64> {
    let n = twin.hosts.len();
    let mut host_demand = vec![0.0; n];
    let mut on_host: Vec<Vec<(f64, f64)>> = vec![Vec::new(); n];
    for (i, v) in twin.vms.iter().enumerate() {
        if let Some(h) = v.host {
            host_demand[h] += demand[i];
            on_host[h].push((v.size.vcpus, demand[i]));
        }
    }
    // A migration's copy takes CPU on both ends while it runs.
    let mut capacity: Vec<f64> = twin.hosts.iter().map(|h| h.spec.pcpus).collect();
    for mig in in_flight {
        for h in [mig.from, mig.to] {
            capacity[h] = (capacity[h] - twin.scn.migration.cpu_cores).max(0.0);
        }
    }
    let steal: Vec<f64> = (0..n)
        .map(|h| measure::fluid_steal(host_demand[h], capacity[h]))
        .collect();
    let mut per_az: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for h in 0..n {
        m.fluid
            .extend(std::iter::repeat_n(steal[h], on_host[h].len()));
        m.fair.extend(measure::fair_steal(&on_host[h], capacity[h]));
        m.demand += host_demand[h];
        m.unserved += (host_demand[h] - capacity[h]).max(0.0);
        let az = per_az.entry(twin.hosts[h].az.as_str()).or_default();
        az.0 += host_demand[h];
        az.1 += capacity[h];
    }
    m.limit += per_az.values().map(|(d, c)| (d - c).max(0.0)).sum::<f64>();
    trace.host_demand.push(host_demand);
    trace.host_capacity.push(capacity);
    trace.host_steal.push(steal.clone());
    steal
}

/// The rebalancer's state between cycles.
#[derive(Default)]
struct Rebalancer {
    history: History,
    detect_state: DetectState,
    budget: BudgetState,
    moves: Vec<MoveRecord>,
    next_cycle: f64,
}

/// Static lookups the rebalancer needs.
struct Index {
    uuid: HashMap<String, usize>,
    host: HashMap<String, usize>,
    sizes: HashMap<String, VmSize>,
}

/// Everything a run accumulates besides the twin.
struct RunState {
    migrations: Vec<Migration>,
    rebalancer: Rebalancer,
    moves_out: Vec<MoveOut>,
    gib_moved: f64,
    starts_per_az: BTreeMap<String, Vec<(f64, f64)>>,
    trace: Trace,
}

/// Steward's readings at `t`: every running VM's load and every host's steal, as scraped.
fn observe_all(twin: &Twin, work: &Workload, trace: &Trace, t: f64) -> Observed {
    let scn = twin.scn;
    let spec = &scn.telemetry;
    let vm = (0..twin.vms.len())
        .map(|i| {
            twin.vms[i].host?;
            let series = |j: i64| work.value(scn, i, j);
            telemetry::observe(spec, work.clock, scn.seed, i as u64, &series, t)
        })
        .collect();
    let host_steal = (0..twin.hosts.len())
        .map(|h| {
            // Before the run the hosts were empty: no steal.
            let series = |j: i64| {
                if j < 0 {
                    Some(0.0)
                } else {
                    trace.host_steal.get(j as usize).map(|r| r[h])
                }
            };
            let key = 1_000_000 + h as u64;
            telemetry::observe(spec, work.clock, scn.seed, key, &series, t)
        })
        .collect();
    Observed { vm, host_steal }
}

/// Steward's view at `t`: its readings and the role profiles it has learned by then.
fn steward_view(twin: &Twin, work: &Workload, trace: &Trace, t: f64) -> ClusterView {
    let mut view = twin.view(&observe_all(twin, work, trace, t));
    view.weekly = work.profiles.at(t);
    view
}

/// Boot the VMs due at step `k`, in one shuffled order, the same for every strategy.
fn boot_due(
    twin: &mut Twin,
    strategy: &Strategy,
    ctx: &mut BootContext,
    order: &[usize],
    k: u64,
) -> Vec<Event> {
    let mut events = Vec::new();
    let due: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&vm| twin.vms[vm].boot_step == k)
        .collect();
    for vm in due {
        let Some(h) = twin.choose(vm, strategy.placement, ctx) else {
            events.push(Event::NoValidHost { vm, step: k });
            continue;
        };
        let size = twin.size(vm);
        twin.reserve(h, &size, 1.0);
        twin.land(vm, h);
        twin.note_placed(&mut ctx.view, vm, h, ctx.t);
        events.push(Event::Boot {
            vm,
            host: h,
            step: k,
        });
    }
    events
}

/// Land the moves whose copy is done by `t`.
fn finish_moves(twin: &mut Twin, st: &mut RunState, k: u64, t: f64) {
    let (done, running): (Vec<Migration>, Vec<Migration>) = std::mem::take(&mut st.migrations)
        .into_iter()
        .partition(|m| m.finish <= t);
    st.migrations = running;
    for m in done {
        let size = twin.size(m.vm);
        if m.converged {
            twin.reserve(m.from, &size, -1.0);
            twin.land(m.vm, m.to);
        } else {
            // Aborted at the completion timeout: the VM stays, the target is freed.
            twin.reserve(m.to, &size, -1.0);
        }
        st.trace.events.push(Event::Move {
            vm: m.vm,
            from: m.from,
            to: m.to,
            start_step: m.start_step,
            end_step: Some(k),
            gib: m.gib,
            converged: m.converged,
            vm_deleted: false,
        });
    }
}

/// Delete the VMs due to leave at step `k` (`due`), as Nova deletes an instance: its
/// allocation freed on its host, its role's count there lowered, and a `Departure` in the
/// trace. A VM that never found a host never ran and does not depart. A VM deleted while a
/// live migration copies it takes the migration down with it: libvirt's job loses its guest
/// and fails, Nova drops the target's claim; the move ends at `k`, not converged, with what
/// it had copied by `t` (the copy runs at `migration_gib_per_second`).
fn depart_due(twin: &mut Twin, st: &mut RunState, due: &[usize], k: u64, t: f64) {
    for &vm in due {
        if twin.vms[vm].host.is_none() {
            continue;
        }
        if let Some(i) = st.migrations.iter().position(|m| m.vm == vm) {
            let m = st.migrations.remove(i);
            let size = twin.size(vm);
            twin.reserve(m.to, &size, -1.0);
            let seconds = (t - m.start).max(0.0);
            let sent = (twin.scn.migration_gib_per_second * seconds).min(m.gib);
            st.gib_moved -= m.gib - sent;
            if let Some(out) = st.moves_out.get_mut(m.out) {
                out.gib_sent = sent;
                out.seconds = seconds;
                out.converged = false;
                out.vm_deleted = true;
            }
            st.trace.events.push(Event::Move {
                vm,
                from: m.from,
                to: m.to,
                start_step: m.start_step,
                end_step: Some(k),
                gib: sent,
                converged: false,
                vm_deleted: true,
            });
        }
        twin.depart(vm);
        st.trace.events.push(Event::Departure { vm, step: k });
    }
}

/// One rebalancer cycle at step `k`: detect, plan, start the planned moves.
#[allow(clippy::too_many_arguments)]
fn rebalance_cycle(
    twin: &mut Twin,
    st: &mut RunState,
    index: &Index,
    profile: &Profile,
    opts: &Options,
    k: u64,
    t: f64,
    view: &ClusterView,
    demand: &[f64],
) -> Result<(), String> {
    let scn = twin.scn;
    let cfg = &scn.rebalance;
    let n = twin.hosts.len();
    let rb = &mut st.rebalancer;
    rb.history.record(view, t, cfg.window_seconds * 2.0);
    if t < rb.next_cycle {
        return Ok(());
    }
    rb.next_cycle = t + cfg.interval_seconds;
    let detection = detect(&rb.history, &rb.detect_state, cfg, t);
    let hosts: Vec<Host> = (0..n).map(|h| twin.model_host(h)).collect();
    let in_flight: Vec<InFlight> = st
        .migrations
        .iter()
        .map(|m| InFlight {
            vm: twin.vms[m.vm].uuid.clone(),
            source_host: twin.hosts[m.from].name.clone(),
            target_host: twin.hosts[m.to].name.clone(),
            az: twin.hosts[m.from].az.clone(),
        })
        .collect();
    let closed = HashMap::new();
    let input = PlanInput {
        view,
        hosts: &hosts,
        closed: &closed,
        sizes: &index.sizes,
        detection: &detection,
        in_flight: &in_flight,
        history: &rb.moves,
        budget: &rb.budget,
        now: t,
    };
    let p = plan(&input, profile, opts, cfg);
    rb.detect_state = detection.state;
    rb.budget = p.budget.clone();
    for a in &p.actions {
        let (Some(&vm), Some(&from), Some(&to)) = (
            index.uuid.get(&a.vm),
            index.host.get(&a.source_host),
            index.host.get(&a.target_host),
        ) else {
            return Err(format!(
                "the plan names a VM or host the twin does not have: {} {} -> {}",
                a.vm, a.source_host, a.target_host
            ));
        };
        if twin.vms[vm].host != Some(from) {
            return Err(format!(
                "the plan moves VM {} from {}, where the twin does not run it",
                a.vm, a.source_host
            ));
        }
        let size = twin.size(vm);
        twin.reserve(to, &size, 1.0);
        let disk = if size.block_migration {
            size.disk_gb
        } else {
            0.0
        };
        let out = migration::precopy(
            &scn.migration,
            size.memory_mb / 1024.0,
            disk,
            demand[vm],
            scn.migration_gib_per_second,
        );
        let gib = out.gib_sent;
        st.migrations.push(Migration {
            vm,
            from,
            to,
            start_step: k,
            start: t,
            finish: t + out.seconds,
            gib,
            converged: out.converged,
            out: st.moves_out.len(),
        });
        st.rebalancer.moves.push(MoveRecord {
            vm: a.vm.clone(),
            from_host: a.source_host.clone(),
            to_host: a.target_host.clone(),
            at: t,
        });
        st.gib_moved += gib;
        st.moves_out.push(MoveOut {
            vm: a.vm.clone(),
            role: scn.roles[twin.vms[vm].role].name.clone(),
            from_host: a.source_host.clone(),
            to_host: a.target_host.clone(),
            az: a.az.clone(),
            at_hours: (t - scn.start_unix) / 3600.0,
            gib: a.bytes as f64 / GIB,
            gib_sent: gib,
            seconds: out.seconds,
            converged: out.converged,
            predicted_gain_core_seconds: a.predicted_gain_core_seconds,
            copy_cost_core_seconds: a.copy_cost_core_seconds,
            vm_deleted: false,
        });
        st.starts_per_az
            .entry(a.az.clone())
            .or_default()
            .push((t, a.bytes as f64));
    }
    Ok(())
}

/// The token bucket's promise: over any interval, at most burst + rate x its length.
/// Returns (kept, the most bytes started in one AZ within any hour).
fn budget_check(
    cfg: &RebalanceSettings,
    starts_per_az: &BTreeMap<String, Vec<(f64, f64)>>,
) -> (bool, f64) {
    let (burst, rate) = (cfg.burst_bytes(), cfg.refill_bytes_per_second());
    let mut kept = true;
    let mut max_hour = 0.0f64;
    for starts in starts_per_az.values() {
        for i in 0..starts.len() {
            let mut sum = 0.0;
            for s in &starts[i..] {
                sum += s.1;
                let span = s.0 - starts[i].0;
                if sum > burst + rate * span + 1.0 {
                    kept = false;
                }
                if span < 3600.0 {
                    max_hour = max_hour.max(sum);
                }
            }
        }
    }
    (kept, max_hour)
}

/// Run one strategy over the scenario's workload.
pub fn run(scn: &Scenario, strategy: &Strategy, work: &Workload) -> Result<StrategyReport, String> {
    let (twin, st, m) = run_twin(scn, strategy, work)?;
    Ok(finish_report(scn, strategy, &twin, st, m))
}

/// The run itself: each step, the moves whose copy is done land, the VMs due to leave are
/// deleted (before the boots, so a boot can use the room a departure frees), the VMs due
/// boot, the step is measured, and the rebalancer plans.
fn run_twin<'a>(
    scn: &'a Scenario,
    strategy: &Strategy,
    work: &Workload,
) -> Result<(Twin<'a>, RunState, Measures), String> {
    let placement = scn.profile(&scn.placement_profile)?;
    let rebalance_profile = scn.profile(&scn.rebalance.profile)?;
    let step = scn.step_minutes * 60.0;
    let opts = Options {
        role_metadata_key: "role".into(),
        max_age_seconds: (2.0 * step).max(300.0),
        ..Options::default()
    };
    let mut twin = Twin::new(scn);
    let index = Index {
        uuid: twin
            .vms
            .iter()
            .enumerate()
            .map(|(i, v)| (v.uuid.clone(), i))
            .collect(),
        host: twin
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect(),
        sizes: (0..twin.vms.len())
            .map(|i| (twin.vms[i].uuid.clone(), twin.size(i)))
            .collect(),
    };
    let mut st = RunState {
        migrations: Vec::new(),
        rebalancer: Rebalancer {
            next_cycle: scn.start_unix,
            ..Default::default()
        },
        moves_out: Vec::new(),
        gib_moved: 0.0,
        starts_per_az: BTreeMap::new(),
        trace: Trace::default(),
    };
    let mut order: Vec<usize> = (0..twin.vms.len()).collect();
    Rng::new(scn.seed ^ 0xB007).shuffle(&mut order);
    let steps = work.demand.len();
    let mut booting = vec![false; steps];
    let mut departing: Vec<Vec<usize>> = vec![Vec::new(); steps];
    for (i, v) in twin.vms.iter().enumerate() {
        if let Some(b) = booting.get_mut(v.boot_step as usize) {
            *b = true;
        }
        if let Some(d) = v.depart_step.and_then(|d| departing.get_mut(d as usize)) {
            d.push(i);
        }
    }
    // Nova's own weighers read no steward view: only steward's placements need one.
    let reads_view = matches!(
        strategy.placement,
        Placement::StewardDeployed { .. } | Placement::StewardAlone
    );
    let mut m = Measures::default();
    for (k, demand) in work.demand.iter().enumerate() {
        let due = &departing[k];
        let boots = booting[k];
        let k = k as u64;
        let t = scn.start_unix + k as f64 * step;
        finish_moves(&mut twin, &mut st, k, t);
        depart_due(&mut twin, &mut st, due, k, t);
        if boots {
            let mut ctx = BootContext {
                profile: &placement,
                opts: &opts,
                view: if reads_view {
                    steward_view(&twin, work, &st.trace, t)
                } else {
                    ClusterView::default()
                },
                t,
            };
            let events = boot_due(&mut twin, strategy, &mut ctx, &order, k);
            st.trace.events.extend(events);
        }
        measure(&twin, demand, &st.migrations, &mut m, &mut st.trace);
        if strategy.rebalance {
            let view = steward_view(&twin, work, &st.trace, t);
            rebalance_cycle(
                &mut twin,
                &mut st,
                &index,
                &rebalance_profile,
                &opts,
                k,
                t,
                &view,
                demand,
            )?;
        }
    }
    Ok((twin, st, m))
}

/// What a run gives, from its twin, its state and its measures.
fn finish_report(
    scn: &Scenario,
    strategy: &Strategy,
    twin: &Twin,
    mut st: RunState,
    mut m: Measures,
) -> StrategyReport {
    let migrations_aborted = st
        .trace
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Move {
                    converged: false,
                    vm_deleted: false,
                    end_step: Some(_),
                    ..
                }
            )
        })
        .count() as u32;
    let unplaced = st
        .trace
        .events
        .iter()
        .filter(|e| matches!(e, Event::NoValidHost { .. }))
        .count() as u32;
    for mig in &st.migrations {
        st.trace.events.push(Event::Move {
            vm: mig.vm,
            from: mig.from,
            to: mig.to,
            start_step: mig.start_step,
            end_step: None,
            gib: mig.gib,
            converged: false,
            vm_deleted: false,
        });
    }
    m.fluid.sort_by(f64::total_cmp);
    m.fair.sort_by(f64::total_cmp);
    let cfg = &scn.rebalance;
    let (budget_respected, max_hour) = budget_check(cfg, &st.starts_per_az);
    let mut per_vm: HashMap<&str, Vec<f64>> = HashMap::new();
    for mv in &st.rebalancer.moves {
        per_vm.entry(mv.vm.as_str()).or_default().push(mv.at);
    }
    let min_gap = per_vm
        .values()
        .flat_map(|ts| ts.windows(2).map(|w| (w[1] - w[0]) / 3600.0))
        .min_by(f64::total_cmp);
    let share = |x: f64| if m.demand > 0.0 { x / m.demand } else { 0.0 };
    StrategyReport {
        strategy: strategy.name.clone(),
        steal_p50: measure::percentile(&m.fluid, 0.50),
        steal_p95: measure::percentile(&m.fluid, 0.95),
        steal_p99: measure::percentile(&m.fluid, 0.99),
        fair_steal_p50: measure::percentile(&m.fair, 0.50),
        fair_steal_p95: measure::percentile(&m.fair, 0.95),
        fair_steal_p99: measure::percentile(&m.fair, 0.99),
        vm_steps: m.fluid.len() as u64,
        unserved: share(m.unserved),
        unserved_limit: share(m.limit),
        migrations: st.rebalancer.moves.len() as u32,
        migrations_aborted,
        gib_moved: st.gib_moved,
        az_violations: twin.az_violations.len() as u32,
        worst_role_stacking: twin.worst_stacking,
        unplaced,
        max_gib_per_az_in_an_hour: max_hour / GIB,
        budget_respected,
        min_hours_between_moves_of_a_vm: min_gap,
        cooldown_respected: min_gap.is_none_or(|g| g >= cfg.cooldown_hours),
        moves: st.moves_out,
        trace: st.trace,
    }
}

/// Run every strategy on the scenario (in parallel: they share only the workload).
pub fn simulate(scn: &Scenario) -> Result<Report, String> {
    let work = Workload::new(scn);
    let strategies = scn.strategies();
    let results: Vec<Result<StrategyReport, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = strategies
            .iter()
            .map(|st| s.spawn(|| run(scn, st, &work)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a strategy's run panicked".into()))
            })
            .collect()
    });
    let strategies = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    let hosts = twin::hosts_of(scn)
        .into_iter()
        .map(|h| HostOut {
            name: h.name,
            az: h.az,
            spec: h.spec,
        })
        .collect();
    let vms = twin::vms_of(scn)
        .into_iter()
        .map(|v| VmOut {
            uuid: v.uuid,
            role: scn.roles[v.role].name.clone(),
            roleless: v.roleless,
            boot_step: v.boot_step,
            depart_step: v.depart_step,
            az: v.az,
            vcpus: v.size.vcpus,
            memory_mb: v.size.memory_mb,
            disk_gb: v.size.disk_gb,
        })
        .collect();
    Ok(Report {
        scenario: scn.name.clone(),
        description: scn.description.clone(),
        seed: scn.seed,
        hours: scn.hours,
        azs: scn.azs.len(),
        budget_gib_per_az_per_hour: scn.rebalance.budget_gib_per_az_per_hour,
        budget_burst_gib: scn.rebalance.burst_bytes() / GIB,
        cooldown_hours: scn.rebalance.cooldown_hours,
        scenario_as_run: scn.clone(),
        start_unix: scn.start_unix,
        step_seconds: scn.step_minutes * 60.0,
        steps: steps(scn),
        hosts,
        vms,
        vm_demand: work.demand,
        strategies,
    })
}

/// `A..B` (inclusive) or a single seed.
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let bad = || format!("--seeds {text:?}: give A..B (inclusive, A <= B) or one seed, e.g. 1..10");
    let (a, b) = match text.split_once("..") {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b - a >= 10_000 {
        return Err(bad());
    }
    Ok((a..=b).collect())
}

/// min, median and max of one figure over the seeds, with every seed's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub per_seed: Vec<f64>,
}

impl Spread {
    fn of(values: Vec<f64>) -> Spread {
        Spread {
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            median: measure::median(&values),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            per_seed: values,
        }
    }
}

/// One strategy's figures over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedsStrategy {
    pub strategy: String,
    pub figures: BTreeMap<String, Spread>,
}

/// Every strategy over a range of seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedsReport {
    pub scenario: String,
    pub hours: f64,
    pub hosts: usize,
    pub vms: usize,
    pub seeds: Vec<u64>,
    pub strategies: Vec<SeedsStrategy>,
}

/// The figures of one strategy on one seed, with the ratios to the better Nova baseline:
/// `p95_vs_nova` (p95 steal over the lower of nova-default's and nova-groups'), the same for
/// fair share, and `unserved_gap_closed` (how much of the better baseline's unserved CPU above
/// the physical limit the strategy removed; 1 when there was no gap).
fn seed_figures(report: &Report, s: &StrategyReport) -> Vec<(&'static str, f64)> {
    let novas: Vec<&StrategyReport> = report
        .strategies
        .iter()
        .filter(|x| x.strategy == "nova-default" || x.strategy == "nova-groups")
        .collect();
    let best =
        |f: fn(&StrategyReport) -> f64| novas.iter().map(|x| f(x)).fold(f64::INFINITY, f64::min);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            a / b
        } else if a > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    };
    let nova_unserved = best(|x| x.unserved);
    let gap = nova_unserved - s.unserved_limit;
    vec![
        ("steal_p50", s.steal_p50),
        ("steal_p95", s.steal_p95),
        ("steal_p99", s.steal_p99),
        ("fair_steal_p95", s.fair_steal_p95),
        ("fair_steal_p99", s.fair_steal_p99),
        ("unserved", s.unserved),
        ("unserved_limit", s.unserved_limit),
        ("p95_vs_nova", ratio(s.steal_p95, best(|x| x.steal_p95))),
        (
            "fair_p95_vs_nova",
            ratio(s.fair_steal_p95, best(|x| x.fair_steal_p95)),
        ),
        (
            "unserved_gap_closed",
            if gap > 1e-12 {
                (nova_unserved - s.unserved) / gap
            } else {
                1.0
            },
        ),
        ("migrations", f64::from(s.migrations)),
        ("unplaced", f64::from(s.unplaced)),
    ]
}

/// Run the scenario once per seed and gather each figure's spread.
pub fn simulate_seeds(scn: &Scenario, seeds: &[u64]) -> Result<SeedsReport, String> {
    let mut per: BTreeMap<String, BTreeMap<&'static str, Vec<f64>>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for &seed in seeds {
        let mut s = scn.clone();
        s.seed = seed;
        let report = simulate(&s)?;
        for st in &report.strategies {
            if !per.contains_key(&st.strategy) {
                order.push(st.strategy.clone());
            }
            let figures = per.entry(st.strategy.clone()).or_default();
            for (k, v) in seed_figures(&report, st) {
                figures.entry(k).or_default().push(v);
            }
        }
    }
    let strategies = order
        .into_iter()
        .map(|name| {
            let figures = per
                .remove(&name)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_string(), Spread::of(v)))
                .collect();
            SeedsStrategy {
                strategy: name,
                figures,
            }
        })
        .collect();
    Ok(SeedsReport {
        scenario: scn.name.clone(),
        hours: scn.hours,
        hosts: twin::hosts_of(scn).len(),
        vms: twin::vms_of(scn).len(),
        seeds: seeds.to_vec(),
        strategies,
    })
}

#[cfg(test)]
mod shape_tests;
