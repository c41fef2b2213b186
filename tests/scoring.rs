//! The scoring core's plugins, profiles and role rules, one behaviour a test.

mod common;

use std::collections::BTreeMap;

use common::*;
use steward::model::{ClusterView, Operation};
use steward::scoring::{builtin_profiles, filter, weigh, Options, ProfileSet, ProfileSpec};

fn opts() -> Options {
    Options::default()
}

fn rejected_by(out: &steward::scoring::FilterOutcome, i: usize) -> Option<&str> {
    out.rejections[i].as_ref().map(|r| r.plugin)
}

// ---- same_az -------------------------------------------------------------------------------

#[test]
fn a_move_stays_in_the_az_the_source_host_is_known_in() {
    let view = ViewBuilder::default()
        .host("src", Some("az1"), None, 0.0)
        .build();
    let mut req = request(
        Operation::Move,
        None,
        vec![
            host("a", Some("az1")),
            host("b", Some("az2")),
            host("c", None),
        ],
    );
    req.ignore_hosts = vec!["src".into()];
    let p = profile("[plugins.same_az]\n");
    let out = filter(&req, &p, &view, &opts(), NOW);
    assert_eq!(rejected_by(&out, 0), None);
    assert_eq!(rejected_by(&out, 1), Some("same_az"));
    let unknown = out.rejections[2].as_ref().unwrap();
    assert!(
        unknown.reason.contains("AZ is unknown"),
        "{}",
        unknown.reason
    );
    assert!(out.degraded_reasons.is_empty());
}

#[test]
fn a_named_az_wins_over_the_current_one() {
    let view = ViewBuilder::default()
        .host("src", Some("az1"), None, 0.0)
        .build();
    let mut req = request(
        Operation::LiveMigrate,
        None,
        vec![host("a", Some("az1")), host("b", Some("az2"))],
    );
    req.instance.current_host = Some("src".into());
    req.instance.requested_az = Some("az2".into());
    let out = filter(&req, &profile("[plugins.same_az]\n"), &view, &opts(), NOW);
    assert_eq!(rejected_by(&out, 0), Some("same_az"));
    assert_eq!(rejected_by(&out, 1), None);
}

#[test]
fn the_current_az_sent_by_the_shim_needs_no_telemetry() {
    let mut req = request(
        Operation::Evacuate,
        None,
        vec![host("a", Some("az1")), host("b", Some("az2"))],
    );
    // A source host steward's view does not know: the shim's AZ is enough.
    req.ignore_hosts = vec!["mystery".into()];
    req.instance.current_az = Some("az2".into());
    let out = filter(
        &req,
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
    );
    assert_eq!(rejected_by(&out, 0), Some("same_az"));
    assert_eq!(rejected_by(&out, 1), None);
}

/// An unshelve (a shelved-offloaded instance runs nowhere) stays in the AZ it ran in, from
/// the shim's `current_az` or else steward's view; unknown, every host is refused. The
/// control: the same request as a boot goes anywhere.
#[test]
fn an_unshelve_stays_in_the_az_the_instance_ran_in() {
    let hosts = || vec![host("a", Some("az1")), host("b", Some("az2"))];
    let same_az = profile("[plugins.same_az]\n");
    let mut req = request(Operation::Unshelve, None, hosts());
    req.instance.current_az = Some("az2".into());
    let out = filter(&req, &same_az, &ClusterView::default(), &opts(), NOW);
    assert_eq!(
        (rejected_by(&out, 0), rejected_by(&out, 1)),
        (Some("same_az"), None)
    );
    // Without the shim's AZ, steward's view of the VM says az1.
    let mut req = request(Operation::Unshelve, None, hosts());
    let mut view = ClusterView::default();
    view.vms.insert(
        req.instance.uuid.clone(),
        steward::model::VmFacts {
            az: Some("az1".into()),
            ..Default::default()
        },
    );
    let out = filter(&req, &same_az, &view, &opts(), NOW);
    assert_eq!(
        (rejected_by(&out, 0), rejected_by(&out, 1)),
        (None, Some("same_az"))
    );
    // Known to nobody: refused everywhere, with the reason.
    let out = filter(&req, &same_az, &ClusterView::default(), &opts(), NOW);
    assert_eq!(
        (rejected_by(&out, 0), rejected_by(&out, 1)),
        (Some("same_az"), Some("same_az"))
    );
    assert!(
        out.degraded_reasons
            .iter()
            .any(|r| r.contains("shelved instance")),
        "{:?}",
        out.degraded_reasons
    );
    // The control: a boot goes anywhere.
    req.operation = Operation::Boot;
    let out = filter(&req, &same_az, &ClusterView::default(), &opts(), NOW);
    assert_eq!((rejected_by(&out, 0), rejected_by(&out, 1)), (None, None));
}

#[test]
fn a_resize_to_the_same_host_finds_the_source_az_among_the_candidates() {
    let mut req = request(
        Operation::Resize,
        None,
        vec![host("src", Some("az3")), host("b", Some("az2"))],
    );
    req.instance.current_host = Some("src".into());
    let out = filter(
        &req,
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
    );
    assert_eq!(rejected_by(&out, 0), None);
    assert_eq!(rejected_by(&out, 1), Some("same_az"));
}

fn mystery_move() -> steward::model::SchedulingRequest {
    let mut req = request(
        Operation::Move,
        None,
        vec![host("a", Some("az1")), host("b", Some("az2"))],
    );
    req.ignore_hosts = vec!["mystery".into()];
    req
}

#[test]
fn a_move_whose_az_cannot_be_told_is_refused_everywhere_naming_host_and_fix() {
    let out = filter(
        &mystery_move(),
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
    );
    for (i, name) in ["a", "b"].iter().enumerate() {
        let r = out.rejections[i].as_ref().expect("refused");
        assert_eq!(r.plugin, "same_az");
        assert!(r.reason.contains("mystery"), "{}", r.reason);
        assert!(r.reason.contains(&format!("host {name}")), "{}", r.reason);
        assert!(r.reason.contains("availability_zone"), "{}", r.reason);
        assert!(r.reason.contains("unknown_az"), "{}", r.reason);
    }
    // Degraded too: /metrics counts it (steward_scoring_degraded_total).
    assert_eq!(out.degraded_reasons.len(), 1, "{:?}", out.degraded_reasons);
    assert!(out.degraded_reasons[0].contains("fail_closed"));
}

#[test]
fn fail_open_for_an_unknown_az_passes_every_host_and_says_degraded() {
    let out = filter(
        &mystery_move(),
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &Options {
            unknown_az_fail_open: true,
            ..opts()
        },
        NOW,
    );
    assert!(out.rejections.iter().all(Option::is_none));
    assert_eq!(out.degraded_reasons.len(), 1);
    assert!(
        out.degraded_reasons[0].contains("mystery"),
        "{:?}",
        out.degraded_reasons
    );
}

#[test]
fn a_boot_with_no_az_named_may_go_anywhere() {
    let req = request(
        Operation::Boot,
        None,
        vec![host("a", Some("az1")), host("b", None)],
    );
    let out = filter(
        &req,
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
    );
    assert!(out.rejections.iter().all(Option::is_none));
}

#[test]
fn a_boot_naming_an_az_never_lands_on_a_host_of_unknown_az() {
    let mut req = request(
        Operation::Boot,
        None,
        vec![host("a", Some("az1")), host("b", None)],
    );
    req.instance.requested_az = Some("az1".into());
    let out = filter(
        &req,
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
    );
    assert_eq!(rejected_by(&out, 0), None);
    assert_eq!(rejected_by(&out, 1), Some("same_az"));
}

// ---- steal ---------------------------------------------------------------------------------

#[test]
fn lower_steal_weighs_more() {
    let view = ViewBuilder::default()
        .host("noisy", Some("az1"), Some(0.20), 10.0)
        .host("quiet", Some("az1"), Some(0.01), 10.0)
        .build();
    let req = request(
        Operation::Boot,
        None,
        vec![host("noisy", Some("az1")), host("quiet", Some("az1"))],
    );
    let out = weigh(
        &req,
        &profile("[plugins.steal]\n"),
        &view,
        &opts(),
        NOW,
        false,
    );
    assert!(out.weights[1] > out.weights[0], "{:?}", out.weights);
    assert!(out.degraded_reasons.is_empty());
}

#[test]
fn stale_steal_is_unknown_not_zero() {
    // The noisy host's sample is older than max_age: it must not look like a quiet host.
    let view = ViewBuilder::default()
        .host("stale", Some("az1"), Some(0.0), 301.0)
        .host("noisy", Some("az1"), Some(0.25), 1.0)
        .host("quiet", Some("az1"), Some(0.0), 1.0)
        .build();
    let req = request(
        Operation::Boot,
        None,
        vec![
            host("stale", Some("az1")),
            host("noisy", Some("az1")),
            host("quiet", Some("az1")),
        ],
    );
    let out = weigh_explained_by_steal(&req, &view);
    let [stale, noisy, quiet] = out.weights[..] else {
        panic!()
    };
    assert!(quiet > stale && stale > noisy, "{:?}", out.weights);
    assert_eq!(
        out.degraded_reasons,
        vec!["steal: no fresh steal data for 1 of 3 hosts"]
    );
    let parts = &out.explain.unwrap()[0];
    assert_eq!(parts[0].note.as_deref(), Some("no fresh steal data"));
}

#[test]
fn bare_metal_hosts_are_not_scored_on_steal_and_do_not_degrade() {
    let mut node = host("ironic-1", Some("az1"));
    node.hypervisor_type = Some("ironic".into());
    let req = request(Operation::Boot, None, vec![node]);
    let out = weigh(
        &req,
        &profile("[plugins.steal]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
        false,
    );
    assert!(out.degraded_reasons.is_empty());
}

#[test]
fn max_steal_filters_hosts_above_it() {
    let view = ViewBuilder::default()
        .host("noisy", Some("az1"), Some(0.30), 0.0)
        .host("ok", Some("az1"), Some(0.05), 0.0)
        .build();
    let req = request(
        Operation::Boot,
        None,
        vec![
            host("noisy", Some("az1")),
            host("ok", Some("az1")),
            host("unknown", Some("az1")),
        ],
    );
    let out = filter(
        &req,
        &profile("[plugins.steal]\nmax_steal = 0.2\n"),
        &view,
        &opts(),
        NOW,
    );
    let r = out.rejections[0].as_ref().unwrap();
    assert!(
        r.reason.contains("30.0%") && r.reason.contains("20.0%"),
        "{}",
        r.reason
    );
    assert!(out.rejections[1].is_none());
    assert!(
        out.rejections[2].is_none(),
        "unknown steal is not a reason to reject"
    );
}

// ---- role_spread ---------------------------------------------------------------------------

#[test]
fn a_host_at_the_role_cap_is_excluded_with_its_reason() {
    let view = ViewBuilder::default()
        .vm("w1", "full", "web")
        .vm("w2", "full", "web")
        .build();
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![
            with_vms(host("full", Some("az1")), &["w1", "w2"]),
            with_vms(host("free", Some("az1")), &["w1x"]),
        ],
    );
    let p = profile("[plugins.role_spread]\nmax_per_host = 2\nmode = \"hard\"\n");
    let out = filter(&req, &p, &view, &opts(), NOW);
    let r = out.rejections[0].as_ref().unwrap();
    assert_eq!(r.plugin, "role_spread");
    assert_eq!(
        r.reason,
        "host already runs 2 VM(s) of role web; the cap is 2 per host"
    );
    assert!(out.rejections[1].is_none());
}

#[test]
fn the_earlier_instances_of_a_multi_create_count_where_nova_put_them() {
    // Nova consumed "one" for two earlier instances of this request: neither is in Nova's
    // instance list nor in steward's view yet.
    let sib = |u: &str, h: &str| steward::model::Sibling {
        uuid: u.into(),
        host: h.into(),
    };
    let mut req = request(
        Operation::Boot,
        Some("web"),
        vec![host("one", Some("az1")), host("two", Some("az1"))],
    );
    req.instance.siblings = vec![sib("m1", "one"), sib("m2", "one"), sib("m3", "two")];
    let p = profile("[plugins.role_spread]\nmax_per_host = 2\nmode = \"hard\"\n");
    let out = filter(&req, &p, &ClusterView::default(), &opts(), NOW);
    assert_eq!(rejected_by(&out, 0), Some("role_spread"));
    assert_eq!(rejected_by(&out, 1), None);
    // A sibling the view already places on its host is not counted twice.
    let view = ViewBuilder::default().vm("m3", "two", "web").build();
    req.instance.siblings.push(sib("m4", "two"));
    let out = filter(&req, &p, &view, &opts(), NOW);
    assert_eq!(rejected_by(&out, 1), Some("role_spread"));
    req.instance.siblings.pop();
    let out = filter(&req, &p, &view, &opts(), NOW);
    assert_eq!(rejected_by(&out, 1), None);
}

#[test]
fn siblings_the_shim_could_not_place_mark_the_answer_degraded() {
    let mut req = request(Operation::Boot, Some("web"), vec![host("one", Some("az1"))]);
    req.instance.siblings_incomplete = true;
    let p = profile("[plugins.role_spread]\nmax_per_host = 2\nmode = \"hard\"\n");
    let out = filter(&req, &p, &ClusterView::default(), &opts(), NOW);
    assert!(
        out.degraded_reasons
            .iter()
            .any(|r| r.contains("multi-create")),
        "{:?}",
        out.degraded_reasons
    );
}

#[test]
fn a_soft_cap_only_ranks() {
    let view = ViewBuilder::default().vm("w1", "full", "web").build();
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![
            with_vms(host("full", Some("az1")), &["w1"]),
            host("free", Some("az1")),
        ],
    );
    let p = profile("[plugins.role_spread]\nmax_per_host = 1\nmode = \"soft\"\n");
    assert!(filter(&req, &p, &view, &opts(), NOW)
        .rejections
        .iter()
        .all(Option::is_none));
    let w = weigh(&req, &p, &view, &opts(), NOW, false).weights;
    assert!(w[1] > w[0], "{w:?}");
}

#[test]
fn a_soft_cap_keeps_ranking_hosts_past_the_cap() {
    // More replicas than hosts times the cap: every host is over it, and the one with fewer
    // replicas must still win, or the role piles up wherever the other plugins point.
    let mut b = ViewBuilder::default();
    let mut four = Vec::new();
    let mut nine = Vec::new();
    for i in 0..9 {
        let uuid = format!("n{i}");
        b = b.vm(&uuid, "nine", "web");
        nine.push(uuid);
        if i < 4 {
            let uuid = format!("f{i}");
            b = b.vm(&uuid, "four", "web");
            four.push(uuid);
        }
    }
    let view = b.build();
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![
            with_vms(host("nine", Some("az1")), &refs(&nine)),
            with_vms(host("four", Some("az1")), &refs(&four)),
        ],
    );
    let p = profile("[plugins.role_spread]\nmax_per_host = 3\nmode = \"soft\"\n");
    let w = weigh(&req, &p, &view, &opts(), NOW, false).weights;
    assert!(w[1] > w[0], "{w:?}");
}

#[test]
fn other_roles_do_not_count() {
    let view = ViewBuilder::default()
        .vm("d1", "h", "db")
        .vm("d2", "h", "db")
        .build();
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![with_vms(host("h", Some("az1")), &["d1", "d2"])],
    );
    let p = profile("[plugins.role_spread]\nmax_per_host = 1\n");
    assert!(filter(&req, &p, &view, &opts(), NOW).rejections[0].is_none());
}

// ---- capacity ------------------------------------------------------------------------------

#[test]
fn spread_prefers_the_emptier_host_and_pack_the_fuller() {
    let mut full = host("full", Some("az1"));
    full.vcpus_used = Some(200.0);
    full.memory_mb_free = Some(20_000.0);
    let empty = host("empty", Some("az1"));
    let req = request(Operation::Boot, None, vec![full, empty]);
    let v = ClusterView::default();
    let spread = weigh(
        &req,
        &profile("[plugins.capacity_spread]\n"),
        &v,
        &opts(),
        NOW,
        false,
    )
    .weights;
    let pack = weigh(
        &req,
        &profile("[plugins.capacity_pack]\n"),
        &v,
        &opts(),
        NOW,
        false,
    )
    .weights;
    assert!(spread[1] > spread[0], "{spread:?}");
    assert!(pack[0] > pack[1], "{pack:?}");
}

#[test]
fn a_host_without_capacity_figures_is_neutral() {
    let mut ironic = host("node", Some("az1"));
    ironic.vcpus_total = Some(0.0);
    ironic.memory_mb_total = Some(0.0);
    let req = request(Operation::Boot, None, vec![ironic]);
    let out = weigh(
        &req,
        &profile("[plugins.capacity_spread]\nweight = 2.0\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
        false,
    );
    assert_eq!(out.weights, vec![1.0], "neutral 0.5 times weight 2");
}

// ---- roles and profiles --------------------------------------------------------------------

#[test]
fn the_role_comes_from_the_hint_then_the_group_then_metadata_then_what_steward_knows() {
    use steward::scoring::Context;
    let view = ViewBuilder::default().vm("inst-0", "h", "known").build();
    let o = opts();
    let mut req = with_group(
        request(Operation::Boot, Some("hinted"), vec![host("h", None)]),
        "grouped",
        &[],
    );
    req.instance
        .hints
        .insert("steward_role".into(), "hinted".into());
    req.instance.metadata.insert("role".into(), "meta".into());
    assert_eq!(
        Context::new(&req, &view, &o, NOW).role.as_deref(),
        Some("hinted")
    );
    req.instance.hints.clear();
    assert_eq!(
        Context::new(&req, &view, &o, NOW).role.as_deref(),
        Some("grouped")
    );
    req.instance.server_group = None;
    assert_eq!(
        Context::new(&req, &view, &o, NOW).role.as_deref(),
        Some("meta")
    );
    req.instance.metadata.clear();
    assert_eq!(
        Context::new(&req, &view, &o, NOW).role.as_deref(),
        Some("known")
    );
    let custom = Options {
        role_metadata_key: "service".into(),
        ..opts()
    };
    req.instance.metadata.insert("service".into(), "svc".into());
    assert_eq!(
        Context::new(&req, &view, &custom, NOW).role.as_deref(),
        Some("svc")
    );
}

fn builtin_set() -> ProfileSet {
    ProfileSet::build(&builtin_profiles(), "default").expect("built-ins build")
}

#[test]
fn the_profile_comes_from_the_flavor_then_the_hint_then_the_default() {
    let set = builtin_set();
    let mut specs = BTreeMap::new();
    let mut hints = BTreeMap::new();
    assert_eq!(set.select(&specs, &hints).unwrap().name, "default");
    hints.insert("steward_profile".to_string(), "batch".to_string());
    assert_eq!(set.select(&specs, &hints).unwrap().name, "batch");
    specs.insert("steward:profile".to_string(), "web".to_string());
    assert_eq!(set.select(&specs, &hints).unwrap().name, "web");
    specs.insert("steward:profile".to_string(), "gold".to_string());
    let err = set.select(&specs, &hints).unwrap_err();
    assert!(
        err.contains("\"gold\"") && err.contains("batch, default, web"),
        "{err}"
    );
}

#[test]
fn the_built_in_profiles_are_default_web_and_batch() {
    let set = builtin_set();
    assert_eq!(
        set.profiles.keys().collect::<Vec<_>>(),
        ["batch", "default", "web"]
    );
    let web: Vec<&str> = set.profiles["web"]
        .plugins
        .iter()
        .map(|p| p.plugin.name())
        .collect();
    assert_eq!(
        web,
        [
            "same_az",
            "role_spread",
            "az_spread",
            "steal",
            "capacity_spread"
        ]
    );
}

#[test]
fn profile_errors_name_the_key() {
    let spec: ProfileSpec = toml::from_str(
        "[plugins.stael]\n[plugins.steal]\nweight = -1\n[plugins.az_spread]\nmax_skw = 1\n[plugins.role_spread]\nmax_per_host = 0\n",
    )
    .unwrap();
    let errs = steward::scoring::Profile::build("p", &spec).unwrap_err();
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 4, "{text:#?}");
    assert!(
        text[0].starts_with("profiles.p.plugins.az_spread: unknown field `max_skw`"),
        "{text:#?}"
    );
    assert!(
        text[1].starts_with("profiles.p.plugins.role_spread: max_per_host must be at least 1"),
        "{text:#?}"
    );
    assert!(
        text[2].starts_with("profiles.p.plugins.stael: unknown plugin"),
        "{text:#?}"
    );
    assert!(
        text[3].starts_with("profiles.p.plugins.steal.weight: must be a finite number >= 0"),
        "{text:#?}"
    );
}

#[test]
fn a_plugin_can_be_switched_off() {
    let spec: ProfileSpec =
        toml::from_str("[plugins.steal]\n[plugins.same_az]\nenabled = false\n").unwrap();
    let p = steward::scoring::Profile::build("p", &spec).unwrap();
    assert_eq!(p.plugins.len(), 1);
    assert_eq!(p.plugins[0].plugin.name(), "steal");
}

#[test]
fn filters_run_in_a_fixed_order_so_the_first_reason_is_the_az() {
    let view = ViewBuilder::default()
        .host("src", Some("az1"), None, 0.0)
        .vm("w", "b", "web")
        .build();
    let mut req = request(
        Operation::Move,
        Some("web"),
        vec![with_vms(host("b", Some("az2")), &["w"])],
    );
    req.ignore_hosts = vec!["src".into()];
    let p = profile("[plugins.role_spread]\nmax_per_host = 1\n[plugins.same_az]\n");
    assert_eq!(
        rejected_by(&filter(&req, &p, &view, &opts(), NOW), 0),
        Some("same_az")
    );
}

// ---- steal prediction and co-tenant overlap -------------------------------------------------

/// Monday 2026-11-23 19:00 UTC.
const MON_19H: f64 = 1_795_392_000.0 + 19.0 * 3600.0;

fn weekly(peaks: &[(usize, f64)], base: f64) -> steward::model::WeeklyProfile {
    let mut values = vec![base; 168];
    for day in 0..7 {
        for (hour, v) in peaks {
            values[day * 24 + hour] = *v;
        }
    }
    steward::model::WeeklyProfile {
        values,
        weeks: 4,
        computed_at: MON_19H,
    }
}

fn view_at_19h(profiles: bool) -> ClusterView {
    let mut v = ClusterView::default();
    for (name, steal) in [("a", 0.02), ("b", 0.05)] {
        v.hosts.insert(
            name.into(),
            steward::model::HostFacts {
                az: Some("az1".into()),
                steal: Some(steal),
                observed_at: MON_19H - 30.0,
                ..Default::default()
            },
        );
    }
    if profiles {
        let mut w = steward::model::WeeklyProfiles::default();
        w.host_steal.insert("a".into(), weekly(&[(20, 0.30)], 0.02));
        w.host_steal.insert("b".into(), weekly(&[], 0.05));
        v.weekly = std::sync::Arc::new(w);
    }
    v
}

#[test]
fn the_hour_before_a_daily_peak_ranks_the_peaking_host_below_a_steady_one() {
    let req = request(
        Operation::Boot,
        Some("web"),
        vec![host("a", Some("az1")), host("b", Some("az1"))],
    );
    let p = profile("[plugins.steal]\n");
    // Without history, A (2% now) beats B (5% now)...
    let w = weigh(&req, &p, &view_at_19h(false), &opts(), MON_19H, false).weights;
    assert!(w[0] > w[1], "{w:?}");
    // ...with four weeks showing A's 20:00 peak, B wins at 19:00.
    let out = weigh(&req, &p, &view_at_19h(true), &opts(), MON_19H, true);
    assert!(out.weights[1] > out.weights[0], "{:?}", out.weights);
    assert!(out.degraded_reasons.is_empty());
    let why = out.explain.unwrap()[0][0].note.clone().unwrap();
    assert_eq!(
        why,
        "steal now 2.0%; predicted up to 30.0% in the next 4 h (at Mon 20:00 UTC)"
    );
}

#[test]
fn a_peak_beyond_the_horizon_does_not_count() {
    let req = request(
        Operation::Boot,
        None,
        vec![host("a", Some("az1")), host("b", Some("az1"))],
    );
    let p = profile("[plugins.steal]\nhorizon_hours = 0\n");
    let w = weigh(&req, &p, &view_at_19h(true), &opts(), MON_19H, false).weights;
    assert!(w[0] > w[1], "{w:?}");
}

#[test]
fn without_a_fresh_sample_the_profile_alone_is_used_and_the_answer_is_degraded() {
    let req = request(
        Operation::Boot,
        None,
        vec![host("a", Some("az1")), host("b", Some("az1"))],
    );
    let stale = MON_19H + 3600.0; // 20:00: every sample is an hour old
    let out = weigh(
        &req,
        &profile("[plugins.steal]\n"),
        &view_at_19h(true),
        &opts(),
        stale,
        false,
    );
    assert!(out.weights[1] > out.weights[0], "{:?}", out.weights);
    assert_eq!(out.degraded_reasons.len(), 1, "{:?}", out.degraded_reasons);
    assert!(out.degraded_reasons[0].contains("weekly profile"));
}

/// Ten web VMs on `webby`, ten batch VMs on `batchy`: web peaks at 3 cores per VM at 9, 12 and
/// 20 h, batch at `batch_peak` cores at 2 h. Both hosts show `steal` now.
fn web_and_batch(batch_peak: f64, webby_steal: f64, batchy_steal: f64) -> ClusterView {
    let mut w = steward::model::WeeklyProfiles::default();
    w.role_demand
        .insert("web".into(), weekly(&[(9, 3.0), (12, 3.0), (20, 3.0)], 0.3));
    w.role_demand
        .insert("batch".into(), weekly(&[(2, batch_peak)], 0.2));
    let mut b = ViewBuilder::default()
        .host("webby", Some("az1"), Some(webby_steal), 0.0)
        .host("batchy", Some("az1"), Some(batchy_steal), 0.0);
    for i in 0..10 {
        b = b
            .vm(&format!("w{i}"), "webby", "web")
            .vm(&format!("b{i}"), "batchy", "batch");
    }
    let mut view = b.build();
    view.weekly = std::sync::Arc::new(w);
    view
}

fn web_boot() -> steward::model::SchedulingRequest {
    request(
        Operation::Boot,
        Some("web"),
        vec![host("webby", Some("az1")), host("batchy", Some("az1"))],
    )
}

/// A weigh with the built-in steal plugin alone, explained.
fn weigh_explained_by_steal(
    req: &steward::model::SchedulingRequest,
    view: &ClusterView,
) -> steward::scoring::WeighOutcome {
    weigh(req, &profile("[plugins.steal]\n"), view, &opts(), NOW, true)
}

/// Each host's note from its first plugin (the steal plugin, in these profiles).
fn first_plugin_notes(out: &steward::scoring::WeighOutcome) -> Vec<String> {
    out.explain
        .as_ref()
        .expect("weighed with explain")
        .iter()
        .map(|p| {
            p[0].note
                .clone()
                .expect("the steal plugin notes every host")
        })
        .collect()
}

#[test]
fn a_web_vm_prefers_the_host_whose_tenants_peak_at_other_hours() {
    let view = web_and_batch(2.5, 0.02, 0.02);
    let out = weigh_explained_by_steal(&web_boot(), &view);
    assert!(out.weights[1] > out.weights[0], "{:?}", out.weights);
    let notes = first_plugin_notes(&out);
    // webby: 10 x 3.0 = 30 cores at 9, 12 and 20 h, 33 with one more web VM: 47% and 52% of 64
    assert!(
        notes[0].contains("predicted peak 47% of its CPUs in the next 24 h, 52% with this VM"),
        "{notes:?}"
    );
    // batchy: 10 x 2.5 = 25 cores at 2 h, when web is at 0.3: 39% and 40%
    assert!(
        notes[1].contains("predicted peak 39% of its CPUs in the next 24 h, 40% with this VM"),
        "{notes:?}"
    );
}

#[test]
fn peak_overlap_picks_the_host_steal_now_would_not() {
    // Now webby is quiet (1% steal) and batchy shows 4%: steal now alone sends the web VM to
    // webby, where it would peak with ten other web VMs. The day ahead says batchy.
    let view = web_and_batch(2.5, 0.01, 0.04);
    let now_only = profile("[plugins.steal]\noverlap_weight = 0.0\n");
    let w = weigh(&web_boot(), &now_only, &view, &opts(), NOW, false).weights;
    assert!(w[0] > w[1], "steal now alone: {w:?}");
    let with_peak = profile("[plugins.steal]\noverlap_weight = 0.8\n");
    let w = weigh(&web_boot(), &with_peak, &view, &opts(), NOW, false).weights;
    assert!(w[1] > w[0], "with peak overlap: {w:?}");
}

#[test]
fn a_vm_without_a_learned_role_counts_at_the_roles_mean_peak() {
    // No role: the incoming VM is unknown_load_per_vcpu x its vCPUs at every hour, and a tenant
    // without a role counts at the mean of the learned roles' peaks (web 3.0, batch 2.5).
    let mut view = web_and_batch(2.5, 0.02, 0.02);
    let plain = ViewBuilder::default()
        .host("plain", Some("az1"), Some(0.02), 0.0)
        .build();
    view.hosts
        .insert("plain".into(), plain.hosts["plain"].clone());
    for i in 0..4 {
        view.vms.insert(
            format!("x{i}"),
            steward::model::VmFacts {
                host: Some("plain".into()),
                observed_at: NOW,
                ..Default::default()
            },
        );
    }
    let mut req = request(
        Operation::Boot,
        None,
        vec![host("webby", Some("az1")), host("plain", Some("az1"))],
    );
    req.instance.flavor.vcpus = Some(4.0);
    let out = weigh_explained_by_steal(&req, &view);
    let notes = first_plugin_notes(&out);
    // plain: 4 x 2.75 = 11 cores (17%), plus 4 x 0.5 = 2 cores: 20%
    assert!(
        notes[1].contains("predicted peak 17% of its CPUs in the next 24 h, 20% with this VM"),
        "{notes:?}"
    );
    assert!(out.weights[1] > out.weights[0], "{:?}", out.weights);
}

#[test]
fn peak_parameters_are_checked() {
    for (toml_text, key) in [
        ("peak_horizon_hours = 0", "peak_horizon_hours"),
        ("peak_horizon_hours = 200", "peak_horizon_hours"),
        ("peak_saturation = 0.0", "peak_saturation"),
        ("unknown_load_per_vcpu = 1.5", "unknown_load_per_vcpu"),
    ] {
        let spec: ProfileSpec = toml::from_str(&format!("[plugins.steal]\n{toml_text}\n")).unwrap();
        let errs = steward::scoring::Profile::build("test", &spec).unwrap_err();
        assert!(errs[0].message.contains(key), "{errs:?}");
    }
}

#[test]
fn a_boot_of_an_instance_that_already_runs_somewhere_is_a_move() {
    // The shim saw no ignore_hosts (a resize allowed onto the same host) and said "boot"; the
    // view knows inst-0 runs on src in az1, so it stays in az1.
    let view = ViewBuilder::default()
        .host("src", Some("az1"), None, 0.0)
        .vm("inst-0", "src", "web")
        .build();
    let req = request(
        Operation::Boot,
        None,
        vec![host("a", Some("az1")), host("b", Some("az2"))],
    );
    let out = filter(&req, &profile("[plugins.same_az]\n"), &view, &opts(), NOW);
    assert!(out.rejections[0].is_none());
    assert_eq!(rejected_by(&out, 1), Some("same_az"));
    // A new instance boots anywhere.
    let out = filter(
        &req,
        &profile("[plugins.same_az]\n"),
        &ClusterView::default(),
        &opts(),
        NOW,
    );
    assert!(out.rejections.iter().all(Option::is_none));
}

#[test]
fn a_candidate_the_shim_sends_without_az_takes_the_az_the_view_knows() {
    // Hosts in no AZ aggregate are in Nova's default AZ: the shim sees no aggregate and sends
    // null, the Nova refresh put "nova" in the view. A VM there must be able to move.
    let view = ViewBuilder::default()
        .host("src", Some("nova"), None, 0.0)
        .host("peer", Some("nova"), None, 0.0)
        .build();
    let mut req = request(
        Operation::Move,
        None,
        vec![
            host("peer", None),
            host("other", Some("az1")),
            host("ghost", None),
        ],
    );
    req.ignore_hosts = vec!["src".into()];
    let out = filter(&req, &profile("[plugins.same_az]\n"), &view, &opts(), NOW);
    assert!(out.rejections[0].is_none(), "{:?}", out.rejections[0]);
    assert_eq!(rejected_by(&out, 1), Some("same_az"));
    let ghost = out.rejections[2]
        .as_ref()
        .expect("unknown to the request and the view");
    assert!(ghost.reason.contains("AZ is unknown"), "{}", ghost.reason);
}

#[test]
fn a_move_scales_the_role_prediction_by_what_the_tenants_use_now() {
    // Ten web VMs on each host, so the role-level prediction is the same for both; "busy"
    // uses twice what its tenants' role predicts for this hour and "calm" half of it.
    let mut view = web_and_batch(2.5, 0.02, 0.02);
    view.vms.retain(|_, v| v.role.as_deref() == Some("web"));
    let now = steward::model::hour_of_week(NOW);
    let predicted_now = 10.0 * view.weekly.role_demand["web"].at(now).unwrap();
    for (name, scale) in [("busy", 2.0), ("calm", 0.5)] {
        view.hosts.insert(
            name.into(),
            steward::model::HostFacts {
                az: Some("az1".into()),
                steal: Some(0.02),
                cpu_use: Some(predicted_now * scale / 64.0),
                vcpus: Some(64.0),
                observed_at: NOW,
                ..Default::default()
            },
        );
        for i in 0..10 {
            view.vms.insert(
                format!("{name}{i}"),
                steward::model::VmFacts {
                    host: Some(name.into()),
                    role: Some("web".into()),
                    observed_at: NOW,
                    ..Default::default()
                },
            );
        }
    }
    let hosts = || vec![host("busy", Some("az1")), host("calm", Some("az1"))];
    let boot = weigh_explained_by_steal(&request(Operation::Boot, Some("web"), hosts()), &view);
    assert_eq!(
        boot.weights[0], boot.weights[1],
        "a boot keeps the role's curve"
    );
    let out = weigh_explained_by_steal(
        &request(Operation::LiveMigrate, Some("web"), hosts()),
        &view,
    );
    assert!(out.weights[1] > out.weights[0], "{:?}", out.weights);
    let notes = first_plugin_notes(&out);
    // calm: 10 x 3.0 x 0.5 = 15 cores at the web peak (23% of 64), 18 with this VM (28%)
    assert!(
        notes[1].contains("predicted peak 23% of its CPUs in the next 24 h, 28% with this VM"),
        "{notes:?}"
    );
}
