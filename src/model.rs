//! The shared vocabulary: hosts, instances, operations and the cluster view.
//! Plain data with no I/O and no wire format; `api` maps JSON onto these types.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

/// What Nova is scheduling. Upstream Nova labels only rebuilds, so unlabelled moves arrive
/// as [`Operation::Move`]; every move shares one semantics here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Boot,
    LiveMigrate,
    Migrate,
    Resize,
    Evacuate,
    Unshelve,
    Rebuild,
    Move,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::Boot,
        Operation::LiveMigrate,
        Operation::Migrate,
        Operation::Resize,
        Operation::Evacuate,
        Operation::Unshelve,
        Operation::Rebuild,
        Operation::Move,
    ];

    /// An existing instance leaves (or may leave) the host it runs on.
    pub fn is_move(self) -> bool {
        matches!(
            self,
            Operation::LiveMigrate
                | Operation::Migrate
                | Operation::Resize
                | Operation::Evacuate
                | Operation::Rebuild
                | Operation::Move
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Boot => "boot",
            Operation::LiveMigrate => "live_migrate",
            Operation::Migrate => "migrate",
            Operation::Resize => "resize",
            Operation::Evacuate => "evacuate",
            Operation::Unshelve => "unshelve",
            Operation::Rebuild => "rebuild",
            Operation::Move => "move",
        }
    }
}

/// A flavor as Nova embeds it in the request spec. Sizes are `None` when unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flavor {
    pub name: Option<String>,
    pub vcpus: Option<f64>,
    pub memory_mb: Option<f64>,
    pub root_gb: Option<f64>,
    pub ephemeral_gb: Option<f64>,
    pub swap_mb: Option<f64>,
    pub extra_specs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerGroup {
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub policy: Option<String>,
    pub members: Vec<String>,
}

/// An earlier instance of the same multi-create request and the host Nova gave it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sibling {
    pub uuid: String,
    pub host: String,
}

/// The instance being scheduled, with what Nova knows about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instance {
    pub uuid: String,
    pub project_id: Option<String>,
    pub flavor: Flavor,
    pub requested_az: Option<String>,
    pub current_host: Option<String>,
    pub current_az: Option<String>,
    /// Scheduler hints, first value of each (Nova stores lists).
    pub hints: BTreeMap<String, String>,
    pub server_group: Option<ServerGroup>,
    pub metadata: BTreeMap<String, String>,
    /// Earlier instances of the same multi-create request where Nova placed them: counted as
    /// if they already ran there.
    pub siblings: Vec<Sibling>,
    /// The shim could not tell where every earlier instance of the request went.
    pub siblings_incomplete: bool,
}

/// One candidate host (a compute node) as Nova's HostState describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Host {
    pub host: String,
    pub nodename: String,
    pub uuid: Option<String>,
    pub az: Option<String>,
    pub hypervisor_type: Option<String>,
    pub vcpus_total: Option<f64>,
    pub vcpus_used: Option<f64>,
    pub cpu_allocation_ratio: Option<f64>,
    pub memory_mb_total: Option<f64>,
    pub memory_mb_free: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_gb_total: Option<f64>,
    pub disk_gb_free: Option<f64>,
    pub instance_uuids: Vec<String>,
}

impl Host {
    /// Ironic nodes carry no steal and no shared capacity.
    pub fn is_baremetal(&self) -> bool {
        self.hypervisor_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("ironic"))
    }
}

/// One Nova scheduling request: the instance and every candidate host.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulingRequest {
    pub operation: Operation,
    pub instance: Instance,
    pub ignore_hosts: Vec<String>,
    /// Shared: a callout's hosts named by reference are the host cache's own entries.
    pub hosts: Vec<Arc<Host>>,
}

/// Where a figure came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Source {
    /// `POST /v1/telemetry`.
    #[default]
    Push,
    /// A PromQL query against the configured Prometheus.
    Prometheus,
    /// Nova's API (membership: AZ, host, role, flavor).
    Nova,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Push => "push",
            Source::Prometheus => "prometheus",
            Source::Nova => "nova",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "push" => Some(Source::Push),
            "prometheus" => Some(Source::Prometheus),
            "nova" => Some(Source::Nova),
            _ => None,
        }
    }
}

/// What steward last heard about a hypervisor. `observed_at` (unix seconds) and `source` are
/// those of the steal/load measurement; `az` and `vcpus` are membership and do not go stale.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    pub az: Option<String>,
    pub steal: Option<f64>,
    pub load5: Option<f64>,
    /// Share of the host's CPU time in use (0.0..1.0).
    pub cpu_use: Option<f64>,
    pub vcpus: Option<f64>,
    pub observed_at: f64,
    pub source: Source,
}

/// What steward last heard about a VM. `observed_at` and `source` are those of the
/// steal/load measurement; host, AZ, role, project and flavor are membership.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VmFacts {
    pub host: Option<String>,
    pub role: Option<String>,
    pub steal: Option<f64>,
    pub load5: Option<f64>,
    pub vcpus: Option<f64>,
    pub observed_at: f64,
    pub source: Source,
    pub az: Option<String>,
    pub project_id: Option<String>,
    pub flavor: Option<String>,
}

pub const HOURS_PER_WEEK: usize = 168;

/// The nearest-rank `q` quantile (0..1) of sorted values: the smallest value with at least
/// `q` of the values at or below it. `None` for no values.
pub fn nearest_rank(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The hour of the week (0 = Monday 00:00-01:00 UTC) of a unix time. The epoch fell on a
/// Thursday, three days after a Monday.
pub fn hour_of_week(unix_seconds: f64) -> usize {
    let hours = (unix_seconds / 3600.0).floor() as i64 + 3 * 24;
    hours.rem_euclid(HOURS_PER_WEEK as i64) as usize
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// An hour of the week as operators read it, e.g. `Mon 20:00 UTC`.
pub fn hour_of_week_name(hour: usize) -> String {
    format!("{} {:02}:00 UTC", DAYS[hour / 24 % 7], hour % 24)
}

/// A figure per hour of the week (168 values, Monday 00:00 UTC first), rolled up over weeks.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyProfile {
    pub values: Vec<f64>,
    /// How many weeks of history it was computed from.
    pub weeks: u32,
    pub computed_at: f64,
}

impl WeeklyProfile {
    /// The value at an hour of the week; `None` where no history was seen.
    pub fn at(&self, hour: usize) -> Option<f64> {
        self.values
            .get(hour % HOURS_PER_WEEK)
            .copied()
            .filter(|v| v.is_finite())
    }
}

/// Hour-of-week profiles: p95 steal per host, and p95 CPU demand (load per vCPU) per role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeeklyProfiles {
    pub host_steal: HashMap<String, WeeklyProfile>,
    pub role_demand: HashMap<String, WeeklyProfile>,
}

/// The maps of a [`ClusterView`]: persistent (hash array mapped tries), so the next view is a
/// clone that shares every entry a change leaves alone, and a telemetry push costs what it
/// carries, not the size of the cloud. Keys and values sit behind their own `Arc`s: a change
/// copies the trie nodes on its path, and those hold pointers, not strings and whole facts.
#[derive(Clone, PartialEq)]
pub struct ViewMap<V>(PersistentMap<Arc<str>, Arc<V>>);

/// A persistent map hashed with foldhash (randomly seeded per map): a callout looks up every
/// candidate host in several of them, and SipHash was the largest part of that.
pub type PersistentMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

impl<V> Default for ViewMap<V> {
    fn default() -> Self {
        ViewMap(PersistentMap::default())
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for ViewMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<V> ViewMap<V> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.get(key).map(|v| &**v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(|k| &**k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.values().map(|v| &**v)
    }
}

impl<V: Clone> ViewMap<V> {
    /// The entry to change in place: copied first if an older view still shares it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.0.get_mut(key).map(Arc::make_mut)
    }

    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.0
            .insert(key.into(), Arc::new(value))
            .map(Arc::unwrap_or_clone)
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.0.remove(key).map(Arc::unwrap_or_clone)
    }

    /// The value at `key`, inserted by `make` first if there is none.
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        if !self.0.contains_key(key) {
            self.0.insert(key.into(), Arc::new(make()));
        }
        self.get_mut(key).expect("just inserted")
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &V) -> bool) {
        self.0.retain(|k, v| keep(k, v));
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Every entry to change in place (each copied first if an older view shares it).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&**k, Arc::make_mut(v)))
    }
}

impl<V> std::ops::Index<&str> for ViewMap<V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        self.get(key)
            .unwrap_or_else(|| panic!("no entry {key:?} in the view"))
    }
}

/// An immutable picture of the cloud, published whole and read without locks.
#[derive(Debug, Default)]
pub struct ClusterView {
    pub hosts: ViewMap<HostFacts>,
    pub vms: ViewMap<VmFacts>,
    /// Shared between successive views: profiles change hours apart, telemetry seconds apart.
    pub weekly: Arc<WeeklyProfiles>,
    /// Derived from `hosts` and `vms` on first use; a clone starts without it, so an index never outlives
    /// the maps it was built from (views are changed only as clones, then published). A writer
    /// that knows every placement and host AZ it changed hands the next view its updated index instead
    /// ([`ClusterView::set_role_index`]).
    role_index: OnceLock<RoleIndex>,
}

/// Where a VM runs and with which role: what the role index counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub host: Option<String>,
    pub role: Option<String>,
}

impl Placement {
    pub fn of(vm: &VmFacts) -> Placement {
        Placement {
            host: vm.host.clone(),
            role: vm.role.clone(),
        }
    }
}

/// One VM's placement before and after a change (`None`: not in the view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementChange {
    pub before: Option<Placement>,
    pub after: Option<Placement>,
}

/// A hypervisor whose AZ a writer changed: new to the view with an AZ, or moved between AZs
/// (`None`: no AZ known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAzChange {
    pub host: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Everything a writer changed that the index counts, in the order it changed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewChanges {
    pub placements: Vec<PlacementChange>,
    pub host_azs: Vec<HostAzChange>,
}

/// VMs per role per hypervisor and per AZ, and hypervisors per AZ, as steward's view places
/// them: what a scoring request would otherwise count over the whole cloud. Persistent like
/// the view's maps: a changed copy shares what it did not change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoleIndex {
    by_role: PersistentMap<String, PersistentMap<String, u32>>,
    /// VMs steward knows on each hypervisor (with or without roles).
    vms_on: PersistentMap<String, u32>,
    /// Role -> AZ -> VMs of the role on the AZ's hypervisors (by each hypervisor's AZ now).
    by_role_az: PersistentMap<String, PersistentMap<String, u32>>,
    /// AZ -> hypervisors steward knows in it.
    hosts_in_az: PersistentMap<String, u32>,
}

fn bump(map: &mut PersistentMap<String, u32>, key: &str, delta: i64) {
    let n = map.get(key).copied().unwrap_or(0) as i64 + delta;
    if n > 0 {
        map.insert(key.to_string(), n as u32);
    } else {
        map.remove(key);
    }
}

/// `bump` on the inner map of `outer[key]`, dropping it once empty.
fn bump_in(
    outer: &mut PersistentMap<String, PersistentMap<String, u32>>,
    key: &str,
    inner: &str,
    delta: i64,
) {
    let mut map = outer.get(key).cloned().unwrap_or_default();
    bump(&mut map, inner, delta);
    if map.is_empty() {
        outer.remove(key);
    } else {
        outer.insert(key.to_string(), map);
    }
}

impl RoleIndex {
    fn build(hosts: &ViewMap<HostFacts>, vms: &ViewMap<VmFacts>) -> RoleIndex {
        let mut index = RoleIndex::default();
        for facts in hosts.values() {
            if let Some(az) = &facts.az {
                bump(&mut index.hosts_in_az, az, 1);
            }
        }
        let az_of = |host: &str| hosts.get(host).and_then(|h| h.az.as_deref());
        for vm in vms.values() {
            index.count(&Placement::of(vm), az_of, 1);
        }
        index
    }

    /// Add (`delta` 1) or take away (-1) one VM placed at `p`, its host in AZ `az_of(host)`.
    fn count<'a>(&mut self, p: &Placement, az_of: impl Fn(&str) -> Option<&'a str>, delta: i64) {
        let Some(host) = p.host.as_deref() else {
            return;
        };
        bump(&mut self.vms_on, host, delta);
        if let Some(role) = p.role.as_deref() {
            bump_in(&mut self.by_role, role, host, delta);
            if let Some(az) = az_of(host) {
                bump_in(&mut self.by_role_az, role, az, delta);
            }
        }
    }

    /// A hypervisor changed AZ: it counts in its new AZ, and so do its VMs of every role.
    fn move_host(&mut self, c: &HostAzChange) {
        if c.before == c.after {
            return;
        }
        if let Some(az) = &c.before {
            bump(&mut self.hosts_in_az, az, -1);
        }
        if let Some(az) = &c.after {
            bump(&mut self.hosts_in_az, az, 1);
        }
        let roles: Vec<(String, i64)> = self
            .by_role
            .iter()
            .filter_map(|(role, hosts)| hosts.get(&c.host).map(|n| (role.clone(), i64::from(*n))))
            .collect();
        for (role, n) in roles {
            if let Some(az) = &c.before {
                bump_in(&mut self.by_role_az, &role, az, -n);
            }
            if let Some(az) = &c.after {
                bump_in(&mut self.by_role_az, &role, az, n);
            }
        }
    }

    /// This index with `changes` applied, `view` being the view after them: O(changes) (a
    /// hypervisor that changes AZ costs one look per role), sharing the rest.
    pub fn with_changes(&self, changes: &ViewChanges, view: &ClusterView) -> RoleIndex {
        let mut next = self.clone();
        for c in &changes.host_azs {
            next.move_host(c);
        }
        let az_of = |host: &str| view.host_az(host);
        for c in &changes.placements {
            if c.before == c.after {
                continue;
            }
            if let Some(b) = &c.before {
                next.count(b, az_of, -1);
            }
            if let Some(a) = &c.after {
                next.count(a, az_of, 1);
            }
        }
        next
    }

    /// Does steward know which VMs run on this hypervisor?
    pub fn knows_vms_of(&self, host: &str) -> bool {
        self.vms_on.contains_key(host)
    }

    /// VMs steward knows on this hypervisor, with or without a role.
    pub fn vms_on(&self, host: &str) -> u32 {
        self.vms_on.get(host).copied().unwrap_or(0)
    }

    /// Hypervisor -> number of VMs of `role` on it.
    pub fn hosts_of(&self, role: &str) -> Option<&PersistentMap<String, u32>> {
        self.by_role.get(role)
    }

    /// AZ -> number of VMs of `role` on its hypervisors (those whose AZ steward knows).
    pub fn azs_of(&self, role: &str) -> Option<&PersistentMap<String, u32>> {
        self.by_role_az.get(role)
    }

    /// Every AZ with a hypervisor steward knows.
    pub fn azs(&self) -> impl Iterator<Item = &str> {
        self.hosts_in_az.keys().map(String::as_str)
    }
}

impl Clone for ClusterView {
    fn clone(&self) -> Self {
        ClusterView {
            hosts: self.hosts.clone(),
            vms: self.vms.clone(),
            weekly: Arc::clone(&self.weekly),
            role_index: OnceLock::new(),
        }
    }
}

impl PartialEq for ClusterView {
    fn eq(&self, other: &Self) -> bool {
        self.hosts == other.hosts && self.vms == other.vms && self.weekly == other.weekly
    }
}

impl ClusterView {
    /// The role index, built on first use. Publishers call it before publishing so that no
    /// scoring request pays for the build.
    pub fn role_index(&self) -> &RoleIndex {
        self.role_index
            .get_or_init(|| RoleIndex::build(&self.hosts, &self.vms))
    }

    /// Give this view the index of the view it was cloned from with the placement and host AZ
    /// changes the writer made (every one of them), instead of a rebuild over every VM.
    pub fn set_role_index(&mut self, index: RoleIndex) {
        self.role_index = OnceLock::from(index);
    }

    /// The index a full rebuild gives (tests compare it with an incrementally kept one).
    pub fn rebuilt_role_index(&self) -> RoleIndex {
        RoleIndex::build(&self.hosts, &self.vms)
    }

    /// The AZ steward knows for a hypervisor, whatever the age of its telemetry: AZ membership
    /// does not go stale the way a steal sample does.
    pub fn host_az(&self, host: &str) -> Option<&str> {
        self.hosts.get(host).and_then(|h| h.az.as_deref())
    }
}
