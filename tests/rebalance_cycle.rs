//! The planner's cycle on both backends (SQLite and MariaDB, each test in its own database):
//! telemetry pushed into the store cycle after cycle makes a busy, stolen VM a candidate only
//! once the window holds `min_samples`; then one plan moves it to the quiet host of its AZ,
//! journaled as the mode says; the detector's state survives a fresh process (a new Store).
//! Then the adapter, `Planner::run`, over a fake Nova and Placement (wiremock, answers in the
//! recorded formats): room on a target is Placement's `(total - reserved) * ratio - used`, not
//! what Nova's hypervisor listing shows, and a Placement outage skips the cycle.

mod common;
mod common_rebalance;
mod openstack_support;
mod rebalance_support;

use std::collections::HashMap;
use std::sync::Arc;

use common::scratch::Scratch;
use steward::metrics::Metrics;
use steward::model::{Host, HostFacts, VmFacts};
use steward::rebalance::cycle::{self, CycleInput, CycleOutcome, AUTO_APPROVER};
use steward::rebalance::plan::VmSize;
use steward::rebalance::{Limit, Mode, RebalanceSettings};
use steward::scoring::Options;
use steward::store::journal::{ActionState, JournalError, PlanState};
use steward::store::{Backend, Store};
use steward::telemetry::{HostSample, VmSample};

use common_rebalance::{profile, settings, web_size, NOW};

const NOISY: &str = "3f1e9a52-0c1d-4b7e-9a44-5d2c8e6f7a01";
const CALM: &str = "3f1e9a52-0c1d-4b7e-9a44-5d2c8e6f7a02";

/// A Store on the scratch database, upgraded: each call is a fresh process's view of it.
async fn open(scratch: &Scratch) -> Store {
    let store = Store::connect(&scratch.url, 4).await.unwrap();
    store.upgrade().await.unwrap();
    store
}

/// Run one async test body on both backends, with the scratch database.
fn on_both<F, Fut>(test: F)
where
    F: Fn(Backend, Scratch) -> Fut,
    Fut: std::future::Future<Output = Scratch>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for backend in [Backend::Sqlite, Backend::MySql] {
            let scratch = Scratch::new(backend).await;
            test(backend, scratch).await.cleanup().await;
        }
    });
}

/// Compute nodes with room, as Nova's hypervisors report them.
fn hosts() -> Vec<Host> {
    ["cmp-noisy", "cmp-quiet", "cmp-far"]
        .into_iter()
        .map(|name| Host {
            host: name.into(),
            nodename: name.into(),
            az: Some(if name == "cmp-far" { "az2" } else { "az1" }.into()),
            hypervisor_type: Some("QEMU".into()),
            vcpus_total: Some(32.0),
            vcpus_used: Some(16.0),
            cpu_allocation_ratio: Some(4.0),
            memory_mb_total: Some(262_144.0),
            memory_mb_free: Some(131_072.0),
            ram_allocation_ratio: Some(1.0),
            disk_gb_total: Some(4000.0),
            disk_gb_free: Some(2000.0),
            ..Default::default()
        })
        .collect()
}

fn sizes() -> HashMap<String, VmSize> {
    [
        (NOISY.to_string(), web_size()),
        (CALM.to_string(), web_size()),
    ]
    .into()
}

/// Push one round of telemetry at `t`, as POST /v1/telemetry stores it: the noisy VM is busy
/// (load 0.9 per vCPU) and stolen (30 %) on cmp-noisy; cmp-quiet in the same AZ has no
/// steal; cmp-far, quieter still, is in another AZ.
async fn push(store: &Store, t: f64) {
    let host = |name: &str, az: &str, steal: f64, cpu_use: f64| HostSample {
        host: name.into(),
        facts: HostFacts {
            az: Some(az.into()),
            steal: Some(steal),
            load5: Some(cpu_use * 32.0),
            cpu_use: Some(cpu_use),
            vcpus: Some(32.0),
            observed_at: t,
            ..Default::default()
        },
    };
    let vm = |uuid: &str, load5: f64, steal: f64| VmSample {
        uuid: uuid.into(),
        facts: VmFacts {
            host: Some("cmp-noisy".into()),
            role: Some("web".into()),
            steal: Some(steal),
            load5: Some(load5),
            vcpus: Some(4.0),
            observed_at: t,
            ..Default::default()
        },
    };
    store
        .save_telemetry(
            &[
                host("cmp-noisy", "az1", 0.30, 0.95),
                host("cmp-quiet", "az1", 0.0, 0.3),
                host("cmp-far", "az2", 0.0, 0.0),
            ],
            // The calm VM shares the steal but is idle: reported, never moved.
            &[vm(NOISY, 3.6, 0.30), vm(CALM, 0.4, 0.30)],
            t,
        )
        .await
        .unwrap();
}

fn cfg(mode: Mode) -> RebalanceSettings {
    RebalanceSettings {
        mode,
        min_samples: 3,
        window_seconds: 900.0,
        interval_seconds: 300.0,
        ..settings()
    }
}

/// Cycle `k` (0-based, 300 s apart): push, load the view as serve/run-once do, plan.
async fn run_cycle(store: &Store, cfg: &RebalanceSettings, k: u32, m: &Metrics) -> CycleOutcome {
    let now = NOW + f64::from(k) * cfg.interval_seconds;
    push(store, now).await;
    let view = store.load_view().await.unwrap();
    let (hosts, sizes) = (hosts(), sizes());
    let names: HashMap<String, String> = [(NOISY.to_string(), "web-noisy".to_string())].into();
    let profile = profile(&cfg.profile);
    let opts = Options::default();
    cycle::plan_cycle(
        store,
        &CycleInput {
            view: &view,
            hosts: &hosts,
            closed: &Default::default(),
            sizes: &sizes,
            names: &names,
            profile: &profile,
            opts: &opts,
            cfg,
            now,
            fence: None,
        },
        Some(m),
    )
    .await
    .unwrap()
}

/// Two cycles in one process, the third in a fresh one on the same database: the history
/// carries over and the third cycle plans the move. Returns the third cycle's outcome and
/// the fresh process's store.
async fn sustained(scratch: &Scratch, mode: Mode) -> (CycleOutcome, Store) {
    let cfg = cfg(mode);
    let m = Metrics::new();
    let first = open(scratch).await;
    for k in 0..2 {
        let out = run_cycle(&first, &cfg, k, &m).await;
        assert_eq!(
            out.candidates, 0,
            "cycle {k}: the window is not sustained yet"
        );
        assert!(out.plan.actions.is_empty(), "cycle {k}: {:?}", out.plan);
        assert!(out.journaled.is_none(), "cycle {k}: nothing to journal");
    }
    assert!(first.plans(10).await.unwrap().is_empty());
    let kept = cycle::load_state(&first).await.unwrap();
    assert_eq!(kept.history.vms[NOISY].samples.len(), 2, "{kept:?}");
    first.close().await;

    let fresh = open(scratch).await;
    let out = run_cycle(&fresh, &cfg, 2, &m).await;
    assert_eq!(out.candidates, 1, "{:?}", out.plan);
    assert_eq!(m.rebalance_candidates.get(), 1);
    assert_eq!(out.plan.actions.len(), 1, "{:?}", out.plan);
    let a = &out.plan.actions[0];
    assert_eq!(
        (
            a.vm.as_str(),
            a.source_host.as_str(),
            a.target_host.as_str()
        ),
        (NOISY, "cmp-noisy", "cmp-quiet")
    );
    assert!(
        out.plan.steal_only.iter().any(|s| s.vm == CALM),
        "the idle VM's steal is reported: {:?}",
        out.plan.steal_only
    );
    (out, fresh)
}

#[test]
fn a_fresh_history_needs_min_samples_cycles_before_any_plan() {
    on_both(|_, scratch| async move {
        // Without the stored history every process sees one sample: never a candidate.
        let cfg = cfg(Mode::Auto);
        let m = Metrics::new();
        for k in 0..4 {
            let store = open(&scratch).await;
            cycle::reset_state(&store).await.unwrap();
            let out = run_cycle(&store, &cfg, k, &m).await;
            assert_eq!(out.candidates, 0, "cycle {k}");
            store.close().await;
        }
        scratch
    });
}

#[test]
fn auto_mode_journals_the_plan_approved() {
    on_both(|_, scratch| async move {
        let (out, store) = sustained(&scratch, Mode::Auto).await;
        let row = out.journaled.expect("journaled");
        let stored = store.plan(&row.id).await.unwrap().unwrap();
        assert_eq!(stored.state, PlanState::Approved);
        assert_eq!(stored.mode, "auto");
        assert_eq!(stored.decided_by.as_deref(), Some(AUTO_APPROVER));
        assert_eq!(stored.actions.len(), 1);
        assert_eq!(stored.actions[0].state, ActionState::Approved);
        assert_eq!(stored.actions[0].target, "cmp-quiet");
        assert_eq!(stored.actions[0].az, "az1");
        assert_eq!(stored.actions[0].vm_name, "web-noisy");
        // The move's bytes are taken from az1's bucket and kept for the next cycle.
        let kept = cycle::load_state(&store).await.unwrap();
        assert!(kept.budget.per_az.contains_key("az1"), "{kept:?}");
        // The next cycle does not plan the VM again while its move is in flight.
        let again = run_cycle(&store, &cfg(Mode::Auto), 3, &Metrics::new()).await;
        assert!(again.plan.actions.is_empty(), "{:?}", again.plan);
        assert!(again
            .plan
            .skipped
            .iter()
            .all(|s| s.limit == Limit::InFlight));
        assert!(again.journaled.is_none(), "an in-flight skip is not news");
        assert_eq!(store.plans(10).await.unwrap().len(), 1);
        store.close().await;
        scratch
    });
}

#[test]
fn approve_mode_waits_for_an_admin() {
    on_both(|_, scratch| async move {
        let (out, store) = sustained(&scratch, Mode::Approve).await;
        let row = out.journaled.expect("journaled");
        assert_eq!(row.state, PlanState::Proposed);
        assert_eq!(row.mode, "approve");
        assert_eq!(row.actions[0].state, ActionState::Planned);
        // Awaiting approval, the VM is not proposed again every cycle.
        let again = run_cycle(&store, &cfg(Mode::Approve), 3, &Metrics::new()).await;
        assert!(again.plan.actions.is_empty(), "{:?}", again.plan);
        assert!(again.journaled.is_none());
        let decided = store
            .decide_plan(&row.id, true, "admin", NOW + 1000.0)
            .await
            .unwrap();
        assert_eq!(decided.state, PlanState::Approved);
        assert_eq!(decided.actions[0].state, ActionState::Approved);
        store.close().await;
        scratch
    });
}

#[test]
fn a_dry_run_plan_is_journaled_and_can_never_be_approved() {
    on_both(|_, scratch| async move {
        let (out, store) = sustained(&scratch, Mode::DryRun).await;
        let row = out.journaled.expect("journaled");
        assert_eq!(row.state, PlanState::Proposed);
        assert_eq!(row.mode, "dry-run");
        assert_eq!(row.actions[0].state, ActionState::Planned);
        let refused = store
            .decide_plan(&row.id, true, "admin", NOW + 1000.0)
            .await
            .unwrap_err();
        assert!(matches!(refused, JournalError::Conflict(_)), "{refused}");
        assert!(refused.to_string().contains("dry-run"), "{refused}");
        // A dry-run plan spends no budget.
        let kept = cycle::load_state(&store).await.unwrap();
        assert!(kept.budget.per_az.is_empty(), "{kept:?}");
        // Dry-run plans are never run, so they do not hold the VM: the next cycle shows it again.
        let again = run_cycle(&store, &cfg(Mode::DryRun), 3, &Metrics::new()).await;
        assert_eq!(again.plan.actions.len(), 1, "{:?}", again.plan);
        store.close().await;
        scratch
    });
}

#[test]
fn a_state_that_does_not_parse_starts_detection_over() {
    on_both(|_, scratch| async move {
        let store = open(&scratch).await;
        // A history document another version wrote.
        store
            .save_detector(
                &format!("{}/history/0", cycle::STATE_NAME),
                "{not json",
                0.0,
            )
            .await
            .unwrap();
        assert_eq!(
            cycle::load_state(&store).await.unwrap(),
            cycle::PlannerState::default()
        );
        let out = run_cycle(&store, &cfg(Mode::Auto), 0, &Metrics::new()).await;
        assert_eq!(out.candidates, 0);
        let kept = cycle::load_state(&store).await.unwrap();
        assert_eq!(kept.history.vms[NOISY].samples.len(), 1);
        store.close().await;
        scratch
    });
}

#[test]
fn a_large_history_is_stored_in_bounded_documents_and_read_back_whole() {
    on_both(|_, scratch| async move {
        use steward::rebalance::detect::{Sample, Series};
        let store = open(&scratch).await;
        let mut state = cycle::PlannerState::default();
        let n = cycle::VMS_PER_DOCUMENT * 2 + 7;
        for i in 0..n {
            state.history.vms.insert(
                format!("vm-{i:06}"),
                Series {
                    host: Some(format!("cmp-{}", i % 50)),
                    vcpus: Some(4.0),
                    samples: [Sample {
                        at: NOW,
                        load5: 3.6,
                        steal: 0.3,
                    }]
                    .into(),
                },
            );
        }
        state.detect.candidates.insert("vm-000001".into(), NOW);
        cycle::save_state(&store, &state, NOW).await.unwrap();
        let docs = store.load_detector_set(cycle::STATE_NAME).await.unwrap();
        assert_eq!(docs.len(), 1 + 3, "a head and three history documents");
        assert_eq!(cycle::load_state(&store).await.unwrap(), state);
        // A smaller history replaces the old documents rather than leaving stale ones behind.
        state.history.vms.retain(|k, _| k.as_str() < "vm-000010");
        cycle::save_state(&store, &state, NOW).await.unwrap();
        assert_eq!(
            store
                .load_detector_set(cycle::STATE_NAME)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(cycle::load_state(&store).await.unwrap(), state);
        store.close().await;
        scratch
    });
}

// The adapter: `Planner::run` over Nova's listings and Placement's providers.

use rebalance_support::{
    host_sample, mount_cloud, mount_servers, noisy_vm_sample, FakeCompute, Node, Room, Script,
};
use steward::openstack::nova::Nova;
use steward::openstack::placement::Placement;
use steward::rebalance::cycle::{CycleError, Planner};
use wiremock::MockServer;

/// Keystone, Nova (the fake's one busy VM on cmp-1) and Placement at one mock, over `nodes`.
async fn fake_cloud(nodes: &[Node]) -> MockServer {
    let server = MockServer::start().await;
    openstack_support::mount_keystone(&server, &[openstack_support::TOKEN_1]).await;
    mount_servers(&server, &FakeCompute::new(Script::default())).await;
    mount_cloud(&server, nodes).await;
    server
}

/// Serve's and run-once's planner, reading the cloud at `server`: dry-run, one sample is
/// enough to be a candidate.
fn planner(server: &MockServer) -> Planner {
    let session =
        openstack_support::session(openstack_support::cloud(&server.uri(), "steward", &[]));
    Planner {
        nova: Arc::new(Nova::new(session.clone())),
        placement: Arc::new(Placement::new(session)),
        profiles: Arc::new(
            steward::scoring::ProfileSet::build(&steward::scoring::builtin_profiles(), "default")
                .unwrap(),
        ),
        opts: Options::default(),
        cfg: RebalanceSettings {
            mode: Mode::DryRun,
            min_samples: 1,
            ..settings()
        },
        role_key: "steward_role".into(),
        default_az: "nova".into(),
        metrics: Some(Metrics::new()),
    }
}

/// One planning cycle over `nodes`: the fake's VM busy (load 0.9 per vCPU) and stolen (30 %)
/// on cmp-1, the other hosts with the steal given (unlisted: 0).
async fn plan_over(nodes: &[Node], steal: &[(&str, f64)]) -> Result<CycleOutcome, CycleError> {
    let server = fake_cloud(nodes).await;
    let scratch = Scratch::new(Backend::Sqlite).await;
    let store = open(&scratch).await;
    let now = steward::unix_now();
    let host = |name: &str, steal: f64, cpu_use: f64| host_sample(name, steal, cpu_use, now);
    let hosts: Vec<HostSample> = nodes
        .iter()
        .map(|n| match n.name.as_str() {
            "cmp-1" => host("cmp-1", 0.30, 0.95),
            other => host(
                other,
                steal
                    .iter()
                    .find(|(h, _)| *h == other)
                    .map_or(0.0, |(_, s)| *s),
                0.2,
            ),
        })
        .collect();
    store
        .save_telemetry(&hosts, &[noisy_vm_sample(now)], now)
        .await
        .unwrap();
    let view = store.load_view().await.unwrap();
    let out = planner(&server).run(&store, &view, now, None).await;
    if out.is_err() {
        assert!(
            store.plans(10).await.unwrap().is_empty(),
            "nothing journaled"
        );
        assert_eq!(
            cycle::load_state(&store).await.unwrap(),
            cycle::PlannerState::default(),
            "nothing recorded"
        );
    }
    store.close().await;
    scratch.cleanup().await;
    out
}

fn node(name: &str, n: u8, room: Option<Room>) -> Node {
    Node {
        room,
        ..Node::new(name, n)
    }
}

fn target(out: &CycleOutcome) -> &str {
    assert_eq!(out.plan.actions.len(), 1, "{:?}", out.plan);
    &out.plan.actions[0].target_host
}

fn no_destination(out: &CycleOutcome) -> &str {
    assert!(out.plan.actions.is_empty(), "{:?}", out.plan);
    assert_eq!(out.plan.skipped.len(), 1, "{:?}", out.plan);
    let s = &out.plan.skipped[0];
    assert_eq!(s.limit, Limit::NoDestination, "{s:?}");
    &s.detail
}

#[tokio::test]
async fn a_target_with_free_ram_per_nova_but_none_per_placement_is_refused() {
    // Nova's hypervisor listing shows 120 GiB free on every node (8 GiB used of 128). In
    // Placement cmp-2 has 4 GiB reserved and 126,000 MB allocated: (131072 - 4096) * 1.0 -
    // 126000 = 976 MB left, less than the VM's 2,048 MB.
    let full = Room {
        memory_mb: (131072, 4096, 1.0, 126_000),
        ..Room::default()
    };
    // cmp-2 is the quietest host: with room in Placement it is the one picked.
    let steal = [("cmp-2", 0.0), ("cmp-3", 0.03)];
    let roomy = [
        Node::new("cmp-1", 1),
        Node::new("cmp-2", 2),
        Node::new("cmp-3", 3),
    ];
    assert_eq!(target(&plan_over(&roomy, &steal).await.unwrap()), "cmp-2");

    let nodes = [
        Node::new("cmp-1", 1),
        node("cmp-2", 2, Some(full)),
        Node::new("cmp-3", 3),
    ];
    assert_eq!(target(&plan_over(&nodes, &steal).await.unwrap()), "cmp-3");

    // Without cmp-3's provider in Placement (404) no host qualifies, each for its reason.
    let nodes = [
        Node::new("cmp-1", 1),
        node("cmp-2", 2, Some(full)),
        node("cmp-3", 3, None),
    ];
    let out = plan_over(&nodes, &steal).await.unwrap();
    let detail = no_destination(&out);
    assert!(detail.contains("1 without RAM room"), "{detail}");
    assert!(detail.contains("1 with unknown vCPU room"), "{detail}");
}

#[tokio::test]
async fn the_allocation_ratio_gives_room_that_ratio_one_would_deny() {
    // cmp-2 runs 100 vCPUs on 32 cores, as Nova's listing and Placement agree.
    let over = |ratio: f64| Node {
        nova_used: (100, 8192),
        room: Some(Room {
            vcpu: (32, 0, ratio, 100),
            ..Room::default()
        }),
        ..Node::new("cmp-2", 2)
    };
    // At cpu_allocation_ratio 4.0: 32 * 4.0 - 100 = 28 vCPUs left for the VM's 2.
    let out = plan_over(&[Node::new("cmp-1", 1), over(4.0)], &[])
        .await
        .unwrap();
    assert_eq!(target(&out), "cmp-2");
    assert_eq!(out.plan.actions[0].vcpus, 2.0);
    // At 1.0 the same node has none.
    let out = plan_over(&[Node::new("cmp-1", 1), over(1.0)], &[])
        .await
        .unwrap();
    let detail = no_destination(&out);
    assert!(detail.contains("1 without vCPU room"), "{detail}");
}

#[tokio::test]
async fn a_placement_outage_skips_the_cycle_naming_placement() {
    use wiremock::matchers::path_regex;
    use wiremock::{Mock, ResponseTemplate};
    let server = fake_cloud(&[Node::new("cmp-1", 1), Node::new("cmp-2", 2)]).await;
    // Placement's error format (1.23+), ahead of the answers mounted for the nodes.
    Mock::given(path_regex(r"^/resource_providers/"))
        .respond_with(ResponseTemplate::new(503).set_body_json(serde_json::json!({
            "errors": [{"status": 503, "title": "Service Unavailable",
                "detail": "The server is currently unavailable. Please try again at a later time.",
                "request_id": "req-0a4c2b1e-9d8f-4e7a-b6c5-d4e3f2a1b0c9"}]
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    let scratch = Scratch::new(Backend::Sqlite).await;
    let store = open(&scratch).await;
    let view = store.load_view().await.unwrap();
    let err = planner(&server)
        .run(&store, &view, steward::unix_now(), None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CycleError::Placement(_)), "{text}");
    assert!(text.contains("2 compute node(s)"), "{text}");
    assert!(text.contains("503"), "{text}");
    assert!(text.contains("openstack resource provider list"), "{text}");
    assert!(store.plans(10).await.unwrap().is_empty());
    store.close().await;
    scratch.cleanup().await;
}
