//! A small cloud to plan in: hosts with steal and room, VMs, candidates, journal inputs.
#![allow(dead_code)]

use std::collections::HashMap;

use steward::model::{ClusterView, Host, HostFacts, VmFacts};
use steward::rebalance::detect::{Candidate, Detection};
use steward::rebalance::plan::{plan, PlanInput, VmSize};
use steward::rebalance::{BudgetState, InFlight, MoveRecord, Plan, RebalanceSettings};
use steward::scoring::{builtin_profiles, Options, Profile};

/// Monday 09:00 UTC, and noon the same day.
pub const NOW: f64 = 1_795_392_000.0 + 9.0 * 3600.0;
pub const NOW_NOON: f64 = 1_795_392_000.0 + 12.0 * 3600.0;

pub fn settings() -> RebalanceSettings {
    RebalanceSettings {
        forbidden_windows: Vec::new(),
        ..Default::default()
    }
}

pub fn profile(name: &str) -> Profile {
    Profile::build(name, &builtin_profiles()[name]).unwrap()
}

pub fn web_size() -> VmSize {
    VmSize {
        vcpus: 4.0,
        memory_mb: 8192.0,
        disk_gb: 40.0,
        block_migration: true,
    }
}

pub struct World {
    pub now: f64,
    pub view: ClusterView,
    pub hosts: Vec<Host>,
    pub closed: HashMap<String, &'static str>,
    pub sizes: HashMap<String, VmSize>,
    pub detection: Detection,
    pub in_flight: Vec<InFlight>,
    pub history: Vec<MoveRecord>,
    pub budget: BudgetState,
}

impl World {
    pub fn new(now: f64) -> World {
        World {
            now,
            view: ClusterView::default(),
            hosts: Vec::new(),
            closed: HashMap::new(),
            sizes: HashMap::new(),
            detection: Detection::default(),
            in_flight: Vec::new(),
            history: Vec::new(),
            budget: BudgetState::default(),
        }
    }

    /// A 32-core host with plenty of room, this steal and CPU use.
    pub fn host(&mut self, name: &str, az: &str, steal: f64, cpu_use: f64) {
        self.view.hosts.insert(
            name.into(),
            HostFacts {
                az: Some(az.into()),
                steal: Some(steal),
                load5: Some(cpu_use * 32.0),
                cpu_use: Some(cpu_use),
                vcpus: Some(32.0),
                observed_at: self.now,
                ..Default::default()
            },
        );
        self.hosts.push(Host {
            host: name.into(),
            nodename: name.into(),
            az: Some(az.into()),
            hypervisor_type: Some("QEMU".into()),
            vcpus_total: Some(32.0),
            vcpus_used: Some(16.0),
            cpu_allocation_ratio: Some(4.0),
            memory_mb_total: Some(262_144.0),
            memory_mb_free: Some(131_072.0),
            ram_allocation_ratio: Some(1.0),
            disk_gb_total: Some(4000.0),
            disk_gb_free: Some(2000.0),
            ..Default::default()
        });
    }

    /// A quiet host with no vCPU left.
    pub fn host_full(&mut self, name: &str, az: &str) {
        self.host(name, az, 0.0, 0.1);
        self.hosts.last_mut().unwrap().vcpus_used = Some(128.0);
    }

    pub fn vm(&mut self, uuid: &str, host: &str, role: Option<&str>) {
        self.view.vms.insert(
            uuid.into(),
            VmFacts {
                host: Some(host.into()),
                role: role.map(str::to_string),
                vcpus: Some(4.0),
                observed_at: self.now,
                az: self.view.host_az(host).map(str::to_string),
                ..Default::default()
            },
        );
        self.sizes.insert(uuid.into(), web_size());
    }

    pub fn candidate(&mut self, uuid: &str, load_per_vcpu: f64, steal: f64) {
        let host = self.view.vms[uuid].host.clone();
        self.detection.candidates.push(Candidate {
            vm: uuid.into(),
            host,
            vcpus: 4.0,
            load_per_vcpu,
            steal,
            severity: load_per_vcpu * steal,
            since: self.now,
        });
    }

    /// Move the clock, telemetry staying fresh.
    pub fn set_now(&mut self, now: f64) {
        self.now = now;
        for (_, h) in self.view.hosts.iter_mut() {
            h.observed_at = now;
        }
    }

    pub fn plan(&self, cfg: &RebalanceSettings) -> Plan {
        // A fresh view each time: tests change the maps, and the role index is built once.
        let mut view = ClusterView::default();
        view.hosts = self.view.hosts.clone();
        view.vms = self.view.vms.clone();
        view.weekly = self.view.weekly.clone();
        let input = PlanInput {
            view: &view,
            hosts: &self.hosts,
            closed: &self.closed,
            sizes: &self.sizes,
            detection: &self.detection,
            in_flight: &self.in_flight,
            history: &self.history,
            budget: &self.budget,
            now: self.now,
        };
        plan(&input, &profile(&cfg.profile), &Options::default(), cfg)
    }
}
