//! Builders shared by the integration tests: hosts, requests, views and profiles in a few words.
#![allow(dead_code)]

pub mod app;
pub mod scratch;

use std::collections::BTreeMap;

use steward::model::{
    ClusterView, Host, HostFacts, Instance, Operation, SchedulingRequest, ServerGroup, VmFacts,
};
use steward::scoring::{Profile, ProfileSpec};

pub const NOW: f64 = 1_795_000_000.0;

pub fn host(name: &str, az: Option<&str>) -> Host {
    Host {
        host: name.into(),
        nodename: name.into(),
        az: az.map(Into::into),
        hypervisor_type: Some("QEMU".into()),
        vcpus_total: Some(64.0),
        vcpus_used: Some(8.0),
        cpu_allocation_ratio: Some(4.0),
        memory_mb_total: Some(262_144.0),
        memory_mb_free: Some(200_000.0),
        ram_allocation_ratio: Some(1.0),
        disk_gb_total: Some(2000.0),
        disk_gb_free: Some(1500.0),
        ..Default::default()
    }
}

pub fn with_vms(mut h: Host, uuids: &[&str]) -> Host {
    h.instance_uuids = uuids.iter().map(|u| u.to_string()).collect();
    h
}

pub fn request(op: Operation, role: Option<&str>, hosts: Vec<Host>) -> SchedulingRequest {
    let mut hints = BTreeMap::new();
    if let Some(r) = role {
        hints.insert("steward_role".to_string(), r.to_string());
    }
    SchedulingRequest {
        operation: op,
        instance: Instance {
            uuid: "inst-0".into(),
            hints,
            ..Default::default()
        },
        ignore_hosts: vec![],
        hosts: hosts.into_iter().map(std::sync::Arc::new).collect(),
    }
}

pub fn with_group(mut req: SchedulingRequest, name: &str, members: &[&str]) -> SchedulingRequest {
    req.instance.hints.remove("steward_role");
    req.instance.server_group = Some(ServerGroup {
        name: Some(name.into()),
        policy: Some("soft-anti-affinity".into()),
        members: members.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    });
    req
}

#[derive(Default)]
pub struct ViewBuilder(pub ClusterView);

impl ViewBuilder {
    pub fn host(mut self, name: &str, az: Option<&str>, steal: Option<f64>, age: f64) -> Self {
        self.0.hosts.insert(
            name.into(),
            HostFacts {
                az: az.map(Into::into),
                steal,
                observed_at: NOW - age,
                ..Default::default()
            },
        );
        self
    }

    pub fn vm(mut self, uuid: &str, host: &str, role: &str) -> Self {
        self.0.vms.insert(
            uuid.into(),
            VmFacts {
                host: Some(host.into()),
                role: Some(role.into()),
                observed_at: NOW,
                ..Default::default()
            },
        );
        self
    }

    pub fn build(self) -> ClusterView {
        self.0
    }
}

/// A profile from the body of `[profiles.NAME]` in TOML, e.g.
/// `[plugins.az_spread]\nmax_skew = 1`.
pub fn profile(toml_text: &str) -> Profile {
    let spec: ProfileSpec = toml::from_str(toml_text).expect("test profile is valid TOML");
    Profile::build("test", &spec).expect("test profile builds")
}
