//! A burst of 200 candidates never breaks a limit: whatever the cloud, the journal and the
//! settings, every plan keeps every concurrency limit, the byte budget, room, the AZ, the role
//! cap, the steal margin, the cooldown and the no-return rule, and accounts for every candidate.

mod common_rebalance;

use std::collections::HashMap;

use common_rebalance::*;
use proptest::prelude::*;
use steward::rebalance::plan::VmSize;
use steward::rebalance::{Bucket, InFlight, MoveRecord, RebalanceSettings, GIB};

#[derive(Debug, Clone)]
struct Case {
    hosts: Vec<(usize, f64, f64, f64, f64)>, // az, steal, cpu_use, vcpus_used, mem_free_mb
    vms: Vec<(usize, f64, f64, u8, f64, f64, bool)>, // host, load, steal, role, mem, disk, block
    in_flight: Vec<(usize, usize)>,          // source, target (host indexes)
    recent: Vec<(usize, usize, f64)>,        // vm, from host, hours ago
    tokens: Vec<Option<(f64, f64)>>,         // per AZ: GiB left, hours since
    cfg: RebalanceSettings,
}

fn case() -> impl Strategy<Value = Case> {
    let hosts = prop::collection::vec(
        (
            0usize..3,
            0.0..0.4f64,
            0.0..1.0f64,
            0.0..128.0f64,
            0.0..262_144.0f64,
        ),
        3..30,
    );
    let vms = prop::collection::vec(
        (
            0usize..1000,
            0.5..2.0f64,
            0.05..0.6f64,
            0u8..4,
            512.0..65_536.0f64,
            0.0..300.0f64,
            any::<bool>(),
        ),
        200,
    );
    let in_flight = prop::collection::vec((0usize..1000, 0usize..1000), 0..10);
    let recent = prop::collection::vec((0usize..200, 0usize..1000, 0.0..30.0f64), 0..40);
    let tokens = prop::collection::vec(prop::option::of((0.0..400.0f64, 0.0..3.0f64)), 3);
    let cfg = (
        (1u32..25, 1u32..10, 1u32..4, 1u32..4, 1u32..60),
        (0.0..500.0f64, prop::option::of(1.0..600.0f64)),
        (0.0..12.0f64, 0.0..48.0f64, 0.0..0.2f64, any::<bool>()),
        (0.01..4.0f64, 0.05..4.0f64, 0.0..4.0f64),
    )
        .prop_map(
            |(
                (max_concurrent, per_az, per_source, per_target, max_actions),
                (rate, burst),
                (cooldown, no_return, margin, web),
                (gain_hours, copy_gib_per_second, copy_cpu_cores),
            )| RebalanceSettings {
                profile: if web { "web" } else { "default" }.into(),
                max_concurrent,
                max_concurrent_per_az: per_az,
                max_concurrent_per_source: per_source,
                max_concurrent_per_target: per_target,
                max_actions_per_cycle: max_actions,
                budget_gib_per_az_per_hour: rate,
                budget_burst_gib: burst,
                cooldown_hours: cooldown,
                no_return_hours: no_return,
                steal_margin: margin,
                gain_hours,
                copy_gib_per_second,
                copy_cpu_cores,
                forbidden_windows: Vec::new(),
                ..Default::default()
            },
        );
    (hosts, vms, in_flight, recent, tokens, cfg).prop_map(
        |(hosts, vms, in_flight, recent, tokens, cfg)| Case {
            hosts,
            vms,
            in_flight,
            recent,
            tokens,
            cfg,
        },
    )
}

/// Which concurrency counter a migration counts in: (AZ, source, target) -> key.
type Key<'a> = &'a dyn Fn(&str, &str, &str) -> String;

const ROLES: [Option<&str>; 4] = [Some("web"), Some("db"), Some("batch"), None];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_burst_of_200_candidates_never_breaks_a_limit(c in case()) {
        let mut w = World::new(NOW);
        let names: Vec<String> = c.hosts.iter().enumerate()
            .map(|(i, h)| format!("az{}-h{i}", h.0 + 1)).collect();
        for (i, &(az, steal, cpu, used, mem_free)) in c.hosts.iter().enumerate() {
            w.host(&names[i], &format!("az{}", az + 1), steal, cpu);
            let h = w.hosts.last_mut().unwrap();
            h.vcpus_used = Some(used);
            h.memory_mb_free = Some(mem_free);
        }
        let host_of = |i: usize| names[i % names.len()].clone();
        for (i, &(host, load, steal, role, mem, disk, block)) in c.vms.iter().enumerate() {
            let uuid = format!("vm{i:03}");
            w.vm(&uuid, &host_of(host), ROLES[role as usize]);
            w.sizes.insert(uuid.clone(), VmSize { vcpus: 4.0, memory_mb: mem, disk_gb: disk, block_migration: block });
            w.candidate(&uuid, load, steal);
        }
        // Rank as detection does: worst first.
        w.detection.candidates.sort_by(|a, b| b.severity.total_cmp(&a.severity));
        for (k, &(s, t)) in c.in_flight.iter().enumerate() {
            let (s, t) = (host_of(s), host_of(t));
            let az = w.view.host_az(&s).unwrap().to_string();
            w.in_flight.push(InFlight { vm: format!("busy{k}"), source_host: s, target_host: t, az });
        }
        for &(vm, from, ago) in &c.recent {
            w.history.push(MoveRecord {
                vm: format!("vm{vm:03}"),
                from_host: host_of(from),
                to_host: w.view.vms[&format!("vm{vm:03}")].host.clone().unwrap(),
                at: NOW - ago * 3600.0,
            });
        }
        for (az, t) in c.tokens.iter().enumerate() {
            if let Some((gib, hours)) = t {
                w.budget.per_az.insert(format!("az{}", az + 1), Bucket { tokens: gib * GIB, updated_at: NOW - hours * 3600.0 });
            }
        }
        let cfg = &c.cfg;
        let p = w.plan(cfg);

        // Every candidate is accounted for exactly once.
        let mut seen: HashMap<&str, u32> = HashMap::new();
        for v in p.actions.iter().map(|a| a.vm.as_str()).chain(p.skipped.iter().map(|s| s.vm.as_str())) {
            *seen.entry(v).or_default() += 1;
        }
        prop_assert_eq!(seen.len(), 200);
        prop_assert!(seen.values().all(|n| *n == 1));

        prop_assert!(p.actions.len() <= cfg.max_actions_per_cycle as usize);
        // Concurrency: in flight plus planned, wherever the plan adds one.
        let count = |key: Key| {
            let mut m: HashMap<String, u32> = HashMap::new();
            for f in &w.in_flight { *m.entry(key(&f.az, &f.source_host, &f.target_host)).or_default() += 1; }
            for a in &p.actions { *m.entry(key(&a.az, &a.source_host, &a.target_host)).or_default() += 1; }
            m
        };
        let planned_keys = |key: Key| -> Vec<String> {
            p.actions.iter().map(|a| key(&a.az, &a.source_host, &a.target_host)).collect()
        };
        let limits: [(Key, u32); 4] = [
            (&|_, _, _| "all".to_string(), cfg.max_concurrent),
            (&|az, _, _| az.to_string(), cfg.max_concurrent_per_az),
            (&|_, s, _| s.to_string(), cfg.max_concurrent_per_source),
            (&|_, _, t| t.to_string(), cfg.max_concurrent_per_target),
        ];
        for (key, limit) in limits {
            let m = count(key);
            for k in planned_keys(key) {
                prop_assert!(m[&k] <= limit, "{} has {} > {}", k, m[&k], limit);
            }
        }

        // The byte budget per AZ: what the plan spends fits the refilled bucket.
        let mut spent: HashMap<&str, f64> = HashMap::new();
        for a in &p.actions { *spent.entry(a.az.as_str()).or_default() += a.bytes as f64; }
        for (az, bytes) in &spent {
            let burst = cfg.burst_bytes();
            let available = match w.budget.per_az.get(*az) {
                None => burst,
                Some(b) => (b.tokens + (NOW - b.updated_at) * cfg.refill_bytes_per_second()).min(burst),
            };
            prop_assert!(*bytes <= available + 1.0, "{} spends {} of {}", az, bytes, available);
            let left = p.budget.per_az[*az].tokens;
            prop_assert!(left >= -1.0 && (left - (available - bytes)).abs() < 1024.0);
        }

        let hosts: HashMap<&str, &steward::model::Host> = w.hosts.iter().map(|h| (h.host.as_str(), h)).collect();
        let mut used: HashMap<&str, (f64, f64, f64)> = HashMap::new();
        let mut role_added: HashMap<(String, String), u32> = HashMap::new();
        for a in &p.actions {
            // Same AZ, another host.
            prop_assert_ne!(&a.source_host, &a.target_host);
            prop_assert_eq!(w.view.host_az(&a.target_host), Some(a.az.as_str()));
            prop_assert_eq!(w.view.host_az(&a.source_host), Some(a.az.as_str()));
            // Room, counting earlier moves of the plan.
            let h = hosts[a.target_host.as_str()];
            let u = used.entry(a.target_host.as_str()).or_default();
            u.0 += a.vcpus;
            u.1 += a.memory_mb;
            if a.block_migration { u.2 += a.disk_gb; }
            prop_assert!(h.vcpus_used.unwrap() + u.0 <= 32.0 * 4.0 + 1e-6);
            prop_assert!(u.1 <= h.memory_mb_free.unwrap() + 1e-6);
            prop_assert!(u.2 <= h.disk_gb_free.unwrap() + 1e-6);
            // Steal margin.
            prop_assert!(a.predicted_steal_at_target <= a.steal_at_source - cfg.steal_margin + 1e-9);
            // The move pays for its copy, with the figures recomputed from the action.
            let cost = a.bytes as f64 / GIB / cfg.copy_gib_per_second * 2.0 * cfg.copy_cpu_cores;
            let gain = (a.steal_at_source - a.predicted_steal_at_target)
                * a.load_per_vcpu * a.vcpus * cfg.gain_hours * 3600.0;
            prop_assert!((a.copy_cost_core_seconds - cost).abs() < 1e-6 * cost.max(1.0));
            prop_assert!((a.predicted_gain_core_seconds - gain).abs() < 1e-6 * gain.max(1.0));
            prop_assert!(a.predicted_gain_core_seconds > a.copy_cost_core_seconds);
            // Cooldown and no return.
            for m in w.history.iter().filter(|m| m.vm == a.vm) {
                prop_assert!(m.at <= NOW - cfg.cooldown_hours * 3600.0);
                if m.at > NOW - cfg.no_return_hours * 3600.0 {
                    prop_assert_ne!(&m.from_host, &a.target_host);
                }
            }
            // The web profile's hard cap of 2 per host.
            if let (Some(role), "web") = (a.role.as_ref(), cfg.profile.as_str()) {
                let there = w.view.vms.values()
                    .filter(|v| v.role.as_ref() == Some(role) && v.host.as_deref() == Some(a.target_host.as_str()))
                    .count() as u32;
                let added = role_added.entry((role.clone(), a.target_host.clone())).or_default();
                *added += 1;
                prop_assert!(there + *added <= 2, "{} VMs of {} on {}", there + *added, role, a.target_host);
            }
        }
    }
}
