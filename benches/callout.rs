//! Steward's side of one Nova callout at 1,000 and 5,000 candidate hosts, split in its steps:
//! parsing the body the shim sends (`parse_json`), checking it into the model (`into_model`),
//! filter + weigh, and encoding the compact answer; then the whole of it again with every host
//! but one sent by reference to the host cache, as the shim sends them once steward holds them. The body has the shim's shape
//! (`nova-hooks/steward_nova/body.py`): every host field, 0 to 6 instance uuids per host.
//! Run: cargo bench --bench callout

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_json::{json, Value};
use steward::api::host_cache::{format_ref, host_ref, HostCache};
use steward::api::schema::{parse_callout, parse_json, CalloutRequest};
use steward::model::ClusterView;
use steward::scoring::{builtin_profiles, filter_and_weigh, Options, ProfileSet};

const NOW: f64 = 1_795_000_000.0;

/// Each host entry's JSON text, as the shim encodes one.
fn entries(hosts: usize) -> Vec<Vec<u8>> {
    (0..hosts)
        .map(|i| {
            let az = format!("az{}", i % 3 + 1);
            let name = format!("cmp-{az}-{i:05}");
            let vcpus = [32, 48, 64, 96, 128][i % 5];
            let mem = vcpus * [4096, 8192][i % 2];
            let uuids: Vec<String> = (0..(i * 7) % 7)
                .map(|k| format!("{:08x}-0000-4000-8000-{:012x}", i, k))
                .collect();
            serde_json::to_vec(&json!({
                "host": name, "nodename": name,
                "uuid": format!("{:08x}-1111-4000-8000-{:012x}", i, i),
                "az": az, "hypervisor_type": "QEMU",
                "vcpus_total": vcpus, "vcpus_used": (i * 13) % (vcpus * 2),
                "cpu_allocation_ratio": 4.0,
                "memory_mb_total": mem, "memory_mb_free": mem / 2 + i,
                "ram_allocation_ratio": 1.0,
                "disk_gb_total": 1920, "disk_gb_free": 960.5 + i as f64,
                "instance_uuids": uuids,
            }))
            .unwrap()
        })
        .collect()
}

/// The body with the given host entries, as the shim joins them.
fn body(hosts: &[Vec<u8>]) -> Vec<u8> {
    let head: Value = json!({
        "operation": "boot",
        "instance": {
            "uuid": "9d5c9a1e-0000-4000-8000-000000000001", "project_id": "p",
            "flavor": {"name": "m1.web", "vcpus": 4, "memory_mb": 8192, "root_gb": 40,
                       "ephemeral_gb": 0, "swap": 0, "extra_specs": {"steward:profile": "web"}},
            "requested_az": null, "current_host": null, "current_az": null,
            "scheduler_hints": {"steward_role": ["web"]}, "server_group": null},
        "ignore_hosts": [],
    });
    let mut out = serde_json::to_vec(&head).unwrap();
    out.pop();
    out.extend_from_slice(br#","hosts":["#);
    out.extend_from_slice(&hosts.join(&b',')[..]);
    out.extend_from_slice(b"]}");
    out
}

/// The shim's steady state: every host by reference but the one that changed (the last).
fn body_by_reference(hosts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let n = hosts.len();
    hosts
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i + 1 == n {
                e.clone()
            } else {
                format!("\"{}\"", format_ref(&host_ref(e))).into_bytes()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
    let opts = Options::default();
    let view = ClusterView::default();
    let mut group = c.benchmark_group("callout");
    group.sample_size(30);
    for hosts in [1_000, 5_000] {
        let full = entries(hosts);
        let bytes = body(&full);
        group.bench_with_input(BenchmarkId::new("parse", hosts), &bytes, |b, bytes| {
            b.iter(|| parse_json::<CalloutRequest>(black_box(bytes)).unwrap())
        });
        let parsed: CalloutRequest = parse_json(&bytes).unwrap();
        group.bench_with_input(BenchmarkId::new("into_model", hosts), &parsed, |b, p| {
            b.iter(|| {
                black_box(p.clone())
                    .into_model(100_000, None, false)
                    .unwrap()
            })
        });
        let sreq = parsed
            .clone()
            .into_model(100_000, None, false)
            .unwrap()
            .request;
        let profile = set
            .select(&sreq.instance.flavor.extra_specs, &sreq.instance.hints)
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new("filter_and_weigh", hosts),
            &sreq,
            |b, r| b.iter(|| filter_and_weigh(black_box(r), profile, &view, &opts, NOW)),
        );
        let whole = |bytes: &[u8], cache: Option<&HostCache>| {
            let r = parse_callout(black_box(bytes), 100_000, cache, false)
                .unwrap()
                .request;
            let (out, w) = filter_and_weigh(&r, profile, &view, &opts, NOW);
            let allowed: Vec<usize> = out
                .rejections
                .iter()
                .enumerate()
                .filter(|(_, r)| r.is_none())
                .map(|(i, _)| i)
                .collect();
            let weights: Vec<f64> = allowed.iter().map(|&i| w[i]).collect();
            serde_json::to_vec(&json!({"allowed_indexes": allowed, "weights": weights})).unwrap()
        };
        group.bench_with_input(BenchmarkId::new("whole", hosts), &bytes, |b, bytes| {
            b.iter(|| whole(bytes, None))
        });
        // The shim's steady state: the cache holds every host, one changed since.
        let cache = HostCache::new(4 * hosts);
        parse_callout(&bytes, 100_000, Some(&cache), true).unwrap();
        let by_ref = body(&body_by_reference(&full));
        group.bench_with_input(
            BenchmarkId::new("whole_by_reference", hosts),
            &by_ref,
            |b, bytes| b.iter(|| whole(bytes, Some(&cache))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
