//! The living cloud of the twin: VMs that arrive over the run and are deleted, checked on the
//! twin's own state and on its report.

use std::collections::BTreeSet;

use super::twin::{vms_of, SimVm, Twin};
use super::*;

/// A small cloud with arrivals and lifetimes: 2 AZs x 3 hosts, web VMs that come and go, batch
/// VMs that come and go faster, databases that stay; busy enough at the web peaks for steal
/// and moves.
const LIVING: &str = r#"
name = "living"
hours = 24
azs = ["az1", "az2"]
hosts_per_az = 3
roleless_share = 0.1

[telemetry]
warmup_weeks = 1

[host]
pcpus = 16
memory_mb = 131072
disk_gb = 2000

[[roles]]
name = "web"
count = 18
vcpus = 4
memory_mb = 8192
disk_gb = 20
curve = "web"
base = 0.2
peak = 0.9
spread = 0.4
arrivals_per_hour = 2
lifetime_hours = 8

[[roles]]
name = "batch"
count = 4
vcpus = 8
memory_mb = 16384
curve = "batch"
base = 0.1
peak = 0.9
arrivals_per_hour = 0.5
lifetime_hours = 3

[[roles]]
name = "db"
count = 4
vcpus = 4
memory_mb = 16384
curve = "flat"
base = 0.5

[rebalance]
load_enter = 0.6
steal_enter = 0.05
load_exit = 0.4
steal_exit = 0.02
steal_margin = 0.03
cooldown_hours = 4
"#;

fn living(seed: u64) -> Scenario {
    let mut scn = Scenario::parse(LIVING).expect("the living scenario parses");
    scn.seed = seed;
    scn
}

fn strategy(scn: &Scenario, name: &str) -> Strategy {
    scn.strategies()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("strategy {name}"))
}

/// The VMs a strategy booted (a Boot event), from its events.
fn booted(events: &[Event]) -> BTreeSet<usize> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Boot { vm, .. } => Some(*vm),
            _ => None,
        })
        .collect()
}

#[test]
fn arrivals_follow_their_rate_and_lifetimes_their_mean() {
    // Four weeks of 3 arrivals per hour with a mean life of 10 h: about 2,016 VMs.
    let text = LIVING
        .replace("hours = 24", "hours = 672")
        .replace("count = 18", "count = 0")
        .replace(
            "arrivals_per_hour = 2\nlifetime_hours = 8",
            "arrivals_per_hour = 3\nlifetime_hours = 10",
        );
    let base = Scenario::parse(&text).unwrap();
    let steps = steps(&base);
    for seed in 1..=5 {
        let scn = Scenario {
            seed,
            ..base.clone()
        };
        let vms = vms_of(&scn);
        let web: Vec<&SimVm> = vms.iter().filter(|v| v.role == 0).collect();
        let n = web.len() as f64;
        assert!(
            (n - 2016.0).abs() < 0.1 * 2016.0,
            "seed {seed}: {n} arrivals"
        );
        assert!(web.windows(2).all(|w| w[0].boot_step <= w[1].boot_step));
        assert!(web.iter().all(|v| v.boot_step < steps));
        // Round-robin over the AZs.
        let in_az1 = web.iter().filter(|v| v.az == "az1").count() as f64;
        assert!(
            (in_az1 - n / 2.0).abs() <= 0.5,
            "seed {seed}: {in_az1} of {n}"
        );
        // Lifetimes of VMs booted in the first 500 h (a longer life than the 172 h left is
        // a chance of e^-17): mean 10 h = 120 steps of 5 minutes.
        let lives: Vec<f64> = web
            .iter()
            .filter(|v| v.boot_step < 6000)
            .map(|v| (v.depart_step.expect("departs within the run") - v.boot_step) as f64)
            .collect();
        let mean = lives.iter().sum::<f64>() / lives.len() as f64;
        assert!(
            (mean - 120.0).abs() < 12.0,
            "seed {seed}: mean life {mean} steps"
        );
        assert!(lives.iter().all(|l| *l >= 1.0), "at least one step");
        // Deterministic per seed, and the draws of one seed are not another's.
        let again = vms_of(&scn);
        assert!(vms
            .iter()
            .zip(&again)
            .all(|(a, b)| (a.uuid.as_str(), a.boot_step, a.depart_step)
                == (b.uuid.as_str(), b.boot_step, b.depart_step)));
    }
    let one = vms_of(&Scenario {
        seed: 1,
        ..base.clone()
    });
    let two = vms_of(&Scenario { seed: 2, ..base });
    assert_ne!(
        one.iter().map(|v| v.boot_step).collect::<Vec<_>>(),
        two.iter().map(|v| v.boot_step).collect::<Vec<_>>()
    );
}

#[test]
fn a_scenario_without_arrivals_or_lifetimes_keeps_its_vms() {
    let text = LIVING
        .replace("arrivals_per_hour = 2\nlifetime_hours = 8", "")
        .replace("arrivals_per_hour = 0.5\nlifetime_hours = 3", "");
    let scn = Scenario::parse(&text).unwrap();
    let vms = vms_of(&scn);
    assert_eq!(vms.len(), 26);
    assert!(vms
        .iter()
        .all(|v| v.boot_step == 0 && v.depart_step.is_none()));
    // The VMs there from the start are the same with arrivals added after them.
    let living = vms_of(&living(scn.seed));
    for (a, b) in vms.iter().zip(&living) {
        assert_eq!(
            (&a.uuid, &a.az, a.intensity, a.roleless),
            (&b.uuid, &b.az, b.intensity, b.roleless)
        );
    }
}

#[test]
fn every_strategy_sees_the_same_vms_leave_at_the_same_steps() {
    for seed in 1..=2 {
        let scn = living(seed);
        let report = simulate(&scn).unwrap();
        let vms = vms_of(&scn);
        assert!(vms.len() > 40, "arrivals add VMs: {}", vms.len());
        let mut departures_seen = 0;
        for s in &report.strategies {
            let events = &s.trace.events;
            let ran = booted(events);
            let departed: BTreeSet<(usize, u64)> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Departure { vm, step } => Some((*vm, *step)),
                    _ => None,
                })
                .collect();
            // Every VM that ran and is deleted within the run departs at its step, once;
            // a VM that never ran never departs.
            let due: BTreeSet<(usize, u64)> = ran
                .iter()
                .filter_map(|&vm| vms[vm].depart_step.map(|d| (vm, d)))
                .collect();
            assert_eq!(departed, due, "seed {seed} {}", s.strategy);
            let n = events
                .iter()
                .filter(|e| matches!(e, Event::Departure { .. }))
                .count();
            assert_eq!(
                n,
                due.len(),
                "seed {seed} {}: one departure per VM",
                s.strategy
            );
            departures_seen += n;
            for (i, v) in report.vms.iter().enumerate() {
                assert_eq!(v.depart_step, vms[i].depart_step);
            }
        }
        assert!(departures_seen > 0, "seed {seed}: VMs left");
        // Reproducible: the same seed gives the same events.
        let again = simulate(&scn).unwrap();
        for (a, b) in report.strategies.iter().zip(&again.strategies) {
            assert_eq!(a.trace.events, b.trace.events);
        }
    }
}

/// What the twin holds must be what its VMs add up to: each host's allocations are the VMs on
/// it plus the claims of migrations copying to it, and its role counts are its VMs.
fn assert_accounts(twin: &Twin, st: &RunState, what: &str) {
    for h in 0..twin.hosts.len() {
        let mut vcpus = 0.0;
        let mut mem = 0.0;
        let mut per_role = vec![0u32; twin.scn.roles.len()];
        let mut grouped = vec![0u32; twin.scn.roles.len()];
        for v in twin.vms.iter().filter(|v| v.host == Some(h)) {
            vcpus += v.size.vcpus;
            mem += v.size.memory_mb;
            per_role[v.role] += 1;
            grouped[v.role] += u32::from(!v.roleless);
        }
        for m in st.migrations.iter().filter(|m| m.to == h) {
            vcpus += twin.vms[m.vm].size.vcpus;
            mem += twin.vms[m.vm].size.memory_mb;
        }
        let host = &twin.hosts[h];
        assert!(
            (host.vcpus_used - vcpus).abs() < 1e-9,
            "{what}: host {h} vCPUs"
        );
        assert!((host.mem_used - mem).abs() < 1e-9, "{what}: host {h} RAM");
        assert_eq!(twin.stacking[h], per_role, "{what}: host {h} stacking");
        assert_eq!(twin.grouped[h], grouped, "{what}: host {h} group members");
    }
}

#[test]
fn a_departed_vm_leaves_its_host_and_every_count_as_if_it_never_came() {
    let churn = Scenario::parse(CHURN).unwrap();
    for seed in 1..=3 {
        let scn = living(seed);
        let mut fast = churn.clone();
        fast.seed = seed;
        for scn in [scn, fast] {
            let work = Workload::new(&scn);
            for s in scn.strategies() {
                let (twin, st, _) = run_twin(&scn, &s, &work).unwrap();
                let what = format!("{} seed {seed} {}", scn.name, s.name);
                assert_accounts(&twin, &st, &what);
                let last = steps(&scn);
                for (i, v) in twin.vms.iter().enumerate() {
                    if v.depart_step.is_some_and(|d| d < last) {
                        assert_eq!(v.host, None, "{what}: VM {i} left");
                    }
                }
            }
        }
    }
}

#[test]
fn a_boot_uses_the_room_a_departure_freed() {
    // One host of 4 cores (no overcommit): four VMs that live about half an hour fill it, four
    // more arrive at 6 h and only fit once the first four are gone.
    let text = r#"
name = "full"
hours = 8
azs = ["az1"]
hosts_per_az = 1
[telemetry]
warmup_weeks = 0
[host]
pcpus = 4
memory_mb = 65536
disk_gb = 1000
cpu_allocation_ratio = 1.0
[[roles]]
name = "early"
count = 4
vcpus = 1
memory_mb = 4096
curve = "flat"
base = 0.5
lifetime_hours = 0.5
[[roles]]
name = "late"
count = 4
vcpus = 1
memory_mb = 4096
curve = "flat"
base = 0.5
boot_at_hours = 6
"#;
    for seed in 1..=5 {
        let mut scn = Scenario::parse(text).unwrap();
        scn.seed = seed;
        let vms = vms_of(&scn);
        let late_boot = vms[4].boot_step;
        assert!(
            vms[..4]
                .iter()
                .all(|v| v.depart_step.is_some_and(|d| d <= late_boot)),
            "seed {seed}: the early VMs are gone by 6 h"
        );
        let report = simulate(&scn).unwrap();
        for s in &report.strategies {
            assert_eq!(s.unplaced, 0, "seed {seed} {}", s.strategy);
            assert_eq!(
                booted(&s.trace.events).len(),
                8,
                "seed {seed} {}",
                s.strategy
            );
        }
    }
}

#[test]
fn a_vm_has_no_demand_and_no_reading_after_it_left() {
    let scn = living(4);
    let work = Workload::new(&scn);
    let vms = vms_of(&scn);
    let mut checked = 0;
    for (i, v) in vms.iter().enumerate() {
        let Some(d) = v.depart_step else { continue };
        checked += 1;
        for (k, row) in work.demand.iter().enumerate() {
            let k = k as u64;
            if k >= d || k < v.boot_step {
                assert_eq!(row[i], 0.0, "VM {i} at step {k}");
                assert_eq!(work.value(&scn, i, k as i64), None, "VM {i} at step {k}");
            } else {
                assert!(
                    work.value(&scn, i, k as i64).is_some(),
                    "VM {i} at step {k}"
                );
            }
        }
    }
    assert!(checked > 10, "{checked} VMs leave");
    // Every fluid-steal sample is a VM running at that step (as the events say), and the view
    // at the end holds no VM that left.
    let s = strategy(&scn, "steward-deployed");
    let (twin, st, m) = run_twin(&scn, &s, &work).unwrap();
    let mut running = 0usize;
    let mut on = BTreeSet::new();
    let events = &st.trace.events;
    for k in 0..steps(&scn) {
        for e in events {
            match *e {
                Event::Boot { vm, step, .. } if step == k => {
                    on.insert(vm);
                }
                Event::Departure { vm, step } if step == k => {
                    on.remove(&vm);
                }
                _ => {}
            }
        }
        running += on.len();
    }
    assert_eq!(m.fluid.len(), running);
    let t = scn.start_unix + steps(&scn) as f64 * scn.step_minutes * 60.0;
    let view = steward_view(&twin, &work, &st.trace, t);
    for (i, v) in vms.iter().enumerate() {
        if v.depart_step.is_some() {
            assert!(!view.vms.contains_key(&v.uuid), "VM {i} left");
        }
    }
}

#[test]
fn an_arrival_has_no_history_of_its_own_but_its_role_has() {
    // web ran before the run (its step-0 VMs); "fresh" only arrives, from the first step on.
    let text = format!(
        "{LIVING}\n[[roles]]\nname = \"fresh\"\ncount = 0\nvcpus = 2\nmemory_mb = 2048\n\
         curve = \"flat\"\nbase = 0.5\narrivals_per_hour = 1\n"
    );
    let scn = Scenario::parse(&text).unwrap();
    let work = Workload::new(&scn);
    let vms = vms_of(&scn);
    let first_web = vms.iter().position(|v| v.role == 0).unwrap();
    let arrival = vms
        .iter()
        .position(|v| v.role == 0 && v.boot_step > 0)
        .unwrap();
    assert!(
        work.value(&scn, first_web, -1).is_some(),
        "the role's history"
    );
    assert_eq!(work.value(&scn, arrival, -1), None, "no history of its own");
    assert!(vms.iter().any(|v| v.role == 3), "fresh VMs arrive");
    let at_start = work.profiles.at(scn.start_unix);
    assert!(at_start.role_demand.contains_key("web"));
    assert!(!at_start.role_demand.contains_key("fresh"));
}

/// Busy all day, VMs of about two hours: the rebalancer has candidates at every cycle (one
/// reading is enough), VMs leave while they are, and some while they move.
const CHURN: &str = r#"
name = "churn"
hours = 12
azs = ["az1"]
hosts_per_az = 3
# A move copies for a few steps: some VMs are deleted while they move.
migration_gib_per_second = 0.005
[telemetry]
warmup_weeks = 0
[host]
pcpus = 16
memory_mb = 131072
disk_gb = 2000
[[roles]]
name = "busy"
count = 13
vcpus = 4
memory_mb = 4096
curve = "flat"
base = 0.85
spread = 0.4
arrivals_per_hour = 6
lifetime_hours = 2
[rebalance]
interval_seconds = 300
window_seconds = 600
min_samples = 1
load_enter = 0.5
steal_enter = 0.02
load_exit = 0.4
steal_exit = 0.01
steal_margin = 0.0
cooldown_hours = 0.5
no_return_hours = 0.5
# Steward believes the link is fast (the default is the scenario's slow one), so it plans
# moves that copy for several steps.
copy_gib_per_second = 1.0
"#;

#[test]
fn no_move_is_planned_for_a_vm_that_left() {
    let mut moved = 0;
    let mut cut_short = 0;
    for seed in 1..=3 {
        let mut scn = Scenario::parse(CHURN).unwrap();
        scn.seed = seed;
        let report = simulate(&scn).unwrap();
        let s = report
            .strategies
            .iter()
            .find(|s| s.strategy == "steward-deployed-rebalance")
            .unwrap();
        for e in &s.trace.events {
            let Event::Move {
                vm,
                start_step,
                end_step,
                vm_deleted,
                ..
            } = *e
            else {
                continue;
            };
            moved += 1;
            let Some(d) = report.vms[vm].depart_step else {
                continue;
            };
            assert!(
                start_step < d,
                "seed {seed}: VM {vm} moved at step {start_step}, deleted at {d}"
            );
            assert!(end_step.is_some_and(|e| e <= d), "seed {seed}: VM {vm}");
            if vm_deleted {
                assert_eq!(end_step, Some(d), "seed {seed}: VM {vm}");
                cut_short += 1;
            }
        }
    }
    assert!(
        moved > 0 && cut_short > 0,
        "the rebalancer moved VMs ({moved}) and some were deleted as they moved ({cut_short}), \
         so the rules were put to the test"
    );
}

/// The moves of `steward-deployed-rebalance` over seeds 1..=3 of CHURN with the link at
/// `link` GiB/s and steward's `copy_gib_per_second` at `believed` (None: the scenario's
/// default, the link itself).
fn churn_moves(link: f64, believed: Option<f64>) -> Vec<MoveOut> {
    let text = CHURN
        .replace(
            "migration_gib_per_second = 0.005",
            &format!("migration_gib_per_second = {link}"),
        )
        .replace(
            "copy_gib_per_second = 1.0",
            &believed.map_or(String::new(), |b| format!("copy_gib_per_second = {b}")),
        );
    let mut moves = Vec::new();
    for seed in 1..=3 {
        let mut scn = Scenario::parse(&text).unwrap();
        scn.seed = seed;
        let report = simulate(&scn).unwrap();
        let s = report
            .strategies
            .into_iter()
            .find(|s| s.strategy == "steward-deployed-rebalance")
            .unwrap();
        moves.extend(s.moves);
    }
    moves
}

/// A move must pay for its copy at the link's real speed: on a slow link steward (configured
/// with that link, the default) plans fewer moves than on a fast one, and each still gives
/// back more CPU than its copy really takes on both hosts. The control: steward told the link
/// is fast when it is not plans moves whose real copy costs more than they give back.
#[test]
fn on_a_slow_link_only_moves_that_pay_for_the_slow_copy_are_planned() {
    let (fast, slow) = (1.0, 0.02);
    let really_pays = |m: &MoveOut, link: f64| {
        // CHURN's migration.cpu_cores is the default, 1 core on each host.
        m.predicted_gain_core_seconds > m.gib / link * 2.0 * 1.0
    };
    let on_fast = churn_moves(fast, None);
    let on_slow = churn_moves(slow, None);
    assert!(
        !on_slow.is_empty() && on_slow.len() < on_fast.len(),
        "{} moves on the slow link, {} on the fast one",
        on_slow.len(),
        on_fast.len()
    );
    for m in &on_fast {
        assert!(really_pays(m, fast), "{m:?}");
    }
    for m in &on_slow {
        assert!(really_pays(m, slow), "{m:?}");
    }
    let misled = churn_moves(slow, Some(fast));
    assert!(
        misled.iter().any(|m| !really_pays(m, slow)),
        "told the link is fast, steward plans moves the slow link does not pay for"
    );
}

#[test]
fn a_vm_deleted_while_it_migrates_frees_its_target() {
    let scn = living(1);
    let mut twin = Twin::new(&scn);
    let size = twin.size(0);
    twin.reserve(0, &size, 1.0);
    twin.land(0, 0);
    // A move to host 1 started at step 2; its copy would need 10 minutes.
    twin.reserve(1, &size, 1.0);
    let step = scn.step_minutes * 60.0;
    let start = scn.start_unix + 2.0 * step;
    let mut st = RunState {
        migrations: vec![Migration {
            vm: 0,
            from: 0,
            to: 1,
            start_step: 2,
            start,
            finish: start + 600.0,
            gib: 600.0 * scn.migration_gib_per_second,
            converged: true,
            out: 0,
        }],
        rebalancer: Rebalancer::default(),
        moves_out: vec![MoveOut {
            vm: twin.vms[0].uuid.clone(),
            role: "web".into(),
            from_host: twin.hosts[0].name.clone(),
            to_host: twin.hosts[1].name.clone(),
            az: "az1".into(),
            at_hours: 2.0 * step / 3600.0,
            gib: 28.0,
            gib_sent: 600.0,
            seconds: 600.0,
            converged: true,
            predicted_gain_core_seconds: 0.0,
            copy_cost_core_seconds: 0.0,
            vm_deleted: false,
        }],
        gib_moved: 600.0,
        starts_per_az: BTreeMap::new(),
        trace: Trace::default(),
    };
    // Deleted one step later: 300 s of copy at 1 GiB/s.
    depart_due(&mut twin, &mut st, &[0], 3, start + step);
    assert!(st.migrations.is_empty(), "the migration ended");
    for h in [0, 1] {
        assert_eq!(twin.hosts[h].vcpus_used, 0.0, "host {h}");
        assert_eq!(twin.hosts[h].mem_used, 0.0, "host {h}");
    }
    assert_eq!(twin.vms[0].host, None);
    assert_eq!(twin.stacking[0][0], 0);
    assert_eq!(
        st.trace.events,
        vec![
            Event::Move {
                vm: 0,
                from: 0,
                to: 1,
                start_step: 2,
                end_step: Some(3),
                gib: 300.0,
                converged: false,
                vm_deleted: true,
            },
            Event::Departure { vm: 0, step: 3 },
        ]
    );
    let out = &st.moves_out[0];
    assert!(out.vm_deleted && !out.converged);
    assert_eq!((out.gib_sent, out.seconds), (300.0, 300.0));
    assert_eq!(st.gib_moved, 300.0);
    // A VM that never ran does not depart.
    depart_due(&mut twin, &mut st, &[1], 3, start + step);
    assert_eq!(st.trace.events.len(), 2);
}

#[test]
fn bad_arrivals_and_lifetimes_name_their_key() {
    let problems = |from: &str, to: &str| {
        let text = LIVING.replace(from, to);
        assert_ne!(text, LIVING, "{from}");
        Scenario::parse(&text).unwrap_err().join("\n")
    };
    let p = problems("arrivals_per_hour = 2", "arrivals_per_hour = -1");
    assert!(
        p.contains("roles[0] (web).arrivals_per_hour: must be"),
        "{p}"
    );
    let p = problems("arrivals_per_hour = 2", "arrivals_per_hour = nan");
    assert!(p.contains("roles[0] (web).arrivals_per_hour"), "{p}");
    let p = problems("arrivals_per_hour = 2", "arrivals_per_hour = 1e9");
    assert!(
        p.contains("roles[0] (web).arrivals_per_hour") && p.contains("lower the rate"),
        "{p}"
    );
    let p = problems("lifetime_hours = 3", "lifetime_hours = 0");
    assert!(
        p.contains("roles[1] (batch).lifetime_hours: must be a positive"),
        "{p}"
    );
    let p = problems("lifetime_hours = 3", "lifetime_hours = inf");
    assert!(p.contains("roles[1] (batch).lifetime_hours"), "{p}");
    let p = problems("lifetime_hours = 3", "lifetime_hour = 3");
    assert!(p.contains("lifetime_hour"), "{p}");
    // No input makes the VM list endless or panics, checked or not.
    for rate in [f64::INFINITY, f64::NAN, 1e300, -1.0] {
        let mut scn = living(1);
        scn.roles[0].arrivals_per_hour = rate;
        scn.roles[0].lifetime_hours = Some(1e300);
        let n = vms_of(&scn).len();
        assert!(n <= 26 + 200_000 + 200, "{rate}: {n}");
    }
}

#[test]
fn departures_come_before_the_boots_of_their_step() {
    // One host that holds four VMs at a time, VMs that arrive faster than they leave: a boot
    // finds room only where a departure of its own step or before freed it.
    let text = CHURN
        .replace("hosts_per_az = 3", "hosts_per_az = 1")
        .replace(
            "disk_gb = 2000",
            "disk_gb = 2000\ncpu_allocation_ratio = 1.0",
        )
        .replace("count = 13", "count = 4");
    let mut both = 0;
    for seed in 1..=3 {
        let mut scn = Scenario::parse(&text).unwrap();
        scn.seed = seed;
        let report = simulate(&scn).unwrap();
        for s in &report.strategies {
            let mut used = 0.0;
            let mut booted_in: Option<u64> = None;
            for e in &s.trace.events {
                match *e {
                    Event::Boot { vm, step, .. } => {
                        used += report.vms[vm].vcpus;
                        assert!(used <= 16.0, "seed {seed} {}: VM {vm}", s.strategy);
                        booted_in = Some(step);
                    }
                    Event::NoValidHost { vm, step } => {
                        assert!(used + report.vms[vm].vcpus > 16.0, "seed {seed}: VM {vm}");
                        booted_in = Some(step);
                    }
                    Event::Departure { vm, step } => {
                        used -= report.vms[vm].vcpus;
                        assert_ne!(
                            booted_in,
                            Some(step),
                            "seed {seed}: VM {vm} left after a boot"
                        );
                        both += usize::from(report.vms.iter().any(|v| v.boot_step == step));
                    }
                    Event::Move { .. } => {}
                }
            }
        }
    }
    assert!(both > 0, "steps with departures and boots");
}
