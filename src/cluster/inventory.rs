//! What Nova says the cloud is: hypervisors with their AZ and size, VMs with host, AZ, role,
//! project and flavor. Built from Nova's listings (pure), then laid over the view: Nova is
//! the authority on membership, telemetry on measurements.

use std::collections::HashMap;

use crate::model::{ClusterView, HostFacts, Source, VmFacts};
use crate::openstack::nova::{Aggregate, Hypervisor, Server, ServerGroup};

/// A hypervisor as Nova describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostMembership {
    pub az: String,
    pub vcpus: Option<f64>,
}

/// A VM as Nova describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct VmMembership {
    pub host: Option<String>,
    pub az: Option<String>,
    pub role: Option<String>,
    pub project_id: Option<String>,
    pub flavor: Option<String>,
    pub vcpus: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub hosts: HashMap<String, HostMembership>,
    pub vms: HashMap<String, VmMembership>,
}

/// The host a hypervisor belongs to: the scheduler's HostState.host is the compute
/// service's host, not the node name (an Ironic host has many nodes).
pub fn host_of(hv: &Hypervisor) -> String {
    hv.service
        .as_ref()
        .and_then(|s| s.host.clone())
        .unwrap_or_else(|| hv.hypervisor_hostname.clone())
}

/// Join Nova's listings. A host's AZ is that of its aggregates (Nova's own rule), else
/// `default_az` (Nova's `[DEFAULT] default_availability_zone`). A VM's role is its
/// `role_key` metadata, else the name of its server group.
pub fn build(
    hypervisors: &[Hypervisor],
    servers: &[Server],
    groups: &[ServerGroup],
    aggregates: &[Aggregate],
    role_key: &str,
    default_az: &str,
) -> Inventory {
    let mut az_of: HashMap<&str, &str> = HashMap::new();
    for a in aggregates {
        let az = a
            .availability_zone
            .as_deref()
            .or_else(|| a.metadata.get("availability_zone").map(String::as_str));
        if let Some(az) = az.filter(|z| !z.is_empty()) {
            for h in &a.hosts {
                az_of.insert(h.as_str(), az);
            }
        }
    }
    let mut hosts: HashMap<String, HostMembership> = HashMap::new();
    for hv in hypervisors {
        let name = host_of(hv);
        let az = az_of
            .get(name.as_str())
            .copied()
            .unwrap_or(default_az)
            .to_string();
        let entry = hosts
            .entry(name)
            .or_insert(HostMembership { az, vcpus: None });
        // Ironic hosts have many nodes: sum their sizes.
        if let Some(v) = hv.vcpus {
            entry.vcpus = Some(entry.vcpus.unwrap_or(0.0) + v as f64);
        }
    }
    let group_of: HashMap<&str, &str> = groups
        .iter()
        .flat_map(|g| g.members.iter().map(move |m| (m.as_str(), g.name.as_str())))
        .collect();
    let vms = servers
        .iter()
        .map(|s| {
            let role = s
                .metadata
                .get(role_key)
                .filter(|r| !r.trim().is_empty())
                .cloned()
                .or_else(|| group_of.get(s.id.as_str()).map(|g| g.to_string()))
                .filter(|r| !r.trim().is_empty());
            let m = VmMembership {
                host: s.host.clone(),
                az: s.availability_zone.clone().filter(|z| !z.is_empty()),
                role,
                project_id: s.tenant_id.clone(),
                flavor: s.flavor.original_name.clone(),
                vcpus: Some(s.flavor.vcpus as f64),
            };
            (s.id.clone(), m)
        })
        .collect();
    Inventory { hosts, vms }
}

/// Lay Nova's membership over the view. VMs Nova no longer lists are gone; hypervisors keep
/// their telemetry; hosts known only from telemetry stay (a push-only site has no Nova view).
pub fn apply(view: &mut ClusterView, inv: &Inventory) {
    for (name, m) in &inv.hosts {
        // Known from Nova only until a reading arrives: say so rather than claim a push.
        let h = view.hosts.get_or_insert_with(name, || HostFacts {
            source: Source::Nova,
            ..Default::default()
        });
        h.az = Some(m.az.clone());
        if m.vcpus.is_some() {
            h.vcpus = m.vcpus;
        }
    }
    view.vms.retain(|uuid, _| inv.vms.contains_key(uuid));
    for (uuid, m) in &inv.vms {
        let v = view.vms.get_or_insert_with(uuid, || VmFacts {
            source: Source::Nova,
            ..Default::default()
        });
        v.host = m.host.clone();
        v.az = m.az.clone();
        // Nova's metadata or server group wins; a pushed role is the fallback.
        v.role = m.role.clone().or(v.role.take());
        v.project_id = m.project_id.clone();
        v.flavor = m.flavor.clone();
        v.vcpus = m.vcpus.or(v.vcpus);
    }
}
