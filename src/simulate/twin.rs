//! The cloud of one run: hosts with their allocations, VMs with their host, and how each
//! strategy places a booting VM (PURE).

use std::collections::HashSet;
use std::sync::Arc;

use crate::model::{
    ClusterView, Flavor, Host, HostFacts, Instance, Operation, Placement as ViewPlacement,
    PlacementChange, SchedulingRequest, Source, ViewChanges, VmFacts,
};
use crate::rebalance::plan::VmSize;
use crate::scoring::{self, Options, Profile};

use super::nova::{self, NovaHost, Weigher};
use super::recorded::{Recorded, NO_ROLE};
use super::workload::Rng;
use super::{HostSpec, Placement, Scenario};

pub(super) struct SimHost {
    pub name: String,
    pub az: String,
    pub spec: HostSpec,
    pub vcpus_used: f64,
    pub mem_used: f64,
    pub disk_used: f64,
}

pub(super) struct SimVm {
    pub uuid: String,
    pub role: usize,
    /// The AZ it was booted in (requested round-robin per role).
    pub az: String,
    pub host: Option<usize>,
    pub intensity: f64,
    /// Booted with no role: no hint, no server group.
    pub roleless: bool,
    /// The step it boots at.
    pub boot_step: u64,
    /// The step its owner deletes it at (None: it lives to the end of the run).
    pub depart_step: Option<u64>,
    pub size: VmSize,
    /// The flavor's name (a generated VM's is its role's).
    pub flavor: String,
    /// Its role is a workload's (a recorded VM without one is in `recorded::NO_ROLE`, which
    /// counts in no role's stacking).
    pub known_role: bool,
}

/// The cloud of one run.
pub(super) struct Twin<'a> {
    pub scn: &'a Scenario,
    pub hosts: Vec<SimHost>,
    pub vms: Vec<SimVm>,
    /// (host, role) -> VMs.
    pub stacking: Vec<Vec<u32>>,
    /// (host, role) -> VMs in the role's server group (those with a role).
    pub grouped: Vec<Vec<u32>>,
    pub worst_stacking: u32,
    pub az_violations: HashSet<usize>,
}

/// The hosts of a scenario, in the order Nova's filters hand them to the weighers: AZ by AZ,
/// each AZ's kinds interleaved (`interleave`), numbered `<az>-cmp001` on within the AZ.
pub(super) fn hosts_of(scn: &Scenario) -> Vec<SimHost> {
    if let Some(rec) = &scn.recorded {
        return rec
            .hosts
            .iter()
            .map(|h| SimHost {
                name: h.name.clone(),
                az: h.az.clone(),
                spec: h.spec.clone(),
                vcpus_used: 0.0,
                mem_used: 0.0,
                disk_used: 0.0,
            })
            .collect();
    }
    let kinds = scn.host_kinds();
    let counts: Vec<u32> = kinds.iter().map(|(_, n)| *n).collect();
    let order = interleave(&counts);
    let mut hosts = Vec::new();
    for az in &scn.azs {
        for (i, &k) in order.iter().enumerate() {
            hosts.push(SimHost {
                name: format!("{az}-cmp{:03}", i + 1),
                az: az.clone(),
                spec: kinds[k].0.clone(),
                vcpus_used: 0.0,
                mem_used: 0.0,
                disk_used: 0.0,
            });
        }
    }
    hosts
}

/// The kind of each host of an AZ, in order: the kinds spread evenly, each kind's `i`-th host
/// at `(i + 1/2) / count` of the way, ties in the order the kinds are listed. Two kinds of 3
/// and 1 give A A B A; one kind gives its hosts as they are numbered.
pub(super) fn interleave(counts: &[u32]) -> Vec<usize> {
    let mut at: Vec<(u64, u64, usize)> = counts
        .iter()
        .enumerate()
        .flat_map(|(k, &n)| (0..u64::from(n)).map(move |i| (2 * i + 1, 2 * u64::from(n), k)))
        .collect();
    // Compare the fractions (2i + 1) / 2n exactly, by cross-multiplying.
    at.sort_by(|a, b| {
        (u128::from(a.0) * u128::from(b.1))
            .cmp(&(u128::from(b.0) * u128::from(a.1)))
            .then(a.2.cmp(&b.2))
    });
    at.into_iter().map(|(_, _, k)| k).collect()
}

/// The stream of a VM's lifetime draw (keyed by the VM's index).
const LIFETIME_STREAM: u64 = 0x4C49_4645_0000_0000;
/// The stream of a role's arrival times (plus the role's index; keyed by the arrival's).
const ARRIVAL_STREAM: u64 = 0x4152_5256_0000_0000;

/// The VMs of a scenario, each with its role, requested AZ, intensity, boot and departure
/// steps: first every role's `count` VMs, then every role's arrivals in time order. Each
/// draw is keyed by the VM's (or arrival's) index, so the list is the same for every
/// strategy, and a scenario without arrivals and lifetimes gives the VMs it always gave.
pub(super) fn vms_of(scn: &Scenario) -> Vec<SimVm> {
    if let Some(rec) = &scn.recorded {
        return recorded_vms(scn, rec);
    }
    let mut vms = Vec::new();
    for (r, role) in scn.roles.iter().enumerate() {
        let boot_step = (role.boot_at_hours * 60.0 / scn.step_minutes).round() as u64;
        for i in 0..role.count {
            vms.push(generated_vm(scn, r, u64::from(i), boot_step, vms.len()));
        }
    }
    for (r, role) in scn.roles.iter().enumerate() {
        for (j, hour) in arrival_hours(scn, r).into_iter().enumerate() {
            let boot_step = (hour * 60.0 / scn.step_minutes).floor() as u64;
            let i = u64::from(role.count) + j as u64;
            vms.push(generated_vm(scn, r, i, boot_step, vms.len()));
        }
    }
    vms
}

/// The `i`-th VM of role `r` (its AZ the `i`-th in turn), at index `n` of the VM list.
fn generated_vm(scn: &Scenario, r: usize, i: u64, boot_step: u64, n: usize) -> SimVm {
    let role = &scn.roles[r];
    let n = n as u64;
    let u = Rng::keyed(scn.seed, 1, n).uniform();
    SimVm {
        uuid: format!("{:08x}-0000-4000-8000-{:012x}", r, i),
        role: r,
        az: scn
            .azs
            .get((i % scn.azs.len().max(1) as u64) as usize)
            .cloned()
            .unwrap_or_default(),
        host: None,
        intensity: 1.0 + role.spread * (2.0 * u - 1.0),
        roleless: Rng::keyed(scn.seed, 4, n).uniform() < scn.roleless_share,
        boot_step,
        depart_step: role
            .lifetime_hours
            .and_then(|mean| depart_step(scn, boot_step, mean, n)),
        size: VmSize {
            vcpus: role.vcpus,
            memory_mb: role.memory_mb,
            disk_gb: role.disk_gb,
            block_migration: role.block_migration && role.disk_gb > 0.0,
        },
        flavor: role.name.clone(),
        known_role: true,
    }
}

/// When VM `n`, booted at `boot_step`, is deleted: an exponential lifetime of mean `mean`
/// hours, at least one step; None when that is past the run's end.
fn depart_step(scn: &Scenario, boot_step: u64, mean: f64, n: u64) -> Option<u64> {
    let u = Rng::keyed(scn.seed, LIFETIME_STREAM, n).uniform();
    let hours = -mean * (1.0 - u).ln();
    let life = (hours * 60.0 / scn.step_minutes).round().max(1.0);
    let at = boot_step as f64 + life;
    (at.is_finite() && at < super::steps(scn) as f64).then_some(at as u64)
}

/// The hours (after the start) at which role `r`'s VMs arrive: a Poisson stream of
/// `arrivals_per_hour` from `boot_at_hours` to the end, in order. A rate the scenario's
/// checks refuse gives no arrivals rather than an endless list.
fn arrival_hours(scn: &Scenario, r: usize) -> Vec<f64> {
    let role = &scn.roles[r];
    let rate = role.arrivals_per_hour;
    let mut out = Vec::new();
    if !(rate.is_finite() && rate > 0.0 && scn.hours.is_finite()) {
        return out;
    }
    let cap = (2.0 * super::MAX_ARRIVALS) as usize;
    let mut t = role.boot_at_hours;
    let stream = ARRIVAL_STREAM + r as u64;
    while out.len() < cap {
        let u = Rng::keyed(scn.seed, stream, out.len() as u64).uniform();
        t += -(1.0 - u).ln() / rate;
        if t.is_nan() || t >= scn.hours {
            break;
        }
        out.push(t);
    }
    out
}

/// A recorded cloud's VMs: their own sizes, the AZ they run in, booted at their first sample.
fn recorded_vms(scn: &Scenario, rec: &Recorded) -> Vec<SimVm> {
    let role_of = |name: &str| scn.roles.iter().position(|r| r.name == name).unwrap_or(0);
    rec.vms
        .iter()
        .map(|v| SimVm {
            uuid: v.uuid.clone(),
            role: role_of(v.role.as_deref().unwrap_or(NO_ROLE)),
            az: v.az.clone(),
            host: None,
            intensity: 1.0,
            roleless: v.role.is_none(),
            boot_step: v.first_step,
            depart_step: None,
            size: VmSize {
                vcpus: v.vcpus,
                memory_mb: v.memory_mb,
                disk_gb: v.disk_gb,
                block_migration: v.disk_gb > 0.0,
            },
            flavor: v.flavor.clone(),
            known_role: v.role.is_some(),
        })
        .collect()
}

impl<'a> Twin<'a> {
    pub fn new(scn: &'a Scenario) -> Twin<'a> {
        let hosts = hosts_of(scn);
        let vms = vms_of(scn);
        let stacking = vec![vec![0; scn.roles.len()]; hosts.len()];
        Twin {
            scn,
            hosts,
            vms,
            grouped: stacking.clone(),
            stacking,
            worst_stacking: 0,
            az_violations: Default::default(),
        }
    }

    pub fn size(&self, vm: usize) -> VmSize {
        self.vms[vm].size
    }

    /// Placement's view: the VM's resources fit under the host's allocation ratios.
    pub fn fits(&self, h: usize, s: &VmSize) -> bool {
        let host = &self.hosts[h];
        let spec = &host.spec;
        host.vcpus_used + s.vcpus <= spec.pcpus * spec.cpu_allocation_ratio
            && host.mem_used + s.memory_mb <= spec.memory_mb * spec.ram_allocation_ratio
            && host.disk_used + s.disk_gb <= spec.disk_gb
    }

    pub fn reserve(&mut self, h: usize, s: &VmSize, sign: f64) {
        let host = &mut self.hosts[h];
        host.vcpus_used += sign * s.vcpus;
        host.mem_used += sign * s.memory_mb;
        host.disk_used += sign * s.disk_gb;
    }

    /// The VM now runs on `h` (its allocation there is already reserved).
    pub fn land(&mut self, vm: usize, h: usize) {
        let role = self.vms[vm].role;
        let grouped = u32::from(!self.vms[vm].roleless);
        if let Some(old) = self.vms[vm].host {
            self.stacking[old][role] -= 1;
            self.grouped[old][role] -= grouped;
        }
        self.vms[vm].host = Some(h);
        self.stacking[h][role] += 1;
        self.grouped[h][role] += grouped;
        if self.vms[vm].known_role {
            self.worst_stacking = self.worst_stacking.max(self.stacking[h][role]);
        }
        if self.hosts[h].az != self.vms[vm].az {
            self.az_violations.insert(vm);
        }
    }

    /// The VM is deleted, as Nova deletes an instance: its allocation on its host is freed
    /// and it counts in no host's role stacking or server group. Returns the host it left
    /// (None: it was not running, e.g. it never found a host).
    pub fn depart(&mut self, vm: usize) -> Option<usize> {
        let h = self.vms[vm].host.take()?;
        let size = self.size(vm);
        self.reserve(h, &size, -1.0);
        let role = self.vms[vm].role;
        let grouped = u32::from(!self.vms[vm].roleless);
        self.stacking[h][role] = self.stacking[h][role].saturating_sub(1);
        self.grouped[h][role] = self.grouped[h][role].saturating_sub(grouped);
        Some(h)
    }

    /// The compute node as Placement and Nova's API describe it.
    pub fn model_host(&self, h: usize) -> Host {
        let host = &self.hosts[h];
        let spec = &host.spec;
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

    /// What Nova's weighers read of a host, for a VM of `role`.
    fn nova_host(&self, h: usize, role: usize) -> NovaHost {
        let host = &self.hosts[h];
        let spec = &host.spec;
        NovaHost {
            free_ram_mb: spec.memory_mb - host.mem_used,
            free_vcpus: spec.pcpus * spec.cpu_allocation_ratio - host.vcpus_used,
            free_disk_mb: (spec.disk_gb - host.disk_used) * 1024.0,
            group_members: f64::from(self.grouped[h][role]),
        }
    }

    /// Steward's view from its readings: per VM (when scraped, load in cores) and per host
    /// (when scraped, steal); a VM's steal is its host's.
    pub fn view(&self, obs: &Observed) -> ClusterView {
        let mut view = ClusterView::default();
        let mut host_load = vec![0.0; self.hosts.len()];
        for (i, v) in self.vms.iter().enumerate() {
            if let (Some(h), Some((_, load))) = (v.host, obs.vm[i]) {
                host_load[h] += load;
            }
        }
        for (i, h) in self.hosts.iter().enumerate() {
            let pcpus = h.spec.pcpus;
            let (at, steal) = obs.host_steal[i].map_or((0.0, None), |(at, s)| (at, Some(s)));
            view.hosts.insert(
                h.name.clone(),
                HostFacts {
                    az: Some(h.az.clone()),
                    steal,
                    load5: steal.map(|_| host_load[i]),
                    cpu_use: steal.map(|_| (host_load[i] / pcpus).min(1.0)),
                    vcpus: Some(pcpus),
                    observed_at: at,
                    source: Source::Prometheus,
                },
            );
        }
        for (i, v) in self.vms.iter().enumerate() {
            let Some(h) = v.host else { continue };
            let r = &self.scn.roles[v.role];
            let (at, load) = obs.vm[i].map_or((0.0, None), |(at, l)| (at, Some(l)));
            view.vms.insert(
                v.uuid.clone(),
                VmFacts {
                    host: Some(self.hosts[h].name.clone()),
                    role: (!v.roleless).then(|| r.name.clone()),
                    steal: obs.host_steal[h].map(|o| o.1),
                    load5: load,
                    vcpus: Some(v.size.vcpus),
                    observed_at: at,
                    source: Source::Prometheus,
                    az: Some(self.hosts[h].az.clone()),
                    project_id: None,
                    flavor: Some(v.flavor.clone()),
                },
            );
        }
        view
    }

    /// The scheduling request Nova's shim sends steward for a boot of `vm` over `hosts`.
    fn request(&self, vm: usize, hosts: &[usize]) -> SchedulingRequest {
        let size = self.size(vm);
        let role = &self.scn.roles[self.vms[vm].role];
        SchedulingRequest {
            operation: Operation::Boot,
            instance: Instance {
                uuid: self.vms[vm].uuid.clone(),
                flavor: Flavor {
                    name: Some(self.vms[vm].flavor.clone()),
                    vcpus: Some(size.vcpus),
                    memory_mb: Some(size.memory_mb),
                    root_gb: Some(size.disk_gb),
                    ..Default::default()
                },
                requested_az: Some(self.vms[vm].az.clone()),
                hints: if self.vms[vm].roleless {
                    Default::default()
                } else {
                    [("steward_role".to_string(), role.name.clone())].into()
                },
                ..Default::default()
            },
            ignore_hosts: Vec::new(),
            hosts: hosts
                .iter()
                .map(|&h| Arc::new(self.model_host(h)))
                .collect(),
        }
    }

    /// The host a strategy picks for `vm`, or None (NoValidHost).
    pub fn choose(&self, vm: usize, placement: Placement, ctx: &BootContext) -> Option<usize> {
        let size = self.size(vm);
        let az = &self.vms[vm].az;
        // Placement's allocation candidates in the requested AZ; Nova's default filters
        // (ComputeFilter, ComputeCapabilitiesFilter, ImagePropertiesFilter, the hard server
        // group filters) keep every one of them: the hosts are up, of one hypervisor and image
        // kind whatever their size, and in no hard group.
        let fitting: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| &self.hosts[h].az == az && self.fits(h, &size))
            .collect();
        let role = self.vms[vm].role;
        let nova_hosts = |hs: &[usize]| -> Vec<NovaHost> {
            hs.iter().map(|&h| self.nova_host(h, role)).collect()
        };
        match placement {
            Placement::NovaDefault | Placement::NovaGroups => {
                let groups = placement == Placement::NovaGroups && !self.vms[vm].roleless;
                let w = nova::weigh(&nova_hosts(&fitting), groups, &[]);
                nova::pick(&w).map(|i| fitting[i])
            }
            Placement::StewardDeployed { multiplier } => {
                let req = self.request(vm, &fitting);
                let (out, weights) =
                    scoring::filter_and_weigh(&req, ctx.profile, &ctx.view, ctx.opts, ctx.t);
                // StewardFilter runs last and drops what steward rejects; Nova's weighers and
                // StewardWeigher (raw weights, normalised by Nova) weigh the rest.
                let kept: Vec<usize> = (0..fitting.len())
                    .filter(|&i| out.rejections[i].is_none())
                    .collect();
                let hosts: Vec<usize> = kept.iter().map(|&i| fitting[i]).collect();
                let steward: Vec<f64> = kept.iter().map(|&i| weights[i]).collect();
                let extra = [Weigher {
                    raw: &steward,
                    minval: None,
                    multiplier,
                }];
                let w = nova::weigh(&nova_hosts(&hosts), false, &extra);
                nova::pick(&w).map(|i| hosts[i])
            }
            Placement::StewardAlone => {
                let req = self.request(vm, &fitting);
                let (out, weights) =
                    scoring::filter_and_weigh(&req, ctx.profile, &ctx.view, ctx.opts, ctx.t);
                fitting
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| out.rejections[*i].is_none())
                    .max_by(|a, b| weights[a.0].total_cmp(&weights[b.0]).then(b.0.cmp(&a.0)))
                    .map(|(_, &h)| h)
            }
        }
    }

    /// The view the next decision reads: it sees `vm`, just placed on `h`.
    ///
    /// The role index goes with the view, changed by this one placement (as the service's
    /// writers keep it), rather than rebuilt over every VM at the next boot: a step that
    /// boots thousands of VMs would otherwise cost their number squared.
    pub fn note_placed(&self, view: &mut ClusterView, vm: usize, h: usize, t: f64) {
        let r = &self.scn.roles[self.vms[vm].role];
        let uuid = &self.vms[vm].uuid;
        let facts = VmFacts {
            host: Some(self.hosts[h].name.clone()),
            role: (!self.vms[vm].roleless).then(|| r.name.clone()),
            vcpus: Some(self.vms[vm].size.vcpus),
            observed_at: t,
            az: Some(self.hosts[h].az.clone()),
            ..Default::default()
        };
        let change = ViewChanges {
            placements: vec![PlacementChange {
                before: view.vms.get(uuid.as_str()).map(ViewPlacement::of),
                after: Some(ViewPlacement::of(&facts)),
            }],
            host_azs: Vec::new(),
        };
        let index = view.role_index().clone();
        let mut next = ClusterView::default();
        next.hosts = std::mem::take(&mut view.hosts);
        next.vms = std::mem::take(&mut view.vms);
        next.weekly = Arc::clone(&view.weekly);
        next.vms.insert(uuid.clone(), facts);
        next.set_role_index(index.with_changes(&change, &next));
        *view = next;
    }
}

/// Steward's readings at one time: per VM and per host, (when scraped, value).
pub(super) struct Observed {
    pub vm: Vec<Option<(f64, f64)>>,
    pub host_steal: Vec<Option<(f64, f64)>>,
}

/// What a steward placement reads besides the twin: its profile, options and view.
pub(super) struct BootContext<'p> {
    pub profile: &'p Profile,
    pub opts: &'p Options,
    pub view: ClusterView,
    pub t: f64,
}
