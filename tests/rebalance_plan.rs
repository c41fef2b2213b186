//! The rebalance planner's rules, one story each: same AZ only, room, the role cap, the steal
//! margin, and every limit naming itself when it stops a candidate.

mod common_rebalance;

use common_rebalance::*;
use steward::rebalance::{Bucket, InFlight, Limit, MoveRecord, RebalanceSettings, GIB};

#[test]
fn a_stolen_busy_vm_moves_to_the_quietest_host_of_its_own_az() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-busy", "az1", 0.20, 0.9);
    w.host("az1-quiet", "az1", 0.00, 0.3);
    // Emptier and quieter, but in another AZ.
    w.host("az2-empty", "az2", 0.00, 0.0);
    w.vm("vm1", "az1-src", Some("web"));
    w.candidate("vm1", 0.9, 0.30);
    let p = w.plan(&settings());
    assert_eq!(p.skipped, vec![], "nothing skipped");
    assert_eq!(p.actions.len(), 1);
    let a = &p.actions[0];
    assert_eq!(
        (
            a.source_host.as_str(),
            a.target_host.as_str(),
            a.az.as_str()
        ),
        ("az1-src", "az1-quiet", "az1")
    );
    assert_eq!(a.role.as_deref(), Some("web"));
    assert!(a.predicted_steal_at_target < 0.01);
    assert!((a.steal_at_source - 0.30).abs() < 1e-9);
    assert_eq!(a.bytes, (8192.0 * 1024.0 * 1024.0 + 40.0 * GIB) as u64);
    assert!(a.block_migration);
    assert!(a.reason.contains("az1-quiet"), "{}", a.reason);
}

#[test]
fn never_leaves_the_az_even_when_the_az_has_no_room() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host_full("az1-full", "az1");
    w.host("az2-empty", "az2", 0.00, 0.0);
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 0.9, 0.30);
    let p = w.plan(&settings());
    assert!(p.actions.is_empty());
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].limit, Limit::NoDestination);
    assert!(
        p.skipped[0].detail.contains("without vCPU room"),
        "{}",
        p.skipped[0].detail
    );
}

#[test]
fn a_host_with_no_az_is_never_a_destination() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("nowhere", "az1", 0.0, 0.1);
    w.hosts.last_mut().unwrap().az = None;
    w.view.hosts.get_mut("nowhere").unwrap().az = None;
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 0.9, 0.30);
    let p = w.plan(&settings());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.skipped[0].limit, Limit::NoDestination);
}

#[test]
fn a_host_whose_compute_service_is_disabled_or_down_is_never_a_destination() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-quiet", "az1", 0.00, 0.1);
    w.host("az1-other", "az1", 0.05, 0.4);
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 0.9, 0.30);
    // The control: open, the quietest host wins.
    assert_eq!(w.plan(&settings()).actions[0].target_host, "az1-quiet");
    w.closed
        .insert("az1-quiet".into(), "with nova-compute disabled");
    assert_eq!(w.plan(&settings()).actions[0].target_host, "az1-other");
    w.closed
        .insert("az1-other".into(), "with nova-compute down");
    let p = w.plan(&settings());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.skipped[0].limit, Limit::NoDestination);
    let detail = &p.skipped[0].detail;
    assert!(detail.contains("1 with nova-compute disabled"), "{detail}");
    assert!(detail.contains("1 with nova-compute down"), "{detail}");
    // A closed host is still left: moving off a disabled host is what its operator wants.
    w.closed.clear();
    w.closed
        .insert("az1-src".into(), "with nova-compute disabled");
    assert_eq!(w.plan(&settings()).actions[0].target_host, "az1-quiet");
}

#[test]
fn the_hard_role_cap_holds_counting_moves_planned_this_cycle() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-src2", "az1", 0.30, 0.9);
    w.host("az1-two", "az1", 0.0, 0.2);
    w.host("az1-one", "az1", 0.0, 0.3);
    w.vm("w-a", "az1-two", Some("web"));
    w.vm("w-b", "az1-two", Some("web"));
    w.vm("w-c", "az1-one", Some("web"));
    w.vm("vm1", "az1-src", Some("web"));
    w.vm("vm2", "az1-src2", Some("web"));
    w.candidate("vm1", 1.0, 0.30);
    w.candidate("vm2", 0.9, 0.30);
    // The built-in "web" profile caps role_spread hard at 2 per host.
    let cfg = RebalanceSettings {
        profile: "web".into(),
        max_concurrent_per_target: 5,
        ..settings()
    };
    let p = w.plan(&cfg);
    assert_eq!(p.actions.len(), 1, "{:#?}", p);
    assert_eq!(p.actions[0].vm, "vm1");
    assert_eq!(p.actions[0].target_host, "az1-one");
    // az1-one now holds 2 web VMs with vm1 planned: vm2 has nowhere to go.
    assert_eq!(p.skipped.len(), 1);
    assert_eq!(p.skipped[0].vm, "vm2");
    assert_eq!(p.skipped[0].limit, Limit::NoDestination);
    assert!(
        p.skipped[0].detail.contains("role web") || p.skipped[0].detail.contains("role_spread"),
        "{}",
        p.skipped[0].detail
    );
}

#[test]
fn the_target_must_be_predicted_quieter_by_the_margin() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-almost", "az1", 0.27, 0.5);
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 0.9, 0.30);
    let p = w.plan(&settings());
    assert!(p.actions.is_empty());
    assert!(p.skipped[0].detail.contains("points of steal below"));
    // 20 % is 10 points below 30 %: enough for a margin of 5.
    w.view.hosts.get_mut("az1-almost").unwrap().steal = Some(0.20);
    assert_eq!(w.plan(&settings()).actions.len(), 1);
    // A host whose CPU the VM's own load would overflow is predicted to steal.
    w.view.hosts.get_mut("az1-almost").unwrap().steal = Some(0.0);
    w.view.hosts.get_mut("az1-almost").unwrap().cpu_use = Some(1.0);
    w.detection.candidates[0].vcpus = 16.0;
    let p = w.plan(&settings());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}

#[test]
fn unknown_steal_is_not_a_quiet_host() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-stale", "az1", 0.0, 0.1);
    w.view.hosts.get_mut("az1-stale").unwrap().observed_at = NOW - 3600.0;
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 0.9, 0.30);
    let p = w.plan(&settings());
    assert!(p.actions.is_empty());
    assert!(p.skipped[0].detail.contains("unknown steal"));
}

#[test]
fn room_is_taken_by_earlier_moves_of_the_cycle() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-src2", "az1", 0.30, 0.9);
    w.host("az1-a", "az1", 0.0, 0.1);
    // Clearly worse than az1-a, but quiet enough to be a destination.
    w.host("az1-b", "az1", 0.10, 0.2);
    // Each has RAM for exactly one 8 GiB VM.
    w.hosts[2].memory_mb_free = Some(10_000.0);
    w.hosts[3].memory_mb_free = Some(10_000.0);
    w.vm("vm1", "az1-src", None);
    w.vm("vm2", "az1-src2", None);
    w.candidate("vm1", 1.0, 0.30);
    w.candidate("vm2", 0.9, 0.30);
    let cfg = RebalanceSettings {
        max_concurrent_per_target: 5,
        ..settings()
    };
    let p = w.plan(&cfg);
    let targets: Vec<&str> = p.actions.iter().map(|a| a.target_host.as_str()).collect();
    assert_eq!(targets.len(), 2, "{p:#?}");
    assert_ne!(
        targets[0], targets[1],
        "the second cannot fit where the first went"
    );
}

/// A world with two sources and three free targets in az1, and two candidates.
fn two_candidates() -> World {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-src2", "az1", 0.30, 0.9);
    for t in ["az1-t1", "az1-t2", "az1-t3"] {
        w.host(t, "az1", 0.0, 0.2);
    }
    w.vm("vm1", "az1-src", None);
    w.vm("vm2", "az1-src2", None);
    w.candidate("vm1", 1.0, 0.30);
    w.candidate("vm2", 0.9, 0.30);
    w
}

fn only_limit(p: &steward::rebalance::Plan, vm: &str) -> Limit {
    let s: Vec<_> = p.skipped.iter().filter(|s| s.vm == vm).collect();
    assert_eq!(s.len(), 1, "{vm} skipped once: {p:#?}");
    s[0].limit
}

#[test]
fn each_limit_stops_a_candidate_and_names_itself() {
    // max_actions_per_cycle
    let w = two_candidates();
    let p = w.plan(&RebalanceSettings {
        max_actions_per_cycle: 1,
        ..settings()
    });
    assert_eq!(p.actions.len(), 1);
    assert_eq!(only_limit(&p, "vm2"), Limit::MaxActionsPerCycle);

    // max_concurrent counts migrations in flight
    let mut w = two_candidates();
    w.in_flight.push(InFlight {
        vm: "other".into(),
        source_host: "az9-x".into(),
        target_host: "az9-y".into(),
        az: "az9".into(),
    });
    let p = w.plan(&RebalanceSettings {
        max_concurrent: 2,
        ..settings()
    });
    assert_eq!(p.actions.len(), 1);
    assert_eq!(only_limit(&p, "vm2"), Limit::MaxConcurrent);

    // max_concurrent_per_az
    let w = two_candidates();
    let p = w.plan(&RebalanceSettings {
        max_concurrent_per_az: 1,
        ..settings()
    });
    assert_eq!(only_limit(&p, "vm2"), Limit::MaxConcurrentPerAz);

    // max_concurrent_per_source: both on one source
    let mut w = two_candidates();
    w.view.vms.get_mut("vm2").unwrap().host = Some("az1-src".into());
    w.detection.candidates[1].host = Some("az1-src".into());
    let p = w.plan(&settings());
    assert_eq!(only_limit(&p, "vm2"), Limit::MaxConcurrentPerSource);

    // max_concurrent_per_target: a single target, already receiving one
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-t1", "az1", 0.0, 0.2);
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 1.0, 0.30);
    w.in_flight.push(InFlight {
        vm: "other".into(),
        source_host: "az1-x".into(),
        target_host: "az1-t1".into(),
        az: "az1".into(),
    });
    let p = w.plan(&settings());
    assert_eq!(only_limit(&p, "vm1"), Limit::MaxConcurrentPerTarget);

    // in flight: the VM itself is being moved
    let mut w = two_candidates();
    w.in_flight.push(InFlight {
        vm: "vm1".into(),
        source_host: "az1-src".into(),
        target_host: "az1-t3".into(),
        az: "az1".into(),
    });
    let p = w.plan(&settings());
    assert_eq!(only_limit(&p, "vm1"), Limit::InFlight);

    // byte budget: 50 GiB left, each move needs 48 GiB
    let mut w = two_candidates();
    w.budget.per_az.insert(
        "az1".into(),
        Bucket {
            tokens: 50.0 * GIB,
            updated_at: NOW,
        },
    );
    let p = w.plan(&settings());
    assert_eq!(p.actions.len(), 1);
    assert_eq!(only_limit(&p, "vm2"), Limit::ByteBudget);
    let left = p.budget.per_az["az1"].tokens;
    assert!((left - 2.0 * GIB).abs() < 1.0, "2 GiB left, got {left}");
    assert!(p.skipped[0].detail.contains("2.0 GiB"));

    // ... which refills with time: an hour later, 200 GiB (capped at the burst size)
    let mut w2 = two_candidates();
    w2.budget = p.budget.clone();
    w2.set_now(NOW + 3600.0);
    let p2 = w2.plan(&settings());
    assert_eq!(p2.actions.len(), 2, "{:#?}", p2.skipped);

    // cooldown
    let mut w = two_candidates();
    w.history.push(MoveRecord {
        vm: "vm1".into(),
        from_host: "az1-t9".into(),
        to_host: "az1-src".into(),
        at: NOW - 3600.0,
    });
    let p = w.plan(&settings());
    assert_eq!(only_limit(&p, "vm1"), Limit::Cooldown);
    // past the cooldown it moves again
    let p = w.plan(&RebalanceSettings {
        cooldown_hours: 0.5,
        ..settings()
    });
    assert_eq!(p.actions.len(), 2);

    // forbidden window: 12:00 UTC is inside 11:00-14:00
    let mut w = two_candidates();
    w.set_now(NOW_NOON);
    let p = w.plan(&RebalanceSettings {
        forbidden_windows: vec!["11:00-14:00".into()],
        ..settings()
    });
    assert!(p.actions.is_empty());
    assert_eq!(only_limit(&p, "vm1"), Limit::ForbiddenWindow);
    assert_eq!(only_limit(&p, "vm2"), Limit::ForbiddenWindow);
    // outside it
    let mut w = two_candidates();
    w.set_now(NOW_NOON + 3.0 * 3600.0);
    let p = w.plan(&RebalanceSettings {
        forbidden_windows: vec!["11:00-14:00".into()],
        ..settings()
    });
    assert_eq!(p.actions.len(), 2);

    // missing size
    let mut w = two_candidates();
    w.sizes.remove("vm2");
    let p = w.plan(&settings());
    assert_eq!(only_limit(&p, "vm2"), Limit::MissingFacts);
}

#[test]
fn a_vm_never_returns_to_a_host_it_left_recently() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-old", "az1", 0.0, 0.1);
    w.host("az1-other", "az1", 0.05, 0.4);
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 1.0, 0.30);
    w.history.push(MoveRecord {
        vm: "vm1".into(),
        from_host: "az1-old".into(),
        to_host: "az1-src".into(),
        at: NOW - 10.0 * 3600.0,
    });
    let cfg = RebalanceSettings {
        cooldown_hours: 1.0,
        no_return_hours: 24.0,
        ..settings()
    };
    let p = w.plan(&cfg);
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.actions[0].target_host, "az1-other");
    // After no_return_hours it may go back to the best host.
    let p = w.plan(&RebalanceSettings {
        no_return_hours: 5.0,
        ..cfg
    });
    assert_eq!(p.actions[0].target_host, "az1-old");
}

#[test]
fn steal_only_reports_pass_through_to_the_plan() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.detection
        .steal_only
        .push(steward::rebalance::StealReport {
            vm: "idle".into(),
            host: Some("az1-src".into()),
            steal: 0.3,
            load_per_vcpu: 0.05,
        });
    let p = w.plan(&settings());
    assert!(p.actions.is_empty());
    assert_eq!(p.steal_only.len(), 1);
    assert_eq!(p.steal_only[0].vm, "idle");
}

#[test]
fn with_a_peak_margin_a_move_must_lower_the_vms_predicted_peak() {
    // Web peaks at 3 cores per VM at 20 h. The source holds the VM and two other web VMs
    // (9 cores at 20 h, 28 % of 32); the only quiet host holds four (15 cores with the VM,
    // 47 %): quieter now, busier tonight.
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-quiet", "az1", 0.00, 0.3);
    for i in 0..2 {
        w.vm(&format!("s{i}"), "az1-src", Some("web"));
    }
    for i in 0..4 {
        w.vm(&format!("q{i}"), "az1-quiet", Some("web"));
    }
    w.vm("vm1", "az1-src", Some("web"));
    w.candidate("vm1", 0.9, 0.30);
    let mut values = vec![0.3; 168];
    for day in 0..7 {
        values[day * 24 + 20] = 3.0;
    }
    let mut weekly = steward::model::WeeklyProfiles::default();
    weekly.role_demand.insert(
        "web".into(),
        steward::model::WeeklyProfile {
            values,
            weeks: 4,
            computed_at: NOW,
        },
    );
    w.view.weekly = std::sync::Arc::new(weekly);
    // Off by default: the move is planned on steal alone.
    assert_eq!(w.plan(&settings()).actions.len(), 1);
    let cfg = RebalanceSettings {
        peak_margin: Some(0.05),
        ..settings()
    };
    let p = w.plan(&cfg);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(
        p.skipped[0]
            .detail
            .contains("points of peak below its host's 28%"),
        "{}",
        p.skipped[0].detail
    );
}

#[test]
fn a_move_must_give_back_more_cpu_than_its_copy_takes() {
    let mut w = World::new(NOW);
    w.host("az1-src", "az1", 0.30, 0.9);
    w.host("az1-quieter", "az1", 0.20, 0.5);
    w.vm("vm1", "az1-src", None);
    w.candidate("vm1", 0.9, 0.30);
    // 10 points of steal off 3.6 busy cores for an hour: 1,296 core-seconds back, against
    // 48 GiB copied at 1 GiB/s with a core busy on each host: 96 core-seconds.
    let p = w.plan(&settings());
    assert_eq!(p.actions.len(), 1, "{:?}", p.skipped);
    let a = &p.actions[0];
    assert!(
        (a.predicted_gain_core_seconds - 0.10 * 3.6 * 3600.0).abs() < 1.0,
        "{a:?}"
    );
    assert!((a.copy_cost_core_seconds - 96.0).abs() < 1e-6, "{a:?}");
    // The same copy over a link 20 times slower takes 1,920 core-seconds: not worth it.
    let slow = RebalanceSettings {
        copy_gib_per_second: 0.05,
        ..settings()
    };
    let p = w.plan(&slow);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.skipped[0].limit, Limit::NoDestination);
    assert!(
        p.skipped[0]
            .detail
            .contains("less than the copy's 1920 core-seconds over rebalance.gain_hours"),
        "{}",
        p.skipped[0].detail
    );
    // Counted over three minutes, the gain (65 core-seconds) does not cover the copy either.
    let short = RebalanceSettings {
        gain_hours: 0.05,
        ..settings()
    };
    assert!(w.plan(&short).actions.is_empty());
}
