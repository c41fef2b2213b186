//! What every plugin needs about one request, worked out once (kube-scheduler's PreFilter):
//! the instance's role and target AZ, same-role counts per host and per AZ, fresh telemetry.

use std::cell::{OnceCell, RefCell};
use std::collections::{BTreeMap, HashSet};

use crate::model::{ClusterView, HostFacts, Instance, Operation, SchedulingRequest};

/// Settings of the scoring core that are not per profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The server-metadata key that names a VM's role.
    pub role_metadata_key: String,
    /// Telemetry older than this is unknown, never zero.
    pub max_age_seconds: f64,
    /// A move whose current AZ cannot be told: refuse every host (false, the default) or
    /// allow every AZ and mark the answer degraded (true).
    pub unknown_az_fail_open: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            role_metadata_key: "role".into(),
            max_age_seconds: 300.0,
            unknown_az_fail_open: false,
        }
    }
}

/// Where the instance's role came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    Hint,
    ServerGroup,
    Metadata,
    Known,
}

/// The AZ a request is bound to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzBinding {
    /// No AZ constraint (a boot with no AZ named).
    Free,
    /// The request names this AZ.
    Requested(String),
    /// A move of an instance that runs in this AZ.
    Current(String),
    /// A move whose current AZ steward cannot tell.
    Unknown(String),
}

/// The instance's role: hint `steward_role`, else its server group's name, else the configured
/// server-metadata key, else the role steward knows for that uuid.
pub fn resolve_role(
    inst: &Instance,
    view: &ClusterView,
    metadata_key: &str,
) -> Option<(String, RoleSource)> {
    let non_empty = |s: &String| !s.trim().is_empty();
    if let Some(r) = inst.hints.get("steward_role").filter(|s| non_empty(s)) {
        return Some((r.clone(), RoleSource::Hint));
    }
    if let Some(r) = inst
        .server_group
        .as_ref()
        .and_then(|g| g.name.as_ref())
        .filter(|s| non_empty(s))
    {
        return Some((r.clone(), RoleSource::ServerGroup));
    }
    if let Some(r) = inst.metadata.get(metadata_key).filter(|s| non_empty(s)) {
        return Some((r.clone(), RoleSource::Metadata));
    }
    view.vms
        .get(&inst.uuid)
        .and_then(|v| v.role.clone())
        .filter(non_empty)
        .map(|r| (r, RoleSource::Known))
}

/// Per-request facts shared by the plugins. Single-threaded; lazily computed parts are
/// worked out at most once per request.
pub struct Context<'a> {
    pub req: &'a SchedulingRequest,
    pub view: &'a ClusterView,
    pub opts: &'a Options,
    pub now: f64,
    pub role: Option<String>,
    pub role_source: Option<RoleSource>,
    pub az: AzBinding,
    /// Whether the caller wants the figures behind each score: plugins skip building
    /// explanations on the hot path when nobody reads them.
    pub explain: bool,
    role_counts: OnceCell<Vec<u32>>,
    most_role_count: OnceCell<u32>,
    domains: OnceCell<Domains>,
    horizon: OnceCell<RoleHorizon<'a>>,
    degraded: RefCell<Vec<String>>,
}

/// Every learned role's predicted CPU demand per VM (cores) at each hour from now: the
/// time-aware view of a host's tenants that peak prediction reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoleHorizon<'a> {
    /// Hours predicted, this hour first.
    pub hours: usize,
    /// Per role with a demand profile: one value per hour. An hour the profile has no
    /// history for takes the role's highest known hour (unknown is not idle).
    pub roles: Vec<(&'a str, Vec<f64>)>,
    /// What a VM without a profile (no role, or a role too new to have history) is assumed
    /// to demand at every hour: the mean over the learned roles of their highest hour.
    pub typical_peak: Option<f64>,
}

impl RoleHorizon<'_> {
    pub fn of(&self, role: &str) -> Option<&[f64]> {
        self.roles
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, v)| v.as_slice())
    }
}

/// Same-role VM counts per eligible AZ (a topology domain).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Domains {
    pub counts: BTreeMap<String, u32>,
}

impl Domains {
    pub fn global_min(&self) -> Option<u32> {
        self.counts.values().copied().min()
    }
}

impl<'a> Context<'a> {
    pub fn new(
        req: &'a SchedulingRequest,
        view: &'a ClusterView,
        opts: &'a Options,
        now: f64,
    ) -> Self {
        let (role, role_source) = match resolve_role(&req.instance, view, &opts.role_metadata_key) {
            Some((r, s)) => (Some(r), Some(s)),
            None => (None, None),
        };
        Context {
            req,
            view,
            opts,
            now,
            role,
            role_source,
            az: az_binding(req, view),
            explain: false,
            role_counts: OnceCell::new(),
            most_role_count: OnceCell::new(),
            domains: OnceCell::new(),
            horizon: OnceCell::new(),
            degraded: RefCell::new(Vec::new()),
        }
    }

    /// The hour of the week of `now` (0 = Monday 00:00 UTC).
    pub fn hour_of_week(&self) -> usize {
        crate::model::hour_of_week(self.now)
    }

    /// Each learned role's demand per VM over the next `hours` hours from this hour. Worked
    /// out once per request (the first caller's `hours` holds for the request).
    pub fn role_horizon(&self, hours: usize) -> &RoleHorizon<'a> {
        self.horizon.get_or_init(|| {
            let view: &'a ClusterView = self.view;
            let start = self.hour_of_week();
            let mut roles: Vec<(&'a str, Vec<f64>)> = view
                .weekly
                .role_demand
                .iter()
                .filter_map(|(role, profile)| {
                    let highest = profile
                        .values
                        .iter()
                        .copied()
                        .filter(|v| v.is_finite())
                        .max_by(f64::total_cmp)?;
                    let curve = (0..hours.max(1))
                        .map(|a| profile.at(start + a).unwrap_or(highest).max(0.0))
                        .collect();
                    Some((role.as_str(), curve))
                })
                .collect();
            roles.sort_by(|a, b| a.0.cmp(b.0));
            let peaks: Vec<f64> = roles
                .iter()
                .map(|(_, c)| c.iter().copied().fold(0.0, f64::max))
                .collect();
            let typical_peak =
                (!peaks.is_empty()).then(|| peaks.iter().sum::<f64>() / peaks.len() as f64);
            RoleHorizon {
                hours: hours.max(1),
                roles,
                typical_peak,
            }
        })
    }

    /// Record why the answer is less than complete (once per distinct reason).
    pub fn note_degraded(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut d = self.degraded.borrow_mut();
        if !d.contains(&reason) {
            d.push(reason);
        }
    }

    pub fn into_degraded_reasons(self) -> Vec<String> {
        self.degraded.into_inner()
    }

    /// A candidate's AZ: as the request gives it, else as steward's view knows the host (the
    /// shim cannot see Nova's default AZ of a host in no AZ aggregate; the Nova refresh can).
    pub fn host_az(&self, host: usize) -> Option<&'a str> {
        let req: &'a SchedulingRequest = self.req;
        let h = &req.hosts[host];
        h.az.as_deref().or_else(|| self.view.host_az(&h.host))
    }

    /// The host's telemetry when it is fresh enough to trust.
    pub fn fresh_facts(&self, host: usize) -> Option<&'a HostFacts> {
        let facts = self.view.hosts.get(&self.req.hosts[host].host)?;
        let age = self.now - facts.observed_at;
        (age <= self.opts.max_age_seconds).then_some(facts)
    }

    /// The server group whose membership defines the role, if the role came from one.
    fn role_group(&self) -> Option<HashSet<&'a str>> {
        let req: &'a SchedulingRequest = self.req;
        match (&req.instance.server_group, self.role_source) {
            (Some(g), Some(RoleSource::ServerGroup)) => Some(
                g.members
                    .iter()
                    .map(String::as_str)
                    .filter(|m| *m != req.instance.uuid)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Where steward's view puts the moving instance, if it has the request's role: that
    /// host's count must not include the instance itself.
    fn own_host(&self, role: &str) -> Option<&'a str> {
        let view: &'a ClusterView = self.view;
        view.vms
            .get(&self.req.instance.uuid)
            .filter(|v| v.role.as_deref() == Some(role))
            .and_then(|v| v.host.as_deref())
    }

    /// VMs of the request's role on each candidate host (request order). A server group's role
    /// is its membership, counted exactly from Nova's instance list; any other role is counted
    /// from steward's role index, or VM by VM on a host the view does not know.
    pub fn role_counts(&self) -> &[u32] {
        self.role_counts.get_or_init(|| {
            let Some(role) = self.role.as_deref() else {
                return vec![0; self.req.hosts.len()];
            };
            let mut counts = self.placed_role_counts(role);
            for s in self.uncounted_siblings(role) {
                for (i, h) in self.req.hosts.iter().enumerate() {
                    if h.host == s.host {
                        counts[i] += 1;
                    }
                }
            }
            counts
        })
    }

    /// The most VMs of the request's role on any one candidate host (0 without a role):
    /// worked out once per request, not once per host scored.
    pub fn most_role_count(&self) -> u32 {
        *self
            .most_role_count
            .get_or_init(|| self.role_counts().iter().copied().max().unwrap_or(0))
    }

    /// The earlier instances of this multi-create (docs/callout.md, `siblings`) that the other
    /// counts do not hold yet: the hosts of a multi-create are consumed between its instances,
    /// and steward must count those picks as if the instances already ran there.
    fn uncounted_siblings(&self, role: &str) -> Vec<&'a crate::model::Sibling> {
        let req: &'a SchedulingRequest = self.req;
        if req.instance.siblings_incomplete {
            self.note_degraded(
                "multi-create: the shim could not tell where every earlier instance of the \
                 request went; they are not all counted",
            );
        }
        let group = self.role_group().is_some();
        req.instance
            .siblings
            .iter()
            .filter(|s| s.uuid != req.instance.uuid)
            .filter(|s| {
                let listed = req
                    .hosts
                    .iter()
                    .any(|h| h.host == s.host && h.instance_uuids.contains(&s.uuid));
                let known = self.view.vms.get(&s.uuid).is_some_and(|v| {
                    v.host.as_deref() == Some(s.host.as_str()) && v.role.as_deref() == Some(role)
                });
                // A server group's members are counted from the hosts' instance lists (Nova adds
                // a multi-create's picks there for groups); any other role from the view.
                !(if group { listed } else { known })
            })
            .collect()
    }

    /// Same-role VMs Nova or steward's view already places on each candidate host.
    fn placed_role_counts(&self, role: &str) -> Vec<u32> {
        {
            let hosts = &self.req.hosts;
            let own = self.req.instance.uuid.as_str();
            if let Some(members) = self.role_group() {
                return hosts
                    .iter()
                    .map(|h| {
                        h.instance_uuids
                            .iter()
                            .filter(|u| members.contains(u.as_str()))
                            .count() as u32
                    })
                    .collect();
            }
            let index = self.view.role_index();
            let of_role = index.hosts_of(role);
            let own_host = self.own_host(role);
            hosts
                .iter()
                .map(|h| match of_role.and_then(|i| i.get(&h.host)) {
                    Some(n) => n - u32::from(own_host == Some(h.host.as_str())),
                    None if index.knows_vms_of(&h.host) => 0,
                    None => h
                        .instance_uuids
                        .iter()
                        .filter(|u| {
                            u.as_str() != own
                                && self
                                    .view
                                    .vms
                                    .get(u.as_str())
                                    .is_some_and(|v| v.role.as_deref() == Some(role))
                        })
                        .count() as u32,
                })
                .collect()
        }
    }

    /// Same-role counts per eligible AZ: the AZs of the candidates and of every host steward
    /// knows, narrowed to the bound AZ if there is one. A domain whose hosts are all full or
    /// filtered out still counts, as in Kubernetes topology spread.
    pub fn domains(&self) -> &Domains {
        self.domains.get_or_init(|| {
            let bound = match &self.az {
                AzBinding::Requested(az) | AzBinding::Current(az) => Some(az.as_str()),
                AzBinding::Free | AzBinding::Unknown(_) => None,
            };
            let eligible = |az: &str| bound.is_none_or(|b| b == az);
            let mut counts: BTreeMap<String, u32> = BTreeMap::new();
            // Allocates once per AZ, not once per host.
            let mut add = |az: &str, n: u32| match counts.get_mut(az) {
                Some(c) => *c += n,
                None => {
                    counts.insert(az.to_string(), n);
                }
            };
            let index = self.view.role_index();
            for az in index.azs().filter(|a| eligible(a)) {
                add(az, 0);
            }
            let role_counts = self.role_counts();
            let mut candidates: HashSet<&str, _> = HashSet::with_capacity_and_hasher(
                self.req.hosts.len(),
                foldhash::fast::RandomState::default(),
            );
            for (i, h) in self.req.hosts.iter().enumerate() {
                candidates.insert(h.host.as_str());
                if let Some(az) = self.host_az(i).filter(|a| eligible(a)) {
                    add(az, role_counts[i]);
                }
            }
            // Same-role VMs on hosts that are not candidates, placed by steward's view.
            let mut add_elsewhere = |host: &str, n: u32| {
                if !candidates.contains(host) {
                    if let Some(az) = self.view.host_az(host).filter(|a| eligible(a)) {
                        add(az, n);
                    }
                }
            };
            if let Some(role) = self.role.as_deref() {
                for s in self.uncounted_siblings(role) {
                    add_elsewhere(&s.host, 1);
                }
            }
            match (self.role.as_deref(), self.role_group()) {
                (None, _) => {}
                (Some(_), Some(members)) => {
                    for m in members {
                        if let Some(host) = self.view.vms.get(m).and_then(|v| v.host.as_deref()) {
                            add_elsewhere(host, 1);
                        }
                    }
                }
                (Some(role), None) => {
                    // The index's per-AZ totals less what the candidates (counted above) and
                    // the instance itself hold: the same sum over every other hypervisor, at
                    // the cost of the candidates rather than of the cloud.
                    let mut elsewhere: BTreeMap<&str, i64> = index
                        .azs_of(role)
                        .into_iter()
                        .flatten()
                        .filter(|(az, _)| eligible(az))
                        .map(|(az, n)| (az.as_str(), i64::from(*n)))
                        .collect();
                    let of_role = index.hosts_of(role);
                    let mut less = |host: &str, n: u32| {
                        if let Some(total) =
                            self.view.host_az(host).and_then(|az| elsewhere.get_mut(az))
                        {
                            *total -= i64::from(n);
                        }
                    };
                    for host in &candidates {
                        less(
                            host,
                            of_role.and_then(|i| i.get(*host)).copied().unwrap_or(0),
                        );
                    }
                    if let Some(own) = self.own_host(role).filter(|h| !candidates.contains(h)) {
                        less(own, 1);
                    }
                    for (az, n) in elsewhere {
                        add(az, u32::try_from(n).unwrap_or(0));
                    }
                }
            }
            Domains { counts }
        })
    }
}

/// The AZ rule Nova itself does not keep: a move stays in the instance's current AZ unless the
/// request names another.
fn az_binding(req: &SchedulingRequest, view: &ClusterView) -> AzBinding {
    let inst = &req.instance;
    if let Some(az) = inst.requested_az.as_ref().filter(|a| !a.is_empty()) {
        return AzBinding::Requested(az.clone());
    }
    if req.operation == Operation::Unshelve {
        // A shelved-offloaded instance runs nowhere, but it belongs to the AZ it ran in
        // (Nova's instance field, which the shim sends; else what steward's view holds).
        return match inst
            .current_az
            .clone()
            .or_else(|| view.vms.get(&inst.uuid).and_then(|v| v.az.clone()))
            .filter(|a| !a.is_empty())
        {
            Some(az) => AzBinding::Current(az),
            None => AzBinding::Unknown(format!(
                "the AZ of shelved instance {} is unknown",
                inst.uuid
            )),
        };
    }
    // Upstream Nova labels only rebuilds: an instance that already runs somewhere is being moved,
    // whatever the shim could tell (a resize onto the same host leaves ignore_hosts empty).
    let known_host = view.vms.get(&inst.uuid).and_then(|v| v.host.as_ref());
    if !req.operation.is_move() && (req.operation != Operation::Boot || known_host.is_none()) {
        return AzBinding::Free;
    }
    if let Some(az) = inst.current_az.as_ref().filter(|a| !a.is_empty()) {
        return AzBinding::Current(az.clone());
    }
    let source = inst
        .current_host
        .clone()
        .or_else(|| req.ignore_hosts.first().cloned())
        .or_else(|| view.vms.get(&inst.uuid).and_then(|v| v.host.clone()));
    match source {
        Some(src) => match view.host_az(&src).or_else(|| {
            // a resize to the same host lists the source among the candidates
            req.hosts
                .iter()
                .find(|h| h.host == src)
                .and_then(|h| h.az.as_deref())
                .or_else(|| view.host_az(&src))
        }) {
            Some(az) => AzBinding::Current(az.to_string()),
            None => AzBinding::Unknown(format!(
                "the AZ of source host {src} of instance {} is unknown",
                inst.uuid
            )),
        },
        None => AzBinding::Unknown(format!(
            "the source host of instance {} is unknown",
            inst.uuid
        )),
    }
}
