//! Filter + weigh over 1,000 and 10,000 candidate hosts: the work of one Nova request.
//! Two cases: a boot with no role (default profile), and a web VM (web profile: role cap and
//! AZ spread) on a cloud where every host runs 20 VMs whose roles steward knows.
//! Run: cargo bench --bench scoring

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use steward::model::{
    ClusterView, Host, HostFacts, Instance, Operation, SchedulingRequest, VmFacts,
};
use steward::scoring::{builtin_profiles, filter, weigh, Options, ProfileSet};

const NOW: f64 = 1_795_000_000.0;
const VMS_PER_HOST: usize = 20;
const ROLES: [&str; 5] = ["web", "db", "cache", "batch", "api"];

fn cloud(hosts: usize, role: Option<&str>) -> (SchedulingRequest, ClusterView) {
    let mut view = ClusterView::default();
    let mut candidates = Vec::with_capacity(hosts);
    for i in 0..hosts {
        let name = format!("cmp-{i:05}");
        let az = format!("az{}", i % 3 + 1);
        let uuids: Vec<String> = (0..VMS_PER_HOST)
            .map(|k| format!("{:08x}-0000-4000-8000-{:012x}", i, k))
            .collect();
        for (k, u) in uuids.iter().enumerate() {
            view.vms.insert(
                u.clone(),
                VmFacts {
                    host: Some(name.clone()),
                    role: Some(ROLES[(i + k) % ROLES.len()].into()),
                    steal: Some(0.02),
                    load5: Some(1.0),
                    vcpus: Some(4.0),
                    observed_at: NOW - 30.0,
                    ..Default::default()
                },
            );
        }
        view.hosts.insert(
            name.clone(),
            HostFacts {
                az: Some(az.clone()),
                steal: Some((i % 17) as f64 / 100.0),
                load5: Some(20.0),
                vcpus: Some(64.0),
                observed_at: NOW - 30.0,
                ..Default::default()
            },
        );
        candidates.push(std::sync::Arc::new(Host {
            host: name.clone(),
            nodename: name,
            az: Some(az),
            hypervisor_type: Some("QEMU".into()),
            vcpus_total: Some(64.0),
            vcpus_used: Some((i % 60) as f64),
            cpu_allocation_ratio: Some(4.0),
            memory_mb_total: Some(262_144.0),
            memory_mb_free: Some(100_000.0 + (i % 100) as f64 * 1000.0),
            ram_allocation_ratio: Some(1.0),
            disk_gb_total: Some(2000.0),
            disk_gb_free: Some(1000.0),
            instance_uuids: uuids,
            ..Default::default()
        }));
    }
    let mut instance = Instance {
        uuid: "ffffffff-0000-4000-8000-000000000000".into(),
        ..Default::default()
    };
    if let Some(r) = role {
        instance.hints.insert("steward_role".into(), r.into());
        instance
            .flavor
            .extra_specs
            .insert("steward:profile".into(), "web".into());
    }
    let req = SchedulingRequest {
        operation: Operation::Boot,
        instance,
        ignore_hosts: vec![],
        hosts: candidates,
    };
    (req, view)
}

fn bench(c: &mut Criterion) {
    let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
    let opts = Options::default();
    let mut group = c.benchmark_group("filter_and_weigh");
    group.sample_size(20);
    for hosts in [1_000, 10_000] {
        for (case, role) in [("boot_default", None), ("boot_web_role", Some("web"))] {
            let (req, view) = cloud(hosts, role);
            let profile = set
                .select(&req.instance.flavor.extra_specs, &req.instance.hints)
                .unwrap();
            group.bench_with_input(BenchmarkId::new(case, hosts), &hosts, |b, _| {
                b.iter(|| {
                    let f = filter(black_box(&req), profile, &view, &opts, NOW);
                    let w = weigh(black_box(&req), profile, &view, &opts, NOW, false);
                    black_box((f, w))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
