//! What recovery may do this round. PURE: suspicions, the journal's state and `now` in,
//! decisions out.
//!
//! - **Guards.** When more than `max_share_per_az` of an AZ's compute hosts, or more than
//!   `max_hosts` hosts in the cloud, look dead at once, the likelier story is a partition
//!   or a control-plane fault (Nova's database, the message bus, the telemetry path), not that
//!   many hypervisors died together: nothing is fenced or evacuated in that scope, and the
//!   guard is reported (metric and alert). A host looks dead when it is suspected, or when one
//!   of the two mandatory witnesses already calls it dead ([`Failing`]): hosts cut off together
//!   fall silent to Nova up to a heartbeat interval apart, and the first one must not be
//!   fenced alone before the others show.
//! - **Hosts.** A host with an open incident, or fenced and not yet released, gets no new
//!   incident; a host whose last incident closed less than `host_cooldown_seconds` ago waits.
//! - **VMs.** Evacuated in the operator's priority order (metadata key, then role, then
//!   flavor), within a cloud-wide and a per-AZ concurrency budget; never more evacuations in
//!   flight in an AZ than it has hosts free to receive one (Nova's scheduler picks the host,
//!   so this is how "one VM at a time per target" is kept); a VM evacuated less than
//!   `vm_cooldown_seconds` ago waits.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::suspect::Suspicion;
use super::PrioritySettings;

/// The guard limits and cool-downs the host plan reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostLimits {
    pub max_share_per_az: f64,
    pub max_hosts: usize,
    pub host_cooldown_seconds: f64,
}

/// A host not suspected but half dead (`suspect::Finding::half_dead`): counted by the guards,
/// never acted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Failing {
    pub host: String,
    pub az: Option<String>,
}

/// A guard that held: in its scope nothing is fenced or evacuated this round.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct GuardTrip {
    /// `cloud`, or `az:<name>`.
    pub scope: String,
    /// Hosts that look dead in the scope: suspected, or half dead.
    pub suspected: usize,
    pub hosts: usize,
    pub detail: String,
}

/// Why a suspected host gets no incident this round.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Held {
    pub host: String,
    pub reason: String,
}

/// The journal's memory of one host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostHistory {
    /// An incident is open (not closed), or closed with the host still forced down.
    pub unreleased: bool,
    /// Unix seconds the host's newest incident closed.
    pub last_closed_at: Option<f64>,
}

/// The host-level decision of one round.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct HostPlan {
    /// Suspicions to open incidents for, host name order.
    pub open: Vec<Suspicion>,
    /// Suspected hosts left alone, each with why.
    pub held: Vec<Held>,
    /// Guards that held this round.
    pub guards: Vec<GuardTrip>,
}

impl HostPlan {
    /// Is `az` (or the whole cloud) under a guard this round?
    pub fn guarded(&self, az: &str) -> bool {
        self.guards
            .iter()
            .any(|g| g.scope == "cloud" || g.scope == format!("az:{az}"))
    }
}

/// Decide which suspicions become incidents. `failing` are the hosts half dead this round
/// (counted by the guards only); `hosts_per_az` counts every compute host Nova lists in each AZ
/// (up or down); `history` is keyed by host.
pub fn plan_hosts(
    suspicions: &[Suspicion],
    failing: &[Failing],
    hosts_per_az: &BTreeMap<String, usize>,
    history: &BTreeMap<String, HostHistory>,
    limits: &HostLimits,
    now: f64,
) -> HostPlan {
    let mut plan = HostPlan::default();
    // Hosts already recovered and still forced down are known dead, not news: they do not
    // count towards a guard.
    let news = |host: &str| {
        !history
            .get(host)
            .is_some_and(|h| h.unreleased && h.last_closed_at.is_some())
    };
    let looking_dead: Vec<(&str, Option<&str>)> = suspicions
        .iter()
        .map(|s| (s.host.as_str(), s.az.as_deref()))
        .chain(failing.iter().map(|f| (f.host.as_str(), f.az.as_deref())))
        .filter(|(h, _)| news(h))
        .collect();
    let half = |scope: Option<&str>| {
        failing
            .iter()
            .filter(|f| news(&f.host) && scope.is_none_or(|az| f.az.as_deref() == Some(az)))
            .count()
    };
    plan.guards = guards(&looking_dead, &half, hosts_per_az, limits);
    let mut sorted: Vec<&Suspicion> = suspicions.iter().collect();
    sorted.sort_by(|a, b| a.host.cmp(&b.host));
    for s in sorted {
        let hist = history.get(&s.host).cloned().unwrap_or_default();
        let hold = |reason: String| Held {
            host: s.host.clone(),
            reason,
        };
        let Some(az) = s.az.as_deref() else {
            plan.held.push(hold(format!(
                "host {} is in no availability zone steward knows, and an evacuation must stay \
                 in the VM's AZ; add the host to an aggregate with availability_zone metadata",
                s.host
            )));
            continue;
        };
        if hist.unreleased {
            plan.held.push(hold(format!(
                "host {} already has an incident that is open or awaits `steward evacuate \
                 release {}`",
                s.host, s.host
            )));
            continue;
        }
        if plan.guarded(az) {
            plan.held.push(hold(format!(
                "the partition guard holds for {}",
                if plan.guards.iter().any(|g| g.scope == "cloud") {
                    "the whole cloud".to_string()
                } else {
                    format!("AZ {az}")
                }
            )));
            continue;
        }
        if let Some(closed) = hist.last_closed_at {
            let since = now - closed;
            if since < limits.host_cooldown_seconds {
                plan.held.push(hold(format!(
                    "host {} was recovered {since:.0} s ago; [recovery] host_cooldown_seconds = \
                     {:.0} keeps a flapping host from being recovered again so soon",
                    s.host, limits.host_cooldown_seconds
                )));
                continue;
            }
        }
        plan.open.push(s.clone());
    }
    plan
}

/// The guards that hold for the hosts that look dead (`half`: how many of them, in a scope,
/// look dead to one witness only).
fn guards(
    looking_dead: &[(&str, Option<&str>)],
    half: &dyn Fn(Option<&str>) -> usize,
    hosts_per_az: &BTreeMap<String, usize>,
    limits: &HostLimits,
) -> Vec<GuardTrip> {
    let mut trips = Vec::new();
    let total_hosts: usize = hosts_per_az.values().sum();
    if looking_dead.len() > limits.max_hosts {
        trips.push(GuardTrip {
            scope: "cloud".into(),
            suspected: looking_dead.len(),
            hosts: total_hosts,
            detail: format!(
                "{} hosts look dead at once ({} of them to one witness only), more than \
                 [recovery] max_hosts = {}: a partition or a control-plane fault is likelier \
                 than that many dead hypervisors; check Nova's database and message bus and the \
                 telemetry path before releasing the guard (raise max_hosts only if the hosts \
                 are really dead)",
                looking_dead.len(),
                half(None),
                limits.max_hosts
            ),
        });
    }
    let mut per_az: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, az) in looking_dead {
        if let Some(az) = az {
            *per_az.entry(az).or_default() += 1;
        }
    }
    for (az, n) in &per_az {
        let hosts = hosts_per_az.get(*az).copied().unwrap_or(0);
        let share = if hosts == 0 {
            1.0
        } else {
            *n as f64 / hosts as f64
        };
        if share > limits.max_share_per_az {
            trips.push(GuardTrip {
                scope: format!("az:{az}"),
                suspected: *n,
                hosts,
                detail: format!(
                    "{n} of {hosts} hosts of AZ {az} look dead at once ({:.0} %; {} of them to \
                     one witness only), more than [recovery] max_share_per_az = {:.0} %: a \
                     partition of the AZ (its switch, its rack power, the path to the control \
                     plane) is likelier; nothing in {az} is fenced or evacuated until fewer \
                     hosts look dead",
                    share * 100.0,
                    half(Some(az)),
                    limits.max_share_per_az * 100.0
                ),
            });
        }
    }
    trips
}

/// A VM that waits for evacuation, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PendingVm {
    /// The journal's row id.
    pub id: String,
    pub vm: String,
    pub name: String,
    pub az: String,
    pub role: Option<String>,
    pub flavor: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds this VM was last evacuated (by any incident), if ever.
    pub last_evacuated_at: Option<f64>,
}

/// An evacuation under way: its AZ, and its destination once Nova chose one.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlightEvacuation {
    pub az: String,
    pub target: Option<String>,
}

/// The budgets the VM plan reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmLimits {
    pub max_concurrent: usize,
    pub max_concurrent_per_az: usize,
    pub vm_cooldown_seconds: f64,
}

/// A VM not started this round and why.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Deferred {
    pub vm: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmPlan {
    /// Journal row ids to start now, in order.
    pub start: Vec<String>,
    pub deferred: Vec<Deferred>,
}

/// The operator's priority of a VM, as a sort key (smaller first): metadata value (higher
/// first; a VM without it or with a non-number after every numbered one), role rank, flavor
/// rank (listed first, in list order; unlisted after), then name and uuid for a stable order.
pub fn priority_key(vm: &PendingVm, p: &PrioritySettings) -> (i64, usize, usize, String, String) {
    let meta = p
        .metadata_key
        .as_deref()
        .and_then(|k| vm.metadata.get(k))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map(|v| -(v * 1000.0).round() as i64)
        .unwrap_or(i64::MAX);
    let rank = |list: &[String], v: Option<&String>| {
        v.and_then(|v| list.iter().position(|x| x == v))
            .unwrap_or(list.len())
    };
    (
        meta,
        rank(&p.roles, vm.role.as_ref()),
        rank(&p.flavors, vm.flavor.as_ref()),
        vm.name.clone(),
        vm.vm.clone(),
    )
}

/// Sort VMs by the operator's priority.
pub fn order(vms: &mut [PendingVm], p: &PrioritySettings) {
    vms.sort_by_cached_key(|v| priority_key(v, p));
}

/// Which pending VMs start now. `free_targets_per_az` counts each AZ's hosts that can take an
/// evacuation (up, enabled, not forced down); `guarded` names AZs under a guard (`"*"`: all).
pub fn plan_vms(
    pending: &[PendingVm],
    in_flight: &[InFlightEvacuation],
    free_targets_per_az: &BTreeMap<String, usize>,
    guarded: &BTreeSet<String>,
    limits: &VmLimits,
    priority: &PrioritySettings,
    now: f64,
) -> VmPlan {
    let mut out = VmPlan::default();
    let mut vms = pending.to_vec();
    order(&mut vms, priority);
    let mut total = in_flight.len();
    let mut per_az: BTreeMap<String, usize> = BTreeMap::new();
    let mut busy_targets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in in_flight {
        *per_az.entry(f.az.clone()).or_default() += 1;
        if let Some(t) = &f.target {
            busy_targets
                .entry(f.az.clone())
                .or_default()
                .insert(t.clone());
        }
    }
    for vm in vms {
        let defer = |reason: String| Deferred {
            vm: vm.vm.clone(),
            reason,
        };
        if guarded.contains("*") || guarded.contains(&vm.az) {
            out.deferred.push(defer(format!(
                "the partition guard holds for AZ {}; no evacuation starts there",
                vm.az
            )));
            continue;
        }
        if let Some(at) = vm.last_evacuated_at {
            if now - at < limits.vm_cooldown_seconds {
                out.deferred.push(defer(format!(
                    "server {} was evacuated {:.0} s ago; [recovery] vm_cooldown_seconds = {:.0}",
                    vm.vm,
                    now - at,
                    limits.vm_cooldown_seconds
                )));
                continue;
            }
        }
        if total >= limits.max_concurrent {
            out.deferred.push(defer(format!(
                "{total} evacuations in flight, [recovery] max_concurrent = {}",
                limits.max_concurrent
            )));
            continue;
        }
        let in_az = per_az.get(&vm.az).copied().unwrap_or(0);
        if in_az >= limits.max_concurrent_per_az {
            out.deferred.push(defer(format!(
                "{in_az} evacuations in flight in AZ {}, [recovery] max_concurrent_per_az = {}",
                vm.az, limits.max_concurrent_per_az
            )));
            continue;
        }
        let targets = free_targets_per_az.get(&vm.az).copied().unwrap_or(0);
        if in_az >= targets {
            out.deferred.push(defer(if targets == 0 {
                format!(
                    "AZ {} has no host up that can take an evacuation; the VM stays where it \
                     is (it never leaves its AZ)",
                    vm.az
                )
            } else {
                format!(
                    "{in_az} evacuation(s) in flight in AZ {}, which has {targets} host(s) to \
                     take one: one VM at a time per target",
                    vm.az
                )
            }));
            continue;
        }
        total += 1;
        per_az.insert(vm.az.clone(), in_az + 1);
        out.start.push(vm.id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sus(host: &str, az: &str) -> Suspicion {
        Suspicion {
            host: host.into(),
            az: Some(az.into()),
            service_id: format!("svc-{host}"),
            evidence: Vec::new(),
            silent_seconds: 100.0,
        }
    }

    fn limits() -> HostLimits {
        HostLimits {
            max_share_per_az: 0.5,
            max_hosts: 3,
            host_cooldown_seconds: 3600.0,
        }
    }

    fn azs(v: &[(&str, usize)]) -> BTreeMap<String, usize> {
        v.iter().map(|(a, n)| (a.to_string(), *n)).collect()
    }

    #[test]
    fn one_dead_host_of_three_opens_an_incident_two_trip_the_az_guard() {
        let hosts = azs(&[("az1", 3), ("az2", 3)]);
        let p = plan_hosts(
            &[sus("a1", "az1")],
            &[],
            &hosts,
            &BTreeMap::new(),
            &limits(),
            0.0,
        );
        assert_eq!(p.open.len(), 1);
        assert!(p.guards.is_empty());
        let p = plan_hosts(
            &[sus("a1", "az1"), sus("a2", "az1"), sus("b1", "az2")],
            &[],
            &hosts,
            &BTreeMap::new(),
            &limits(),
            0.0,
        );
        assert_eq!(p.guards.len(), 1, "{:?}", p.guards);
        assert_eq!(p.guards[0].scope, "az:az1");
        assert_eq!(
            p.open.iter().map(|s| s.host.as_str()).collect::<Vec<_>>(),
            ["b1"]
        );
        assert_eq!(p.held.len(), 2);
    }

    #[test]
    fn a_host_half_dead_beside_a_suspected_one_trips_the_az_guard() {
        let hosts = azs(&[("az2", 3)]);
        let half = |h: &str| Failing {
            host: h.into(),
            az: Some("az2".into()),
        };
        // b1 is suspected; b2's telemetry stopped with b1's but Nova still counts its last
        // heartbeat: two of three look dead, nothing is opened.
        let p = plan_hosts(
            &[sus("b1", "az2")],
            &[half("b2")],
            &hosts,
            &BTreeMap::new(),
            &limits(),
            0.0,
        );
        assert!(p.open.is_empty(), "{p:?}");
        assert_eq!(p.guards.len(), 1);
        assert_eq!(
            (p.guards[0].scope.as_str(), p.guards[0].suspected),
            ("az:az2", 2)
        );
        assert!(p.guards[0].detail.contains("1 of them to one witness only"));
        // The control: b1 alone is opened; a half-dead host already recovered (forced down,
        // not released) is no news and trips nothing.
        let mut hist = BTreeMap::new();
        hist.insert(
            "b2".to_string(),
            HostHistory {
                unreleased: true,
                last_closed_at: Some(0.0),
            },
        );
        let p = plan_hosts(
            &[sus("b1", "az2")],
            &[half("b2")],
            &hosts,
            &hist,
            &limits(),
            10.0,
        );
        assert!(p.guards.is_empty(), "{:?}", p.guards);
        assert_eq!(p.open.len(), 1);
    }

    #[test]
    fn too_many_hosts_in_the_cloud_trips_the_cloud_guard() {
        let hosts = azs(&[("a", 10), ("b", 10), ("c", 10), ("d", 10)]);
        let s = [
            sus("a1", "a"),
            sus("b1", "b"),
            sus("c1", "c"),
            sus("d1", "d"),
        ];
        let p = plan_hosts(&s, &[], &hosts, &BTreeMap::new(), &limits(), 0.0);
        assert!(p.open.is_empty());
        assert_eq!(p.guards[0].scope, "cloud");
    }

    #[test]
    fn unreleased_and_cooling_hosts_wait() {
        let hosts = azs(&[("az1", 10)]);
        let mut hist = BTreeMap::new();
        hist.insert(
            "a1".to_string(),
            HostHistory {
                unreleased: true,
                last_closed_at: Some(0.0),
            },
        );
        hist.insert(
            "a2".to_string(),
            HostHistory {
                unreleased: false,
                last_closed_at: Some(1000.0),
            },
        );
        let p = plan_hosts(
            &[sus("a1", "az1"), sus("a2", "az1")],
            &[],
            &hosts,
            &hist,
            &limits(),
            2000.0,
        );
        assert!(p.open.is_empty(), "{p:?}");
        assert!(p.held[0].reason.contains("release"));
        assert!(p.held[1].reason.contains("host_cooldown_seconds"));
        let later = plan_hosts(
            &[sus("a2", "az1")],
            &[],
            &hosts,
            &hist,
            &limits(),
            1000.0 + 3601.0,
        );
        assert_eq!(later.open.len(), 1);
    }

    fn vm(id: &str, az: &str) -> PendingVm {
        PendingVm {
            id: id.into(),
            vm: id.into(),
            name: id.into(),
            az: az.into(),
            ..Default::default()
        }
    }

    #[test]
    fn vms_start_in_priority_order_within_budgets() {
        let p = PrioritySettings {
            metadata_key: Some("prio".into()),
            roles: vec!["db".into(), "web".into()],
            flavors: vec!["m1.large".into()],
        };
        let mut a = vm("a", "az1");
        a.role = Some("web".into());
        let mut b = vm("b", "az1");
        b.role = Some("db".into());
        let mut c = vm("c", "az1");
        c.metadata.insert("prio".into(), "10".into());
        let mut d = vm("d", "az1");
        d.flavor = Some("m1.large".into());
        let e = vm("e", "az1");
        let all = [e, d, a, b, c];
        let lim = VmLimits {
            max_concurrent: 10,
            max_concurrent_per_az: 10,
            vm_cooldown_seconds: 0.0,
        };
        let free = azs(&[("az1", 10)]);
        let plan = plan_vms(&all, &[], &free, &BTreeSet::new(), &lim, &p, 0.0);
        assert_eq!(plan.start, ["c", "b", "a", "d", "e"]);
        // Budgets: per AZ 2, one already in flight: one more starts.
        let lim2 = VmLimits {
            max_concurrent_per_az: 2,
            ..lim
        };
        let flying = [InFlightEvacuation {
            az: "az1".into(),
            target: Some("h1".into()),
        }];
        let plan = plan_vms(&all, &flying, &free, &BTreeSet::new(), &lim2, &p, 0.0);
        assert_eq!(plan.start, ["c"]);
        assert_eq!(plan.deferred.len(), 4);
        // No more in flight than targets to take them.
        let plan = plan_vms(
            &all,
            &[],
            &azs(&[("az1", 1)]),
            &BTreeSet::new(),
            &lim,
            &p,
            0.0,
        );
        assert_eq!(plan.start, ["c"]);
        let plan = plan_vms(
            &all,
            &[],
            &azs(&[("az1", 0)]),
            &BTreeSet::new(),
            &lim,
            &p,
            0.0,
        );
        assert!(plan.start.is_empty());
        assert!(plan.deferred[0].reason.contains("never leaves its AZ"));
    }

    #[test]
    fn cooling_vms_and_guarded_azs_wait() {
        let mut a = vm("a", "az1");
        a.last_evacuated_at = Some(100.0);
        let b = vm("b", "az2");
        let lim = VmLimits {
            max_concurrent: 10,
            max_concurrent_per_az: 10,
            vm_cooldown_seconds: 600.0,
        };
        let free = azs(&[("az1", 5), ("az2", 5)]);
        let guarded: BTreeSet<String> = ["az2".to_string()].into();
        let plan = plan_vms(
            &[a, b],
            &[],
            &free,
            &guarded,
            &lim,
            &PrioritySettings::default(),
            200.0,
        );
        assert!(plan.start.is_empty());
        assert!(plan
            .deferred
            .iter()
            .any(|d| d.reason.contains("vm_cooldown_seconds")));
        assert!(plan.deferred.iter().any(|d| d.reason.contains("guard")));
    }
}
