//! Property tests of the scoring core: any request, any view, no panic, sane answers.

mod common;

use proptest::prelude::*;
use steward::model::{ClusterView, Host, HostFacts, Operation, SchedulingRequest, VmFacts};
use steward::scoring::{builtin_profiles, filter, filter_and_weigh, weigh, Options, ProfileSet};

const NOW: f64 = common::NOW;

fn any_f64() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        (0.0f64..1e7).prop_map(Some),
        Just(Some(0.0)),
        Just(Some(f64::MAX)),
    ]
}

fn any_host(i: usize) -> impl Strategy<Value = Host> {
    (
        // Nova keeps all nodes of a host in the host's one AZ.
        Just([Some("az1"), Some("az2"), Some("az3"), None][i % 7 % 4]),
        any_f64(),
        any_f64(),
        any_f64(),
        any_f64(),
        prop::collection::vec(
            prop::sample::select(vec!["v1", "v2", "v3", "v4", "inst"]),
            0..4,
        ),
        any::<bool>(),
    )
        .prop_map(move |(az, vt, vu, mt, mf, uuids, ironic)| Host {
            host: format!("h{}", i % 7),
            nodename: format!("n{i}"),
            az: az.map(Into::into),
            hypervisor_type: Some(if ironic { "ironic" } else { "QEMU" }.into()),
            vcpus_total: vt,
            vcpus_used: vu,
            cpu_allocation_ratio: Some(1.0),
            memory_mb_total: mt,
            memory_mb_free: mf,
            instance_uuids: uuids.into_iter().map(Into::into).collect(),
            ..Default::default()
        })
}

fn any_request() -> impl Strategy<Value = SchedulingRequest> {
    (
        prop::sample::select(Operation::ALL.to_vec()),
        prop::option::of(prop::sample::select(vec!["web", "db"])),
        prop::option::of(prop::sample::select(vec!["az1", "az2", "az9"])),
        prop::option::of(prop::sample::select(vec!["h1", "h2", "gone"])),
        (1usize..30).prop_flat_map(|n| (0..n).map(any_host).collect::<Vec<_>>()),
    )
        .prop_map(|(op, role, az, src, hosts)| {
            let mut r = common::request(op, role, hosts);
            r.instance.uuid = "inst".into();
            r.instance.requested_az = az.map(Into::into);
            r.instance.current_host = src.map(Into::into);
            r
        })
}

fn any_view() -> impl Strategy<Value = ClusterView> {
    (
        prop::collection::vec(
            (
                0usize..7,
                prop::option::of(prop::sample::select(vec!["az1", "az2"])),
                prop::option::of(0.0f64..=1.0),
                0.0f64..1000.0,
            ),
            0..7,
        ),
        prop::collection::vec(
            (
                prop::sample::select(vec!["v1", "v2", "v3", "inst"]),
                0usize..9,
                prop::option::of(prop::sample::select(vec!["web", "db"])),
            ),
            0..6,
        ),
    )
        .prop_map(|(hosts, vms)| {
            let mut v = ClusterView::default();
            for (i, az, steal, age) in hosts {
                v.hosts.insert(
                    format!("h{i}"),
                    HostFacts {
                        az: az.map(Into::into),
                        steal,
                        observed_at: NOW - age,
                        ..Default::default()
                    },
                );
            }
            for (u, h, role) in vms {
                v.vms.insert(
                    u.into(),
                    VmFacts {
                        host: Some(format!("h{h}")),
                        role: role.map(Into::into),
                        observed_at: NOW,
                        ..Default::default()
                    },
                );
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_profile_answers_every_request_with_one_finite_weight_per_host(
        req in any_request(), view in any_view()
    ) {
        let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
        for p in set.profiles.values() {
            let f = filter(&req, p, &view, &Options::default(), NOW);
            prop_assert_eq!(f.rejections.len(), req.hosts.len());
            for r in f.rejections.iter().flatten() {
                prop_assert!(!r.reason.is_empty());
            }
            let w = weigh(&req, p, &view, &Options::default(), NOW, true);
            prop_assert_eq!(w.weights.len(), req.hosts.len());
            let max: f64 = p.plugins.iter().map(|wp| wp.weight).sum();
            for x in &w.weights {
                prop_assert!(x.is_finite() && *x >= 0.0 && *x <= max + 1e-9, "weight {} outside 0..={}", x, max);
            }
        }
    }

    #[test]
    fn one_round_trip_answers_what_two_would(req in any_request(), view in any_view()) {
        let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
        for p in set.profiles.values() {
            let (f, w) = filter_and_weigh(&req, p, &view, &Options::default(), NOW);
            prop_assert_eq!(f.rejections, filter(&req, p, &view, &Options::default(), NOW).rejections);
            prop_assert_eq!(w, weigh(&req, p, &view, &Options::default(), NOW, false).weights);
        }
    }

    #[test]
    fn reversing_the_hosts_reverses_the_answer(req in any_request(), view in any_view()) {
        let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
        let p = &set.profiles["web"];
        let mut rev = req.clone();
        rev.hosts.reverse();
        let a = weigh(&req, p, &view, &Options::default(), NOW, false).weights;
        let mut b = weigh(&rev, p, &view, &Options::default(), NOW, false).weights;
        b.reverse();
        prop_assert_eq!(a, b);
        let fa: Vec<bool> = filter(&req, p, &view, &Options::default(), NOW).rejections.iter().map(Option::is_some).collect();
        let mut fb: Vec<bool> = filter(&rev, p, &view, &Options::default(), NOW).rejections.iter().map(Option::is_some).collect();
        fb.reverse();
        prop_assert_eq!(fa, fb);
    }

    #[test]
    fn an_az_bound_request_never_passes_a_host_outside_or_without_that_az(req in any_request(), view in any_view()) {
        let set = ProfileSet::build(&builtin_profiles(), "default").unwrap();
        let f = filter(&req, &set.profiles["default"], &view, &Options::default(), NOW);
        if let Some(az) = req.instance.requested_az.as_deref() {
            for (h, r) in req.hosts.iter().zip(&f.rejections) {
                if r.is_none() {
                    // The request's AZ for the host, else the one steward's view knows.
                    let effective = h.az.as_deref().or_else(|| view.host_az(&h.host));
                    prop_assert_eq!(effective, Some(az));
                }
            }
        }
    }
}
