//! The executor's lifecycle against Nova's compute side, Kubernetes and Consul played by
//! wiremock (shaped like their real answers): progress then completion, a migration that never
//! completes and is aborted, a PodDisruptionBudget that refuses evictions for a while, a drain
//! that fails (the rejoin still runs), and Nova refusing os-migrateLive with 409 and 500.

mod openstack_support;
mod rebalance_support;

use std::sync::Arc;

use openstack_support::{cloud, mount_keystone, session, TOKEN_1};
use rebalance_support::*;
use steward::metrics::Metrics;
use steward::openstack::nova::Nova;
use steward::rebalance::execute::Executor;
use steward::rebalance::hooks;
use steward::rebalance::hooks::settings::{
    ConsulHookSettings, HooksSettings, KubernetesHookSettings,
};
use steward::rebalance::settings::ExecutionSettings;
use steward::store::journal::{ActionState, NewPlan};
use steward::store::DatabaseUrl;
use steward::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Rig {
    nova: MockServer,
    k8s: MockServer,
    consul: MockServer,
    fake: FakeCompute,
    store: Store,
    metrics: Metrics,
    executor: Arc<Executor>,
    _dir: tempfile::TempDir,
}

fn fast() -> ExecutionSettings {
    ExecutionSettings {
        poll_seconds: 0.05,
        rejoin_retry_seconds: 0.05,
        rejoin_attempts: 2,
        ..Default::default()
    }
}

async fn rig(script: Script, settings: ExecutionSettings, k8s_refusals: u64) -> Rig {
    let nova = MockServer::start().await;
    mount_keystone(&nova, &[TOKEN_1]).await;
    let fake = FakeCompute::new(script);
    mount_compute(&nova, &fake).await;
    let k8s = MockServer::start().await;
    mount_kubernetes(&k8s, k8s_refusals).await;
    let consul = MockServer::start().await;
    mount_consul(&consul).await;
    rig_with(nova, k8s, consul, fake, settings).await
}

async fn rig_with(
    nova: MockServer,
    k8s: MockServer,
    consul: MockServer,
    fake: FakeCompute,
    settings: ExecutionSettings,
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("s.sqlite").display()
    ));
    let store = Store::connect(&url, 1).await.unwrap();
    store.upgrade().await.unwrap();
    let hooks = hooks::from_settings(&HooksSettings {
        kubernetes: Some(KubernetesHookSettings {
            api_url: k8s.uri(),
            evict_retry_seconds: 0.05,
            drain_timeout_seconds: 5.0,
            ..Default::default()
        }),
        consul: Some(ConsulHookSettings {
            agent_url: consul.uri(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let metrics = Metrics::new();
    let client = Arc::new(Nova::new(session(cloud(&nova.uri(), "steward", &[]))));
    let executor = Arc::new(Executor::new(
        store.clone(),
        client,
        hooks,
        settings,
        metrics.clone(),
    ));
    Rig {
        nova,
        k8s,
        consul,
        fake,
        store,
        metrics,
        executor,
        _dir: dir,
    }
}

/// One approved action for the test VM; its id.
async fn approved_action(store: &Store) -> String {
    let v = plan_json();
    let a = &v["actions"][0];
    let plan = NewPlan {
        id: uuid::Uuid::new_v4().to_string(),
        created_at: steward::unix_now(),
        mode: "auto".into(),
        summary: "{}".into(),
        actions: vec![steward::store::journal::NewAction {
            vm: VM.into(),
            vm_name: NODE.into(),
            source: SOURCE.into(),
            target: TARGET.into(),
            az: "az1".into(),
            ram_mb: a["ram_mb"].as_i64().unwrap(),
            disk_gb: 20,
            block_migration: false,
            reason: a["reason"].as_str().unwrap().into(),
        }],
    };
    let p = store.insert_plan(&plan, Some("auto"), None).await.unwrap();
    p.actions[0].id.clone()
}

/// A rig with `script` (the executor's fast settings) and one approved action, run through
/// one cycle: the rig, the action's id and the action as journaled after the cycle.
async fn one_cycle(script: Script) -> (Rig, String, steward::store::journal::ActionRow) {
    let r = rig(script, fast(), 0).await;
    let id = approved_action(&r.store).await;
    r.executor.run_cycle(None, true).await;
    let a = r.store.action(&id).await.unwrap().unwrap();
    (r, id, a)
}

fn metric(m: &Metrics, line_start: &str) -> f64 {
    m.render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_migration_with_progress_completes_between_drain_and_rejoin() {
    // The PodDisruptionBudget refuses the first two evictions: the drain waits, then goes on.
    let r = rig(Script::default(), fast(), 2).await;
    let id = approved_action(&r.store).await;
    let report = r.executor.run_cycle(None, true).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let a = r.store.action(&id).await.unwrap().unwrap();
    assert_eq!(a.state, ActionState::Done, "{a:?}");
    assert_eq!(transitions(&r.store, &id).await, DONE_PATH);
    // The before-image is Nova's view of the server before the move.
    let image: serde_json::Value =
        serde_json::from_str(a.before_image.as_deref().unwrap()).unwrap();
    assert_eq!(image["OS-EXT-SRV-ATTR:host"], SOURCE);
    assert_eq!(image["status"], "ACTIVE");
    // Bytes moved are the last progress Nova reported: two polls of 512 MiB.
    assert_eq!(a.bytes_moved, 1 << 30);
    assert_eq!(a.migration_id.as_deref(), Some("7"));
    let events = r.store.events(&id).await.unwrap();
    let done = events.iter().find(|e| e.to == "rejoining").unwrap();
    assert!(
        done.detail.contains("Nova migration 7 is completed"),
        "{}",
        done.detail
    );
    assert_eq!(r.fake.migrate_requests(), 1);
    let body: serde_json::Value = serde_json::from_slice(
        &r.nova
            .received_requests()
            .await
            .unwrap()
            .iter()
            .find(|q| q.url.path().ends_with("/action"))
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"os-migrateLive": {"host": TARGET, "block_migration": "auto"}})
    );
    let k8s = calls(&r.k8s).await;
    assert_eq!(
        k8s.first().map(String::as_str),
        Some("PATCH /api/v1/nodes/web-1")
    );
    assert_eq!(
        k8s.last().map(String::as_str),
        Some("PATCH /api/v1/nodes/web-1")
    );
    let evictions = k8s.iter().filter(|c| c.ends_with("/eviction")).count();
    assert_eq!(evictions, 3, "two 429s from the budget, then 201: {k8s:?}");
    assert!(
        !k8s.iter().any(|c| c.contains("node-exporter")),
        "DaemonSet pods stay"
    );
    let patches: Vec<serde_json::Value> = r
        .k8s
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|q| q.method.as_str() == "PATCH")
        .map(|q| serde_json::from_slice(&q.body).unwrap())
        .collect();
    assert_eq!(patches[0]["spec"]["unschedulable"], true);
    assert_eq!(patches[1]["spec"]["unschedulable"], false);
    let consul = calls(&r.consul).await;
    assert_eq!(consul.len(), 2, "{consul:?}");
    assert!(
        consul[0].starts_with("PUT /v1/agent/maintenance?enable=true&reason="),
        "{consul:?}"
    );
    assert_eq!(consul[1], "PUT /v1/agent/maintenance?enable=false");
    // The planner sees the finished move for its cooldown and no-return rules, nothing open.
    let (open, moves) = steward::rebalance::execute::planner_inputs(&r.store, 0.0)
        .await
        .unwrap();
    assert!(open.is_empty());
    assert_eq!(moves.len(), 1);
    assert_eq!(
        (moves[0].from_host.as_str(), moves[0].to_host.as_str()),
        (SOURCE, TARGET)
    );
    assert_eq!(Some(moves[0].at), a.accepted_at);
    assert_eq!(
        metric(
            &r.metrics,
            "steward_rebalance_actions_total{state=\"done\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&r.metrics, "steward_rebalance_bytes_moved_total"),
        (1u64 << 30) as f64
    );
}

#[tokio::test]
async fn a_migration_that_never_completes_is_aborted_past_the_timeout_and_rejoined() {
    let settings = ExecutionSettings {
        completion_timeout_seconds_per_gib: 0.3,
        completion_timeout_margin_seconds: 0.0,
        ..fast()
    };
    let r = rig(
        Script {
            completes_after: None,
            ..Default::default()
        },
        settings,
        0,
    )
    .await;
    let id = approved_action(&r.store).await;
    let started = std::time::Instant::now();
    r.executor.run_cycle(None, true).await;
    let a = r.store.action(&id).await.unwrap().unwrap();
    assert_eq!(a.state, ActionState::Aborted, "{a:?}");
    // 2 GiB of RAM at 0.3 s per GiB: aborted after 0.6 s, not before.
    assert!(started.elapsed().as_secs_f64() >= 0.6);
    assert!(a.abort_requested_at.is_some());
    assert!(
        a.error
            .as_deref()
            .unwrap()
            .contains("aborted past its completion timeout"),
        "{a:?}"
    );
    let (aborted, aborts) = {
        let st = r.fake.state.lock().unwrap();
        (st.aborted, st.aborts)
    };
    assert!(aborted);
    assert_eq!(aborts, 1);
    let deletes: Vec<String> = calls(&r.nova)
        .await
        .into_iter()
        .filter(|c| c.starts_with("DELETE"))
        .collect();
    assert_eq!(deletes, [format!("DELETE /v2.1/servers/{VM}/migrations/7")]);
    // Rejoined: uncordoned and out of maintenance, after the abort.
    assert_eq!(
        calls(&r.consul).await.last().map(String::as_str),
        Some("PUT /v1/agent/maintenance?enable=false")
    );
    assert_eq!(
        transitions(&r.store, &id).await,
        [
            "new->approved",
            "approved->draining",
            "draining->migrating",
            "migrating->rejoining",
            "rejoining->aborted"
        ]
    );
    assert_eq!(
        metric(
            &r.metrics,
            "steward_rebalance_actions_total{state=\"aborted\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_failed_drain_still_rejoins_and_never_migrates() {
    let nova = MockServer::start().await;
    mount_keystone(&nova, &[TOKEN_1]).await;
    let fake = FakeCompute::new(Script::default());
    mount_compute(&nova, &fake).await;
    let k8s = MockServer::start().await;
    // Cordon works; listing pods fails with the API's own 500 body.
    Mock::given(method("PATCH"))
        .and(path(format!("/api/v1/nodes/{NODE}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"kind": "Node"})))
        .mount(&k8s)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/pods"))
        .respond_with(ResponseTemplate::new(500).set_body_json(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "etcdserver: request timed out", "code": 500
        })))
        .mount(&k8s)
        .await;
    let consul = MockServer::start().await;
    mount_consul(&consul).await;
    let r = rig_with(nova, k8s, consul, fake, fast()).await;
    let id = approved_action(&r.store).await;
    r.executor.run_cycle(None, true).await;
    let a = r.store.action(&id).await.unwrap().unwrap();
    assert_eq!(a.state, ActionState::Failed, "{a:?}");
    let err = a.error.unwrap();
    assert!(
        err.contains("drain hook kubernetes failed") && err.contains("etcdserver"),
        "{err}"
    );
    assert_eq!(
        r.fake.migrate_requests(),
        0,
        "no migration after a failed drain"
    );
    let k8s = calls(&r.k8s).await;
    assert_eq!(
        k8s.last().map(String::as_str),
        Some("PATCH /api/v1/nodes/web-1"),
        "uncordoned: {k8s:?}"
    );
    // Consul's drain never ran, its rejoin did (idempotent).
    assert_eq!(
        calls(&r.consul).await,
        ["PUT /v1/agent/maintenance?enable=false"]
    );
    assert_eq!(
        metric(
            &r.metrics,
            "steward_rebalance_hook_failures_total{hook=\"kubernetes\"}"
        ),
        1.0
    );
    assert_eq!(
        transitions(&r.store, &id).await,
        [
            "new->approved",
            "approved->draining",
            "draining->rejoining",
            "rejoining->failed"
        ]
    );
}

#[tokio::test]
async fn nova_answering_409_to_os_migrate_live_fails_the_action_after_rejoin() {
    let (r, _, a) = one_cycle(Script {
        refuse_with: Some(409),
        ..Default::default()
    })
    .await;
    assert_eq!(a.state, ActionState::Failed);
    let err = a.error.unwrap();
    assert!(err.contains("409") && err.contains(VM), "{err}");
    assert_eq!(r.fake.migrate_requests(), 1, "a refusal is not retried");
    assert_eq!(
        calls(&r.consul).await.last().map(String::as_str),
        Some("PUT /v1/agent/maintenance?enable=false")
    );
}

#[tokio::test]
async fn a_migration_nova_ends_in_error_fails_after_rejoin_naming_nova_s_record_and_reason() {
    let (r, id, a) = one_cycle(Script {
        ends_in_error: true,
        ..Default::default()
    })
    .await;
    assert_eq!(a.state, ActionState::Failed, "{a:?}");
    // Never listed in progress: only Nova's records name the migration.
    assert_eq!(a.migration_id.as_deref(), Some("7"));
    let err = a.error.unwrap();
    assert!(
        err.contains(&format!("server {VM} ACTIVE on {SOURCE} (wanted {TARGET})")),
        "{err}"
    );
    assert!(err.contains("Nova migration 7 is error"), "{err}");
    assert!(
        err.contains(
            "Nova says: conductor_live_migrate_instance: No valid host was found. There are \
             not enough hosts available."
        ),
        "{err}"
    );
    assert!(!err.contains("say why"), "Nova said why: {err}");
    assert_eq!(
        transitions(&r.store, &id).await,
        [
            "new->approved",
            "approved->draining",
            "draining->migrating",
            "migrating->rejoining",
            "rejoining->failed"
        ]
    );
    assert_eq!(
        calls(&r.consul).await.last().map(String::as_str),
        Some("PUT /v1/agent/maintenance?enable=false")
    );
}

#[tokio::test]
async fn nova_answering_500_fails_unless_the_server_is_migrating_anyway() {
    let (_, _, a) = one_cycle(Script {
        refuse_with: Some(500),
        ..Default::default()
    })
    .await;
    assert_eq!(a.state, ActionState::Failed);
    assert!(a.error.as_deref().unwrap().contains("500"), "{a:?}");

    // A 500 after which Nova did start the migration: steward follows it to the end.
    let (r, _, a) = one_cycle(Script {
        refuse_with: Some(500),
        starts_despite_error: true,
        ..Default::default()
    })
    .await;
    assert_eq!(a.state, ActionState::Done, "{a:?}");
    assert_eq!(r.fake.migrate_requests(), 1);
}

#[tokio::test]
async fn a_server_no_longer_on_its_source_is_not_touched() {
    let r = rig(Script::default(), fast(), 0).await;
    r.fake.state.lock().unwrap().host = "cmp-9".into();
    let id = approved_action(&r.store).await;
    r.executor.run_cycle(None, true).await;
    let a = r.store.action(&id).await.unwrap().unwrap();
    assert_eq!(a.state, ActionState::Aborted);
    assert!(a.error.as_deref().unwrap().contains("cmp-9"), "{a:?}");
    assert!(calls(&r.k8s).await.is_empty(), "nothing drained");
    assert_eq!(r.fake.migrate_requests(), 0);
}

#[tokio::test]
async fn a_rejoin_that_keeps_failing_leaves_the_action_rejoining_for_the_next_cycle() {
    let nova = MockServer::start().await;
    mount_keystone(&nova, &[TOKEN_1]).await;
    let fake = FakeCompute::new(Script::default());
    mount_compute(&nova, &fake).await;
    let k8s = MockServer::start().await;
    mount_kubernetes(&k8s, 0).await;
    let consul = MockServer::start().await;
    // Maintenance on works, off fails: the node must not be reported as closed.
    Mock::given(method("PUT"))
        .and(path("/v1/agent/maintenance"))
        .and(wiremock::matchers::query_param("enable", "false"))
        .respond_with(ResponseTemplate::new(500).set_body_string("rpc error: No cluster leader"))
        .mount(&consul)
        .await;
    mount_consul(&consul).await;
    let r = rig_with(nova, k8s, consul, fake, fast()).await;
    let id = approved_action(&r.store).await;
    let report = r.executor.run_cycle(None, true).await;
    let a = r.store.action(&id).await.unwrap().unwrap();
    assert_eq!(a.state, ActionState::Rejoining);
    assert_eq!(a.outcome, Some(ActionState::Done));
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("No cluster leader")),
        "{report:?}"
    );
    // Consul recovers: the next cycle closes it.
    r.consul.reset().await;
    mount_consul(&r.consul).await;
    r.executor.run_cycle(None, true).await;
    let a = r.store.action(&id).await.unwrap().unwrap();
    assert_eq!(a.state, ActionState::Done);
    assert_eq!(r.fake.migrate_requests(), 1);
}

/// With one database connection (SQLite's pool), a cycle whose journal write is waiting on the
/// database when the leadership falls due for renewal goes on and ends as leader: the renewal
/// does not stop driving the very cycle that holds the connection it needs, which would leave
/// both waiting (the replica then stops answering anything that reads its journal).
#[tokio::test]
async fn a_renewal_due_while_the_cycle_holds_the_connection_does_not_stall_it() {
    use sqlx::Connection;
    let settings = ExecutionSettings {
        lease_seconds: 0.6,
        ..fast()
    };
    let r = rig(Script::default(), settings, 0).await;
    // Once this replica leads, another writer holds SQLite's write lock for 1.5 s: the
    // planner's write waits inside steward's one pooled connection across several renewal
    // periods (0.2 s).
    let url = format!("sqlite://{}", r._dir.path().join("s.sqlite").display());
    let now = steward::unix_now();
    let store = r.store.clone();
    let (unlocked_tx, unlocked) = tokio::sync::oneshot::channel();
    let planner = async move {
        let mut outside = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut outside)
            .await
            .unwrap();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            sqlx::query("COMMIT").execute(&mut outside).await.unwrap();
            let _ = unlocked_tx.send(());
        });
        store
            .save_telemetry(&[host_sample("cmp-x", 0.1, 0.5, now)], &[], now)
            .await
    };
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        steward::rebalance::execute::lead_and_run_after(
            &r.executor,
            &r.store,
            "replica-a",
            None,
            false,
            planner,
        ),
    )
    .await
    .expect("the cycle ends while the database answers")
    .unwrap()
    .expect("this replica led");
    unlocked.await.unwrap();
    let (planned, _) = out;
    let planned = planned.expect("the planner's part ended as leader, not cut short");
    assert!(planned.is_ok(), "{planned:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
