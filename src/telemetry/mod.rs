//! Telemetry ingestion: pushed steal and load samples for hosts and VMs, merged into the
//! cluster view. (Prometheus scraping joins here later.) A sample never overwrites a newer one.

pub mod prometheus;
pub mod rollup;
pub mod settings;

use crate::model::{
    ClusterView, HostAzChange, HostFacts, Placement, PlacementChange, ViewChanges, VmFacts,
};

/// One pushed host sample. `observed_at` is unix seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSample {
    pub host: String,
    pub facts: HostFacts,
}

/// One pushed VM sample.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSample {
    pub uuid: String,
    pub facts: VmFacts,
}

/// Merge samples into the view: newer observations win; a sample that leaves the AZ, host or
/// role out keeps what was known (membership, and size, are sticky; measurements are not).
pub fn merge(view: &mut ClusterView, hosts: &[HostSample], vms: &[VmSample]) {
    merge_tracked(view, hosts, vms);
}

/// [`merge`], returning every VM placement (host, role) it changed, so the publisher can
/// update the role index by those alone. Touches only the entries the samples name.
pub fn merge_tracked(
    view: &mut ClusterView,
    hosts: &[HostSample],
    vms: &[VmSample],
) -> ViewChanges {
    let mut changes = ViewChanges::default();
    for s in hosts {
        let before = match view.hosts.get_mut(&s.host) {
            Some(old) if old.observed_at > s.facts.observed_at => continue,
            Some(old) => {
                // AZ and size are membership (Nova's): a reading that leaves them out keeps them.
                let before = old.az.clone();
                let az = s.facts.az.clone().or_else(|| old.az.take());
                let vcpus = s.facts.vcpus.or(old.vcpus);
                *old = HostFacts {
                    az,
                    vcpus,
                    ..s.facts.clone()
                };
                before
            }
            None => {
                view.hosts.insert(s.host.clone(), s.facts.clone());
                None
            }
        };
        let after = view.host_az(&s.host).map(str::to_string);
        if after != before {
            changes.host_azs.push(HostAzChange {
                host: s.host.clone(),
                before,
                after,
            });
        }
    }
    for s in vms {
        match view.vms.get_mut(&s.uuid) {
            Some(old) if old.observed_at > s.facts.observed_at => {}
            Some(old) => {
                let before = Placement::of(old);
                let sticky = |new: &Option<String>, old: &mut Option<String>| {
                    new.clone().or_else(|| old.take())
                };
                *old = VmFacts {
                    host: sticky(&s.facts.host, &mut old.host),
                    role: sticky(&s.facts.role, &mut old.role),
                    az: sticky(&s.facts.az, &mut old.az),
                    project_id: sticky(&s.facts.project_id, &mut old.project_id),
                    flavor: sticky(&s.facts.flavor, &mut old.flavor),
                    vcpus: s.facts.vcpus.or(old.vcpus),
                    ..s.facts.clone()
                };
                let after = Placement::of(old);
                if after != before {
                    changes.placements.push(PlacementChange {
                        before: Some(before),
                        after: Some(after),
                    });
                }
            }
            None => {
                changes.placements.push(PlacementChange {
                    before: None,
                    after: Some(Placement::of(&s.facts)),
                });
                view.vms.insert(s.uuid.clone(), s.facts.clone());
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, az: Option<&str>, steal: Option<f64>, at: f64) -> HostSample {
        HostSample {
            host: name.into(),
            facts: HostFacts {
                az: az.map(Into::into),
                steal,
                observed_at: at,
                ..Default::default()
            },
        }
    }

    #[test]
    fn an_older_sample_never_overwrites_a_newer_one() {
        let mut v = ClusterView::default();
        merge(&mut v, &[host("a", Some("az1"), Some(0.3), 200.0)], &[]);
        merge(&mut v, &[host("a", Some("az9"), Some(0.0), 100.0)], &[]);
        assert_eq!(v.hosts["a"].steal, Some(0.3));
        assert_eq!(v.hosts["a"].az.as_deref(), Some("az1"));
    }

    #[test]
    fn az_is_sticky_but_steal_is_not() {
        let mut v = ClusterView::default();
        merge(&mut v, &[host("a", Some("az1"), Some(0.3), 100.0)], &[]);
        merge(&mut v, &[host("a", None, None, 200.0)], &[]);
        assert_eq!(v.hosts["a"].az.as_deref(), Some("az1"));
        assert_eq!(
            v.hosts["a"].steal, None,
            "a newer sample without steal means unknown"
        );
        assert_eq!(v.hosts["a"].observed_at, 200.0);
    }

    #[test]
    fn a_reading_without_size_keeps_the_size_nova_reported() {
        let mut v = ClusterView::default();
        let mut sized = host("a", Some("az1"), None, 100.0);
        sized.facts.vcpus = Some(64.0);
        merge(&mut v, &[sized], &[]);
        merge(&mut v, &[host("a", None, Some(0.1), 200.0)], &[]);
        assert_eq!(v.hosts["a"].vcpus, Some(64.0));
        assert_eq!(v.hosts["a"].steal, Some(0.1));
    }

    #[test]
    fn vm_role_and_host_survive_a_sample_that_omits_them() {
        let mut v = ClusterView::default();
        let vm = |host: Option<&str>, role: Option<&str>, at| VmSample {
            uuid: "u1".into(),
            facts: VmFacts {
                host: host.map(Into::into),
                role: role.map(Into::into),
                observed_at: at,
                ..Default::default()
            },
        };
        merge(&mut v, &[], &[vm(Some("a"), Some("web"), 1.0)]);
        merge(&mut v, &[], &[vm(None, None, 2.0)]);
        assert_eq!(v.vms["u1"].host.as_deref(), Some("a"));
        assert_eq!(v.vms["u1"].role.as_deref(), Some("web"));
        merge(&mut v, &[], &[vm(Some("b"), None, 3.0)]);
        assert_eq!(v.vms["u1"].host.as_deref(), Some("b"));
    }
}
