//! `az_spread` checked against the Kubernetes definition of topology spread:
//! a host in domain d is rejected when matching(d) + 1 - global_min > max_skew, where
//! global_min is the smallest count over the eligible domains (0 below min_domains).

mod common;

use common::*;
use steward::model::{Host, Operation};
use steward::scoring::{filter, weigh, Options};

fn dns(max_skew: u32) -> steward::scoring::Profile {
    profile(&format!(
        "[plugins.az_spread]\nmax_skew = {max_skew}\nwhen_unsatisfiable = \"DoNotSchedule\"\n"
    ))
}

/// The names of the allowed hosts.
fn allowed(
    req: &steward::model::SchedulingRequest,
    p: &steward::scoring::Profile,
    view: &steward::model::ClusterView,
) -> Vec<String> {
    let out = filter(req, p, view, &Options::default(), NOW);
    req.hosts
        .iter()
        .zip(out.rejections)
        .filter(|(_, r)| r.is_none())
        .map(|(h, _)| h.host.clone())
        .collect()
}

/// Three AZs, one candidate each, with web VMs az1=2, az2=1, az3=1 (pushed roles).
fn three_azs(
    counts: [usize; 3],
) -> (
    steward::model::SchedulingRequest,
    steward::model::ClusterView,
) {
    let mut view = ViewBuilder::default();
    let mut hosts = Vec::new();
    for (i, n) in counts.iter().enumerate() {
        let az = format!("az{}", i + 1);
        let name = format!("h{}", i + 1);
        view = view.host(&name, Some(&az), Some(0.0), 0.0);
        let uuids: Vec<String> = (0..*n).map(|k| format!("web-{az}-{k}")).collect();
        for u in &uuids {
            view = view.vm(u, &name, "web");
        }
        let refs: Vec<&str> = uuids.iter().map(String::as_str).collect();
        hosts.push(with_vms(host(&name, Some(&az)), &refs));
    }
    (request(Operation::Boot, Some("web"), hosts), view.build())
}

#[test]
fn the_domain_above_the_minimum_by_max_skew_is_rejected() {
    let (req, view) = three_azs([2, 1, 1]);
    // az1: 2 + 1 - 1 = 2 > 1; az2 and az3: 1 + 1 - 1 = 1.
    assert_eq!(allowed(&req, &dns(1), &view), vec!["h2", "h3"]);
}

#[test]
fn a_larger_max_skew_admits_the_fuller_domain() {
    let (req, view) = three_azs([2, 1, 1]);
    assert_eq!(allowed(&req, &dns(2), &view), vec!["h1", "h2", "h3"]);
}

#[test]
fn balanced_domains_all_pass() {
    let (req, view) = three_azs([1, 1, 1]);
    assert_eq!(allowed(&req, &dns(1), &view), vec!["h1", "h2", "h3"]);
}

#[test]
fn the_reason_names_the_domain_the_counts_and_the_skew() {
    let (req, view) = three_azs([3, 1, 2]);
    let out = filter(&req, &dns(1), &view, &Options::default(), NOW);
    let r = out.rejections[0].as_ref().expect("az1 is rejected");
    assert_eq!(r.plugin, "az_spread");
    assert!(r.reason.contains("AZ az1 would hold 4"), "{}", r.reason);
    assert!(r.reason.contains("skew 3 > max_skew 1"), "{}", r.reason);
    assert!(out.rejections[2].is_some(), "az3: 2 + 1 - 1 = 2 > 1");
}

#[test]
fn a_domain_with_no_candidate_hosts_left_still_sets_the_minimum() {
    // az1's only host is full and not a candidate; it holds no web VM, so global_min = 0 and
    // both az2 and az3 (1 web VM each) would reach skew 2: nothing schedules, as in Kubernetes.
    let view = ViewBuilder::default()
        .host("full-az1", Some("az1"), Some(0.0), 0.0)
        .host("h2", Some("az2"), Some(0.0), 0.0)
        .host("h3", Some("az3"), Some(0.0), 0.0)
        .vm("w2", "h2", "web")
        .vm("w3", "h3", "web")
        .build();
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![
            with_vms(host("h2", Some("az2")), &["w2"]),
            with_vms(host("h3", Some("az3")), &["w3"]),
        ],
    );
    assert!(allowed(&req, &dns(1), &view).is_empty());
    assert_eq!(allowed(&req, &dns(2), &view), vec!["h2", "h3"]);
}

#[test]
fn vms_on_hosts_that_are_not_candidates_count_in_their_domain() {
    // az1's candidate is empty but another (full) az1 host runs two web VMs.
    let view = ViewBuilder::default()
        .host("h1", Some("az1"), Some(0.0), 0.0)
        .host("full-az1", Some("az1"), Some(0.0), 0.0)
        .host("h2", Some("az2"), Some(0.0), 0.0)
        .vm("a", "full-az1", "web")
        .vm("b", "full-az1", "web")
        .build();
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![host("h1", Some("az1")), host("h2", Some("az2"))],
    );
    // az1 = 2, az2 = 0: az1 gives 2 + 1 - 0 = 3 > 1.
    assert_eq!(allowed(&req, &dns(1), &view), vec!["h2"]);
}

#[test]
fn a_domain_no_host_belongs_to_does_not_exist() {
    // Only az2 and az3 are known anywhere: an AZ with no hosts cannot hold the minimum at 0.
    let (req, view) = three_azs([1, 1, 1]);
    let mut req = req;
    req.hosts.remove(0);
    let mut view = view;
    view.hosts.remove("h1");
    view.vms.retain(|_, v| v.host.as_deref() != Some("h1"));
    assert_eq!(allowed(&req, &dns(1), &view), vec!["h2", "h3"]);
}

#[test]
fn below_min_domains_the_global_minimum_is_zero() {
    let (req, view) = three_azs([1, 0, 0]);
    let p = profile(
        "[plugins.az_spread]\nmax_skew = 1\nwhen_unsatisfiable = \"DoNotSchedule\"\nmin_domains = 4\n",
    );
    // Three domains < 4: global_min = 0, so az1 (1 + 1 - 0 = 2) is rejected.
    assert_eq!(allowed(&req, &p, &view), vec!["h2", "h3"]);
    let (req, view) = three_azs([1, 1, 1]);
    assert!(
        allowed(&req, &p, &view).is_empty(),
        "every domain: 1 + 1 - 0 = 2 > 1"
    );
}

#[test]
fn a_host_without_an_az_fails_do_not_schedule() {
    let (mut req, view) = three_azs([0, 0, 0]);
    req.hosts.push(std::sync::Arc::new(host("nowhere", None)));
    let out = filter(&req, &dns(1), &view, &Options::default(), NOW);
    let r = out.rejections[3].as_ref().expect("no AZ is rejected");
    assert!(r.reason.contains("AZ is unknown"), "{}", r.reason);
}

#[test]
fn schedule_anyway_rejects_nothing_and_ranks_the_emptier_domain_first() {
    let (req, view) = three_azs([3, 0, 1]);
    let p = profile("[plugins.az_spread]\nmax_skew = 1\nwhen_unsatisfiable = \"ScheduleAnyway\"\n");
    assert_eq!(allowed(&req, &p, &view).len(), 3);
    let w = weigh(&req, &p, &view, &Options::default(), NOW, false).weights;
    assert!(
        w[1] > w[2] && w[2] > w[0],
        "az2 (0) > az3 (1) > az1 (3): {w:?}"
    );
}

#[test]
fn the_moving_instance_does_not_count_against_itself() {
    // inst-0 is a web VM on h1 (az1); with it, az1 = 2 vs 1; without it, 1 vs 1.
    let view = ViewBuilder::default()
        .host("h1", Some("az1"), Some(0.0), 0.0)
        .host("h2", Some("az2"), Some(0.0), 0.0)
        .vm("inst-0", "h1", "web")
        .vm("w1", "h1", "web")
        .vm("w2", "h2", "web")
        .build();
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![
            with_vms(host("h1", Some("az1")), &["inst-0", "w1"]),
            with_vms(host("h2", Some("az2")), &["w2"]),
        ],
    );
    assert_eq!(allowed(&req, &dns(1), &view), vec!["h1", "h2"]);
}

#[test]
fn server_group_members_count_without_any_telemetry() {
    let view = ViewBuilder::default().build();
    let req = with_group(
        request(
            Operation::Boot,
            None,
            vec![
                with_vms(host("h1", Some("az1")), &["m1", "m2"]),
                with_vms(host("h2", Some("az2")), &["m3", "other"]),
            ],
        ),
        "db-tier",
        &["m1", "m2", "m3"],
    );
    // az1 = 2, az2 = 1: az1 gives 2 + 1 - 1 = 2 > 1.
    assert_eq!(allowed(&req, &dns(1), &view), vec!["h2"]);
}

#[test]
fn a_requested_az_leaves_a_single_eligible_domain() {
    let (mut req, view) = three_azs([3, 0, 0]);
    req.instance.requested_az = Some("az1".into());
    // Only az1 is eligible: 3 + 1 - 3 = 1 <= 1.
    let out = filter(&req, &dns(1), &view, &Options::default(), NOW);
    assert!(out.rejections[0].is_none());
}

#[test]
fn without_a_role_nothing_is_spread() {
    let (mut req, view) = three_azs([5, 0, 0]);
    req.instance.hints.clear();
    assert_eq!(allowed(&req, &dns(1), &view).len(), 3);
}

/// The domain counts by their definition, over every VM of the view: each eligible AZ of a
/// known hypervisor, plus the candidates' own counts, plus every same-role VM (the moving
/// instance aside) on a hypervisor that is not a candidate, in that hypervisor's AZ.
fn domains_by_definition(
    req: &steward::model::SchedulingRequest,
    view: &steward::model::ClusterView,
    role_counts: &[u32],
    role: &str,
    bound: Option<&str>,
) -> std::collections::BTreeMap<String, u32> {
    let eligible = |az: &str| bound.is_none_or(|b| b == az);
    let mut counts = std::collections::BTreeMap::new();
    for h in view.hosts.values() {
        if let Some(az) = h.az.as_deref().filter(|a| eligible(a)) {
            counts.insert(az.to_string(), 0);
        }
    }
    for (i, h) in req.hosts.iter().enumerate() {
        let az = h.az.as_deref().or_else(|| view.host_az(&h.host));
        if let Some(az) = az.filter(|a| eligible(a)) {
            *counts.entry(az.to_string()).or_insert(0) += role_counts[i];
        }
    }
    for (uuid, vm) in view.vms.iter() {
        let Some(host) = vm.host.as_deref() else {
            continue;
        };
        if uuid == req.instance.uuid
            || vm.role.as_deref() != Some(role)
            || req.hosts.iter().any(|h| h.host == host)
        {
            continue;
        }
        if let Some(az) = view.host_az(host).filter(|a| eligible(a)) {
            *counts.entry(az.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]
    /// The domains a request sees (kept from the view's per-AZ index at the cost of the
    /// candidates) are the domains counted VM by VM over the whole cloud.
    #[test]
    fn domains_are_the_counts_over_every_vm(
        hosts in proptest::collection::vec(proptest::option::of(0..4usize), 1..12),
        vms in proptest::collection::vec((0..14usize, 0..3usize), 0..60),
        candidates in proptest::collection::vec(0..14usize, 1..6),
        own in proptest::option::of(0..60usize),
        bound in proptest::option::of(0..4usize),
    ) {
        let mut b = ViewBuilder::default();
        for (i, az) in hosts.iter().enumerate() {
            b = b.host(&format!("h{i}"), az.map(|a| format!("az{a}")).as_deref(), Some(0.0), 0.0);
        }
        let roles = ["web", "db", "cache"];
        for (k, (h, r)) in vms.iter().enumerate() {
            b = b.vm(&format!("vm-{k}"), &format!("h{h}"), roles[*r]);
        }
        let view = b.build();
        let mut cands: Vec<Host> = Vec::new();
        for c in candidates {
            let name = format!("h{c}");
            if cands.iter().all(|h| h.host != name) {
                cands.push(host(&name, None));
            }
        }
        let mut req = request(Operation::Boot, Some("web"), cands);
        if let Some(k) = own.filter(|k| *k < vms.len()) {
            req.instance.uuid = format!("vm-{k}");
        }
        req.instance.requested_az = bound.map(|a| format!("az{a}"));
        // The AZ the domains are narrowed to: the requested one, else (an instance the view
        // already places: a move) the AZ of its hypervisor.
        let bound = req.instance.requested_az.clone().or_else(|| {
            let host = view.vms.get(&req.instance.uuid)?.host.as_deref()?;
            view.host_az(host).map(str::to_string)
        });
        let opts = Options::default();
        let ctx = steward::scoring::Context::new(&req, &view, &opts, NOW);
        let want = domains_by_definition(&req, &view, ctx.role_counts(), "web", bound.as_deref());
        proptest::prop_assert_eq!(&ctx.domains().counts, &want);
    }
}
