//! What steward has just allowed: the role of every instance it answered a callout for, and
//! where it went once that is known, until the cluster view confirms it.
//!
//! Roles from a `steward_role` hint never reach steward's view (Nova's server list does not
//! carry hints), and roles from metadata or server groups reach it only at the next refresh.
//! So boots in quick succession, and the instances of one multi-create, would each see a host
//! without the same-role VMs steward has just let onto it. The ledger closes that gap:
//!
//! - each callout records its instance's role (host unknown yet) and the hosts of its
//!   `siblings` (earlier instances of the same multi-create, where Nova placed them);
//! - a later callout that lists a recorded instance among a candidate's `instance_uuids` tells
//!   where it went, and one whose candidate no longer lists an instance it listed before tells
//!   that it left (deleted, moved): the entry goes;
//! - before scoring, the recorded instances of the request's role on its candidate hosts are
//!   added to the request as siblings, which `scoring::context` counts like VMs that already
//!   run there (never twice: one the view already places is skipped there);
//! - an entry goes when the view knows the VM with a role (confirmed), when Nova has not listed
//!   it on its host within `UNLISTED_SECONDS` (a multi-create that failed as a whole), after
//!   `TTL_SECONDS`, or, past `MAX_ENTRIES`, oldest first.
//!
//! Its lock, like the host cache's, is held for in-memory map work only (no I/O, no await)
//! and never while scoring; one steward replica knows only what it answered.

use std::sync::Mutex;

use foldhash::{HashMap, HashSet};

use crate::model::{ClusterView, SchedulingRequest, Sibling};
use crate::scoring::resolve_role;

/// How long an unconfirmed grant counts (a hint role is never confirmed by Nova's view).
pub const TTL_SECONDS: f64 = 24.0 * 3600.0;
/// How long a pick Nova has not listed on its host yet counts (Nova's compute reports a new
/// instance to the scheduler right after building it: seconds).
pub const UNLISTED_SECONDS: f64 = 120.0;
/// Bound on entries: past it the oldest go first.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
struct Grant {
    role: String,
    host: Option<String>,
    /// Nova has listed it on `host` (a candidate's `instance_uuids`).
    listed: bool,
    recorded_at: f64,
}

#[derive(Debug, Default)]
pub struct RecentGrants {
    grants: Mutex<HashMap<String, Grant>>,
}

impl RecentGrants {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.grants.lock().map(|g| g.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add to `req` the just-granted instances of its role on its candidate hosts (as
    /// siblings), then record the request's own instance and its siblings. A request without
    /// a role neither reads nor writes the ledger.
    pub fn apply(&self, req: &mut SchedulingRequest, view: &ClusterView, role_key: &str, now: f64) {
        let Some((role, _)) = resolve_role(&req.instance, view, role_key) else {
            return;
        };
        let Ok(mut grants) = self.grants.lock() else {
            return;
        };
        prune(&mut grants, view, now);
        learn_hosts(&mut grants, req, now);
        let pending = pending_on_candidates(&grants, req, &role);
        record(&mut grants, req, &role, now);
        drop(grants);
        for s in pending {
            if !req.instance.siblings.iter().any(|x| x.uuid == s.uuid) {
                req.instance.siblings.push(s);
            }
        }
    }
}

/// Drop what the view confirms, what is too old, picks Nova never listed, and past the bound
/// the oldest.
fn prune(grants: &mut HashMap<String, Grant>, view: &ClusterView, now: f64) {
    grants.retain(|uuid, g| {
        let confirmed = view
            .vms
            .get(uuid)
            .is_some_and(|v| v.role.is_some() && v.host.is_some());
        let never_listed = g.host.is_some() && !g.listed && now - g.recorded_at > UNLISTED_SECONDS;
        !confirmed && !never_listed && now - g.recorded_at <= TTL_SECONDS
    });
    if grants.len() > MAX_ENTRIES {
        let mut ages: Vec<(f64, String)> = grants
            .iter()
            .map(|(u, g)| (g.recorded_at, u.clone()))
            .collect();
        ages.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, u) in ages.into_iter().take(grants.len() - MAX_ENTRIES) {
            grants.remove(&u);
        }
    }
}

/// A recorded instance listed on a candidate host is there now; one a candidate listed before
/// and lists no more has left it.
fn learn_hosts(grants: &mut HashMap<String, Grant>, req: &SchedulingRequest, now: f64) {
    if grants.is_empty() {
        return;
    }
    for h in &req.hosts {
        for u in &h.instance_uuids {
            if let Some(g) = grants.get_mut(u) {
                if g.host.as_deref() != Some(h.host.as_str()) || !g.listed {
                    g.host = Some(h.host.clone());
                    g.listed = true;
                    g.recorded_at = now;
                }
            }
        }
    }
    let by_host: HashMap<&str, &crate::model::Host> =
        req.hosts.iter().map(|h| (h.host.as_str(), &**h)).collect();
    grants.retain(|uuid, g| match (g.listed, g.host.as_deref()) {
        (true, Some(host)) => by_host
            .get(host)
            .is_none_or(|h| h.instance_uuids.contains(uuid)),
        _ => true,
    });
}

fn pending_on_candidates(
    grants: &HashMap<String, Grant>,
    req: &SchedulingRequest,
    role: &str,
) -> Vec<Sibling> {
    if grants.is_empty() {
        return Vec::new();
    }
    let candidates: HashSet<&str> = req.hosts.iter().map(|h| h.host.as_str()).collect();
    grants
        .iter()
        .filter(|(u, g)| {
            g.role == role
                && **u != req.instance.uuid
                && g.host.as_deref().is_some_and(|h| candidates.contains(h))
        })
        .map(|(u, g)| Sibling {
            uuid: u.clone(),
            host: g.host.clone().unwrap_or_default(),
        })
        .collect()
}

fn record(grants: &mut HashMap<String, Grant>, req: &SchedulingRequest, role: &str, now: f64) {
    let own = &req.instance.uuid;
    match grants.get_mut(own) {
        Some(g) => {
            g.role = role.to_string();
            g.recorded_at = now;
        }
        None => {
            grants.insert(
                own.clone(),
                Grant {
                    role: role.to_string(),
                    host: None,
                    listed: false,
                    recorded_at: now,
                },
            );
        }
    }
    for s in &req.instance.siblings {
        if grants.get(&s.uuid).is_some_and(|g| g.listed) {
            continue;
        }
        grants.insert(
            s.uuid.clone(),
            Grant {
                role: role.to_string(),
                host: Some(s.host.clone()),
                listed: false,
                recorded_at: now,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Host, Instance, Operation, VmFacts};
    use std::sync::Arc;

    fn req(uuid: &str, role: &str, hosts: &[(&str, &[&str])]) -> SchedulingRequest {
        SchedulingRequest {
            instance: Instance {
                uuid: uuid.into(),
                hints: [("steward_role".to_string(), role.to_string())].into(),
                ..Default::default()
            },
            hosts: hosts
                .iter()
                .map(|(h, uuids)| {
                    Arc::new(Host {
                        host: h.to_string(),
                        nodename: h.to_string(),
                        instance_uuids: uuids.iter().map(|u| u.to_string()).collect(),
                        ..Default::default()
                    })
                })
                .collect(),
            operation: Operation::Boot,
            ignore_hosts: Vec::new(),
        }
    }

    #[test]
    fn a_granted_instance_counts_where_nova_lists_it_until_the_view_knows_it() {
        let ledger = RecentGrants::new();
        let mut view = ClusterView::default();
        let mut first = req("vm-1", "web", &[("h1", &[]), ("h2", &[])]);
        ledger.apply(&mut first, &view, "role", 0.0);
        assert!(first.instance.siblings.is_empty());
        // Nova now lists vm-1 on h1; the view does not know its (hint) role.
        let mut second = req("vm-2", "web", &[("h1", &["vm-1"]), ("h2", &[])]);
        ledger.apply(&mut second, &view, "role", 1.0);
        assert_eq!(
            second.instance.siblings,
            vec![Sibling {
                uuid: "vm-1".into(),
                host: "h1".into()
            }]
        );
        // Another role does not count it.
        let mut db = req("vm-3", "db", &[("h1", &["vm-1"])]);
        ledger.apply(&mut db, &view, "role", 2.0);
        assert!(db.instance.siblings.is_empty());
        // Once the view places it with a role, the ledger forgets it.
        view.vms.insert(
            "vm-1".into(),
            VmFacts {
                host: Some("h1".into()),
                role: Some("web".into()),
                ..Default::default()
            },
        );
        let mut third = req("vm-4", "web", &[("h1", &["vm-1"])]);
        ledger.apply(&mut third, &view, "role", 3.0);
        assert!(third.instance.siblings.is_empty());
    }

    #[test]
    fn a_multi_create_pick_counts_for_the_next_request_before_nova_lists_it() {
        let ledger = RecentGrants::new();
        let view = ClusterView::default();
        let mut last = req("vm-3", "web", &[("h1", &[])]);
        last.instance.siblings = vec![
            Sibling {
                uuid: "vm-1".into(),
                host: "h1".into(),
            },
            Sibling {
                uuid: "vm-2".into(),
                host: "h1".into(),
            },
        ];
        ledger.apply(&mut last, &view, "role", 0.0);
        let mut next = req("vm-9", "web", &[("h1", &[]), ("h2", &[])]);
        ledger.apply(&mut next, &view, "role", 1.0);
        let mut got: Vec<_> = next
            .instance
            .siblings
            .iter()
            .map(|s| s.uuid.as_str())
            .collect();
        got.sort();
        assert_eq!(got, vec!["vm-1", "vm-2"]);
    }

    #[test]
    fn an_instance_nova_no_longer_lists_on_its_host_stops_counting() {
        let ledger = RecentGrants::new();
        let view = ClusterView::default();
        ledger.apply(&mut req("vm-1", "web", &[("h1", &[])]), &view, "role", 0.0);
        ledger.apply(
            &mut req("vm-2", "web", &[("h1", &["vm-1"])]),
            &view,
            "role",
            1.0,
        );
        // vm-1 deleted: h1 no longer lists it.
        let mut after = req("vm-3", "web", &[("h1", &["vm-2"])]);
        ledger.apply(&mut after, &view, "role", 2.0);
        assert_eq!(
            after.instance.siblings,
            vec![Sibling {
                uuid: "vm-2".into(),
                host: "h1".into()
            }]
        );
    }

    #[test]
    fn a_pick_nova_never_lists_stops_counting_after_a_while() {
        let ledger = RecentGrants::new();
        let view = ClusterView::default();
        let mut failed = req("vm-2", "web", &[("h1", &[])]);
        failed.instance.siblings = vec![Sibling {
            uuid: "vm-1".into(),
            host: "h1".into(),
        }];
        ledger.apply(&mut failed, &view, "role", 0.0);
        let mut soon = req("vm-3", "web", &[("h1", &[])]);
        ledger.apply(&mut soon, &view, "role", 10.0);
        assert_eq!(soon.instance.siblings.len(), 1);
        let mut later = req("vm-4", "web", &[("h1", &[])]);
        ledger.apply(&mut later, &view, "role", 10.0 + UNLISTED_SECONDS + 1.0);
        assert!(later.instance.siblings.is_empty());
    }

    #[test]
    fn a_request_without_a_role_leaves_the_ledger_alone() {
        let ledger = RecentGrants::new();
        let mut r = req("vm-1", "web", &[("h1", &[])]);
        r.instance.hints.clear();
        ledger.apply(&mut r, &ClusterView::default(), "role", 0.0);
        assert!(ledger.is_empty());
    }
}
