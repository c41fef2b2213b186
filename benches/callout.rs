//! Steward's side of one Nova callout at 1,000 and 5,000 candidate hosts, split in its steps:
//! parsing the body the shim sends (`parse_json`), checking it into the model (`into_model`),
//! filter + weigh, and encoding the compact answer. The body has the shim's shape
//! (`nova-hooks/steward_nova/body.py`): every host field, 0 to 6 instance uuids per host.
//! Run: cargo bench --bench callout

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::{json, Value};
use steward::api::schema::{parse_json, CalloutRequest};
use steward::model::ClusterView;
use steward::scoring::{builtin_profiles, filter_and_weigh, Options, ProfileSet};

const NOW: f64 = 1_795_000_000.0;

fn body(hosts: usize) -> Vec<u8> {
    let mut list = Vec::with_capacity(hosts);
    for i in 0..hosts {
        let az = format!("az{}", i % 3 + 1);
        let name = format!("cmp-{az}-{i:05}");
        let vcpus = [32, 48, 64, 96, 128][i % 5];
        let mem = vcpus * [4096, 8192][i % 2];
        let uuids: Vec<String> = (0..(i * 7) % 7)
            .map(|k| format!("{:08x}-0000-4000-8000-{:012x}", i, k))
            .collect();
        list.push(json!({
            "host": name, "nodename": name,
            "uuid": format!("{:08x}-1111-4000-8000-{:012x}", i, i),
            "az": az, "hypervisor_type": "QEMU",
            "vcpus_total": vcpus, "vcpus_used": (i * 13) % (vcpus * 2),
            "cpu_allocation_ratio": 4.0,
            "memory_mb_total": mem, "memory_mb_free": mem / 2 + i,
            "ram_allocation_ratio": 1.0,
            "disk_gb_total": 1920, "disk_gb_free": 960.5 + i as f64,
            "instance_uuids": uuids,
        }));
    }
    let req: Value = json!({
        "operation": "boot",
        "instance": {
            "uuid": "9d5c9a1e-0000-4000-8000-000000000001", "project_id": "p",
            "flavor": {"name": "m1.web", "vcpus": 4, "memory_mb": 8192, "root_gb": 40,
                       "ephemeral_gb": 0, "swap": 0, "extra_specs": {"steward:profile": "web"}},
            "requested_az": null, "current_host": null, "current_az": null,
            "scheduler_hints": {"steward_role": ["web"]}, "server_group": null},
        "ignore_hosts": [],
        "hosts": list,
    });
    serde_json::to_vec(&req).unwrap()
}

fn bench(c: &mut Criterion) {
    let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
    let opts = Options::default();
    let view = ClusterView::default();
    let mut group = c.benchmark_group("callout");
    group.sample_size(30);
    for hosts in [1_000, 5_000] {
        let bytes = body(hosts);
        group.bench_with_input(BenchmarkId::new("parse", hosts), &bytes, |b, bytes| {
            b.iter(|| parse_json::<CalloutRequest>(black_box(bytes)).unwrap())
        });
        let parsed: CalloutRequest = parse_json(&bytes).unwrap();
        group.bench_with_input(BenchmarkId::new("into_model", hosts), &parsed, |b, p| {
            b.iter(|| black_box(p.clone()).into_model(100_000).unwrap())
        });
        let sreq = parsed.clone().into_model(100_000).unwrap();
        let profile = set
            .select(&sreq.instance.flavor.extra_specs, &sreq.instance.hints)
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new("filter_and_weigh", hosts),
            &sreq,
            |b, r| b.iter(|| filter_and_weigh(black_box(r), profile, &view, &opts, NOW)),
        );
        group.bench_with_input(BenchmarkId::new("whole", hosts), &bytes, |b, bytes| {
            b.iter(|| {
                let r = parse_json::<CalloutRequest>(black_box(bytes))
                    .unwrap()
                    .into_model(100_000)
                    .unwrap();
                let (out, w) = filter_and_weigh(&r, profile, &view, &opts, NOW);
                let allowed: Vec<usize> = out
                    .rejections
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.is_none())
                    .map(|(i, _)| i)
                    .collect();
                let weights: Vec<f64> = allowed.iter().map(|&i| w[i]).collect();
                serde_json::to_vec(&json!({"allowed_indexes": allowed, "weights": weights}))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
