//! One rebalance planning cycle (detect + plan) over 5,000 hosts in 5 AZs and 100,000 VMs
//! (20 per host, 5 roles, three samples each in the window). One host in ten is hot: its VMs
//! are busy and suffer steal, 10,000 candidates in all. Limits are set wide (200 actions a
//! cycle) so that the planner scores hundreds of destinations, not just the first few.
//! Prints this process's peak RSS (VmHWM) at the end: the view, the history and the cycle.
//! Run: cargo bench --bench rebalance

use std::collections::HashMap;

use criterion::{black_box, Criterion};
use steward::model::{ClusterView, Host, HostFacts, VmFacts};
use steward::rebalance::detect::{detect, DetectState, History};
use steward::rebalance::plan::{plan, PlanInput, VmSize};
use steward::rebalance::{BudgetState, RebalanceSettings};
use steward::scoring::{builtin_profiles, Options, Profile};

const NOW: f64 = 1_795_392_000.0 + 9.0 * 3600.0;
const HOSTS: usize = 5_000;
const VMS_PER_HOST: usize = 20;
const ROLES: [&str; 5] = ["web", "db", "cache", "batch", "api"];

struct Cloud {
    history: History,
    view: ClusterView,
    hosts: Vec<Host>,
    sizes: HashMap<String, VmSize>,
}

fn cloud() -> Cloud {
    let mut views = Vec::new();
    let mut hosts = Vec::with_capacity(HOSTS);
    let mut sizes = HashMap::with_capacity(HOSTS * VMS_PER_HOST);
    // Three successive views, 5 minutes apart: the samples of the window.
    for sample in 0..3 {
        let at = NOW - (2 - sample) as f64 * 300.0;
        let mut view = ClusterView::default();
        for i in 0..HOSTS {
            let name = format!("cmp-{i:05}");
            let az = format!("az{}", i % 5 + 1);
            let hot = i % 10 == 0;
            view.hosts.insert(
                name.clone(),
                HostFacts {
                    az: Some(az.clone()),
                    steal: Some(if hot { 0.25 } else { (i % 7) as f64 / 100.0 }),
                    load5: Some(if hot { 70.0 } else { 30.0 }),
                    cpu_use: Some(if hot {
                        1.0
                    } else {
                        0.3 + (i % 40) as f64 / 100.0
                    }),
                    vcpus: Some(64.0),
                    observed_at: at,
                    ..Default::default()
                },
            );
            for k in 0..VMS_PER_HOST {
                let uuid = format!("{:08x}-0000-4000-8000-{:012x}", i, k);
                view.vms.insert(
                    uuid.clone(),
                    VmFacts {
                        host: Some(name.clone()),
                        role: Some(ROLES[(i + k) % ROLES.len()].into()),
                        steal: Some(if hot { 0.25 } else { 0.01 }),
                        load5: Some(if hot { 3.6 } else { 1.0 }),
                        vcpus: Some(4.0),
                        observed_at: at,
                        az: Some(az.clone()),
                        ..Default::default()
                    },
                );
                if sample == 0 {
                    sizes.insert(
                        uuid,
                        VmSize {
                            vcpus: 4.0,
                            memory_mb: 8192.0,
                            disk_gb: 40.0,
                            block_migration: i % 2 == 0,
                        },
                    );
                }
            }
            if sample == 0 {
                hosts.push(Host {
                    host: name.clone(),
                    nodename: name,
                    az: Some(az),
                    hypervisor_type: Some("QEMU".into()),
                    vcpus_total: Some(64.0),
                    vcpus_used: Some(80.0 + (i % 60) as f64),
                    cpu_allocation_ratio: Some(4.0),
                    memory_mb_total: Some(524_288.0),
                    memory_mb_free: Some(200_000.0 + (i % 100) as f64 * 1000.0),
                    ram_allocation_ratio: Some(1.0),
                    disk_gb_total: Some(8000.0),
                    disk_gb_free: Some(4000.0),
                    ..Default::default()
                });
            }
        }
        views.push(view);
    }
    let mut history = History::default();
    for (s, v) in views.iter().enumerate() {
        history.record(v, NOW - (2 - s) as f64 * 300.0, 1800.0);
    }
    let view = views.pop().unwrap_or_default();
    // The publisher builds the role index before publishing; so does the bench.
    view.role_index();
    Cloud {
        history,
        view,
        hosts,
        sizes,
    }
}

fn settings() -> RebalanceSettings {
    RebalanceSettings {
        max_actions_per_cycle: 200,
        max_concurrent: 1_000,
        max_concurrent_per_az: 200,
        max_concurrent_per_source: 1,
        max_concurrent_per_target: 1,
        budget_gib_per_az_per_hour: 100_000.0,
        forbidden_windows: Vec::new(),
        ..Default::default()
    }
}

fn cycle(c: &Cloud, profile: &Profile, cfg: &RebalanceSettings) -> (usize, usize) {
    let detection = detect(&c.history, &DetectState::default(), cfg, NOW);
    let closed = HashMap::new();
    let input = PlanInput {
        view: &c.view,
        hosts: &c.hosts,
        closed: &closed,
        sizes: &c.sizes,
        detection: &detection,
        in_flight: &[],
        history: &[],
        budget: &BudgetState::default(),
        now: NOW,
    };
    let p = plan(&input, profile, &Options::default(), cfg);
    (detection.candidates.len(), p.actions.len())
}

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("rebalance/cycle_5000_hosts_100000_vms: bench");
        return;
    }
    let cloud = cloud();
    let profile = Profile::build("default", &builtin_profiles()["default"]).unwrap();
    let cfg = settings();
    let (candidates, actions) = cycle(&cloud, &profile, &cfg);
    println!(
        "one cycle: {} hosts, {} VMs, {candidates} candidates, {actions} actions planned",
        cloud.hosts.len(),
        cloud.view.vms.len()
    );
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    c.bench_function("rebalance/cycle_5000_hosts_100000_vms", |b| {
        b.iter(|| black_box(cycle(&cloud, &profile, &cfg)))
    });
    c.final_summary();
    println!(
        "peak RSS {:.0} MB (VmHWM: fixture view + history + cycles)",
        vm_hwm_mb()
    );
}
