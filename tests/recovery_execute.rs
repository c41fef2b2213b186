//! Host-failure recovery end to end against a Nova played by wiremock (shaped like Nova 34's
//! answers at 2.87, `recovery_support`), a real fencing hook (a command) and steward's real
//! journal (SQLite): a dead host is fenced, forced down and emptied into its own AZ; a failed
//! or slow fencing hook stops everything; the partition guard holds; one witness alone does
//! nothing; a killed steward resumes without evacuating anything twice; NoValidHost is
//! reported, never sent elsewhere; approve mode waits; release unforces; a leader paused past
//! its lease writes nothing and acts on nothing.

mod openstack_support;
mod recovery_support;

use std::sync::Arc;
use std::time::Duration;

use openstack_support::{cloud, mount_keystone, session, TOKEN_1};
use recovery_support::FakeNova;
use steward::metrics::Metrics;
use steward::model::HostFacts;
use steward::openstack::nova::Nova;
use steward::recover::execute::{fence_hook, Recovery};
use steward::recover::witness::Witnesses;
use steward::recover::{FenceExecSettings, Mode, RecoverySettings};
use steward::settings::DatabaseUrl;
use steward::store::recovery::{IncidentState, NewIncident, NewVm, VmState};
use steward::store::Store;
use steward::telemetry::HostSample;
use wiremock::MockServer;

struct Rig {
    nova: MockServer,
    fake: FakeNova,
    store: Store,
    metrics: Metrics,
    recovery: Recovery,
    dir: tempfile::TempDir,
}

fn marker(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("fenced")
}

fn settings(dir: &tempfile::TempDir, fence: &[&str]) -> RecoverySettings {
    let argv: Vec<String> = fence
        .iter()
        .map(|a| a.replace("MARKER", &marker(dir).display().to_string()))
        .collect();
    RecoverySettings {
        mode: Mode::Auto,
        poll_seconds: 0.05,
        vm_cooldown_seconds: 0.0,
        fence: steward::recover::FenceSettings {
            exec: Some(FenceExecSettings {
                fence: argv,
                rejoin: vec!["true".into()],
                timeout_seconds: 1.0,
            }),
            http: None,
        },
        ..Default::default()
    }
}

/// A fencing hook that records `{host}` in the marker file and succeeds.
const FENCE_OK: &[&str] = &["sh", "-c", "echo {host} >> MARKER"];

/// Hosts: az1 = a1 a2 a3, az2 = b1 b2; `dead` are down (heartbeat 10 minutes old) and their
/// telemetry stopped; the others beat and report.
async fn rig(dead: &[&str], fence: &[&str], tweak: impl FnOnce(&mut RecoverySettings)) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let hosts = [
        ("a1", "az1"),
        ("a2", "az1"),
        ("a3", "az1"),
        ("b1", "az2"),
        ("b2", "az2"),
    ];
    let spec: Vec<(&str, &str, bool)> = hosts
        .iter()
        .map(|(h, a)| (*h, *a, !dead.contains(h)))
        .collect();
    let fake = FakeNova::new(&spec, Some(marker(&dir)));
    let nova = MockServer::start().await;
    mount_keystone(&nova, &[TOKEN_1]).await;
    fake.mount(&nova).await;
    let url = DatabaseUrl(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("s.sqlite").display()
    ));
    let store = Store::connect(&url, 1).await.unwrap();
    store.upgrade().await.unwrap();
    let now = steward::unix_now();
    let samples: Vec<HostSample> = hosts
        .iter()
        .map(|(h, a)| HostSample {
            host: h.to_string(),
            facts: HostFacts {
                az: Some(a.to_string()),
                steal: Some(0.01),
                load5: Some(1.0),
                observed_at: if dead.contains(h) {
                    now - 900.0
                } else {
                    now - 5.0
                },
                ..Default::default()
            },
        })
        .collect();
    store.save_telemetry(&samples, &[], now).await.unwrap();
    let mut s = settings(&dir, fence);
    tweak(&mut s);
    let metrics = Metrics::new();
    let client = Arc::new(Nova::new(session(cloud(&nova.uri(), "steward", &[]))));
    let recovery = Recovery::new(
        store.clone(),
        client,
        fence_hook(&s).unwrap(),
        Witnesses::from_settings(&s.witnesses).unwrap(),
        s,
        "steward_role".into(),
        metrics.clone(),
    );
    Rig {
        nova,
        fake,
        store,
        metrics,
        recovery,
        dir,
    }
}

async fn settle(r: &Rig) -> steward::recover::execute::RoundReport {
    r.recovery
        .run_until_settled(Some(Duration::from_secs(20)))
        .await
}

fn metric(m: &Metrics, line_start: &str) -> f64 {
    m.render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn a_dead_host_is_fenced_forced_down_and_emptied_into_its_own_az() {
    let r = rig(&["a1"], FENCE_OK, |_| {}).await;
    r.fake.state.lock().unwrap().rebuild_polls = 2;
    let vms: Vec<String> = (1..=3)
        .map(|n| {
            r.fake
                .add_server(n, &format!("web-{n}"), "a1", &[("steward_role", "web")])
        })
        .collect();
    let bystander = r.fake.add_server(9, "db-1", "a2", &[]);
    let report = settle(&r).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let incidents = r.store.incidents(&[], 10).await.unwrap();
    assert_eq!(incidents.len(), 1);
    let i = &incidents[0];
    assert_eq!(
        (i.host.as_str(), i.state),
        ("a1", IncidentState::Done),
        "{i:?}"
    );
    for id in &vms {
        let s = r.fake.server(id);
        assert_eq!(s.status, "ACTIVE");
        assert!(
            ["a2", "a3"].contains(&s.host.as_str()),
            "{id} on {}",
            s.host
        );
        assert_eq!(r.fake.evacuations_of(id), 1, "{id} evacuated once");
    }
    assert_eq!(r.fake.evacuations_of(&bystander), 0);
    assert!(r.fake.host("a1").forced_down);
    let (forced_early, versions) = {
        let st = r.fake.state.lock().unwrap();
        (st.forced_before_fence, st.write_versions.clone())
    };
    assert!(
        !forced_early,
        "the service was forced down before the fencing hook ran"
    );
    assert!(versions.iter().all(|v| v == "compute 2.87"), "{versions:?}");
    assert_eq!(
        std::fs::read_to_string(marker(&r.dir)).unwrap().trim(),
        "a1"
    );
    // The journal holds every step, each before the next.
    let events = r.store.recovery_events(&i.id).await.unwrap();
    let host_steps: Vec<String> = events
        .iter()
        .filter(|e| e.vm_row.is_empty())
        .map(|e| e.to.clone())
        .collect();
    assert_eq!(
        host_steps,
        [
            "suspected",
            "fencing",
            "fenced",
            "forced_down",
            "evacuating",
            "done"
        ]
    );
    let rows = r.store.incident_vms(&i.id).await.unwrap();
    assert!(
        rows.iter()
            .all(|v| v.state == VmState::Done && v.request_id.is_some()),
        "{rows:?}"
    );
    let evidence: serde_json::Value = serde_json::from_str(&i.evidence).unwrap();
    let witnesses: Vec<&str> = evidence["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["witness"].as_str().unwrap())
        .collect();
    assert_eq!(witnesses, ["nova_service", "telemetry"]);
    assert!(evidence["evidence"][0]["age_seconds"].as_f64().unwrap() >= 590.0);
    assert_eq!(
        metric(
            &r.metrics,
            "steward_recovery_evacuations_total{outcome=\"done\"}"
        ),
        3.0
    );
    // Nothing more to do: a second round opens nothing (the host awaits release).
    let again = r.recovery.round(steward::unix_now()).await;
    assert!(again.opened.is_empty(), "{:?}", again.opened);
    assert!(again
        .plan
        .held
        .iter()
        .any(|h| h.host == "a1" && h.reason.contains("release")));
}

#[tokio::test]
async fn priority_decides_the_order_and_the_az_budget_holds_one_at_a_time() {
    let r = rig(&["a1"], FENCE_OK, |s| {
        s.max_concurrent_per_az = 1;
        s.priority.metadata_key = Some("prio".into());
        s.priority.roles = vec!["db".into()];
    })
    .await;
    r.fake.state.lock().unwrap().rebuild_polls = 1;
    let low = r
        .fake
        .add_server(1, "a-web", "a1", &[("steward_role", "web")]);
    let db = r
        .fake
        .add_server(2, "b-db", "a1", &[("steward_role", "db")]);
    let urgent = r.fake.add_server(3, "c-urgent", "a1", &[("prio", "100")]);
    settle(&r).await;
    let migrations = r.fake.state.lock().unwrap().migrations.clone();
    let order: Vec<&str> = migrations
        .iter()
        .map(|m| m["instance_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(order, [urgent.as_str(), db.as_str(), low.as_str()]);
}

#[tokio::test]
async fn a_failed_fencing_hook_stops_everything_and_pages() {
    let r = rig(
        &["a1"],
        &["sh", "-c", "echo 'ipmitool: BMC not answering' >&2; exit 1"],
        |_| {},
    )
    .await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    settle(&r).await;
    let i = &r.store.incidents(&[], 10).await.unwrap()[0];
    assert_eq!(i.state, IncidentState::Blocked);
    assert!(
        i.error.as_deref().unwrap().contains("BMC not answering"),
        "{:?}",
        i.error
    );
    assert_eq!(r.fake.evacuations_of(&vm), 0);
    assert!(r.fake.state.lock().unwrap().service_puts.is_empty());
    assert!(!r.fake.host("a1").forced_down);
    assert_eq!(
        metric(
            &r.metrics,
            "steward_recovery_fence_failures_total{host=\"a1\"}"
        ),
        1.0
    );
    // A blocked host is not fenced again on its own: it waits for an operator.
    let again = r.recovery.round(steward::unix_now()).await;
    assert!(again.opened.is_empty());
}

#[tokio::test]
async fn a_fencing_hook_past_its_timeout_is_a_failure() {
    let r = rig(&["a1"], &["sleep", "5"], |_| {}).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    let started = std::time::Instant::now();
    settle(&r).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    let i = &r.store.incidents(&[], 10).await.unwrap()[0];
    assert_eq!(i.state, IncidentState::Blocked);
    assert!(
        i.error.as_deref().unwrap().contains("killed"),
        "{:?}",
        i.error
    );
    assert_eq!(r.fake.evacuations_of(&vm), 0);
}

#[tokio::test]
async fn two_of_three_hosts_of_an_az_dead_at_once_is_a_partition() {
    let r = rig(&["a1", "a2"], FENCE_OK, |_| {}).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    let report = settle(&r).await;
    assert_eq!(report.plan.guards.len(), 1, "{:?}", report.plan);
    assert_eq!(report.plan.guards[0].scope, "az:az1");
    assert!(r.store.incidents(&[], 10).await.unwrap().is_empty());
    assert_eq!(r.fake.evacuations_of(&vm), 0);
    assert!(!marker(&r.dir).exists(), "nothing was fenced");
    assert_eq!(
        metric(&r.metrics, "steward_recovery_guard{scope=\"az:az1\"}"),
        1.0
    );
    // Control: one of three is a failure, and is acted on.
    let one = rig(&["a1"], FENCE_OK, |_| {}).await;
    one.fake.add_server(1, "web-1", "a1", &[]);
    let report = settle(&one).await;
    assert!(report.plan.guards.is_empty());
    assert_eq!(
        one.store.incidents(&[], 10).await.unwrap()[0].state,
        IncidentState::Done
    );
}

#[tokio::test]
async fn a_host_silent_beside_a_dead_one_holds_the_guard_until_it_shows() {
    // a1 is dead to both witnesses; a2 went silent with it but Nova still counts its last
    // heartbeat (they are report_interval apart): two of az1's three look dead.
    let r = rig(&["a1", "a2"], FENCE_OK, |_| {}).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    // Nova still counts a2's last heartbeat.
    r.fake
        .state
        .lock()
        .unwrap()
        .hosts
        .iter_mut()
        .find(|h| h.name == "a2")
        .unwrap()
        .up = true;
    let report = settle(&r).await;
    assert_eq!(report.plan.guards.len(), 1, "{:?}", report.plan);
    assert_eq!(
        (
            report.plan.guards[0].scope.as_str(),
            report.plan.guards[0].suspected
        ),
        ("az:az1", 2)
    );
    assert!(r.store.incidents(&[], 10).await.unwrap().is_empty());
    assert_eq!(r.fake.evacuations_of(&vm), 0);
    assert!(!marker(&r.dir).exists(), "a1 was fenced alone");
}

#[tokio::test]
async fn nova_down_with_fresh_telemetry_is_not_enough() {
    let r = rig(&["a1"], FENCE_OK, |_| {}).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    // a1 still reports telemetry: only Nova's heartbeat stopped (a message-bus problem).
    let now = steward::unix_now();
    r.store
        .save_telemetry(
            &[HostSample {
                host: "a1".into(),
                facts: HostFacts {
                    az: Some("az1".into()),
                    observed_at: now - 1.0,
                    ..Default::default()
                },
            }],
            &[],
            now,
        )
        .await
        .unwrap();
    let report = settle(&r).await;
    assert!(report
        .observed
        .findings
        .iter()
        .all(|f| f.suspicion().is_none()));
    assert!(r.store.incidents(&[], 10).await.unwrap().is_empty());
    assert_eq!(r.fake.evacuations_of(&vm), 0);
}

#[tokio::test]
async fn no_room_in_the_az_is_reported_and_the_vm_never_leaves_it() {
    let r = rig(&["a1"], FENCE_OK, |_| {}).await;
    r.fake.state.lock().unwrap().no_room = true;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    settle(&r).await;
    let i = &r.store.incidents(&[], 10).await.unwrap()[0];
    assert_eq!(i.state, IncidentState::Failed);
    let rows = r.store.incident_vms(&i.id).await.unwrap();
    assert_eq!(rows[0].state, VmState::Blocked);
    assert!(
        rows[0].error.as_deref().unwrap().contains("No valid host"),
        "{:?}",
        rows[0].error
    );
    assert_eq!(
        r.fake.evacuations_of(&vm),
        1,
        "asked once, never again elsewhere"
    );
    assert_eq!(r.fake.server(&vm).host, "a1");
}

/// The journal as a kill -9 leaves it: the VM row written `evacuating`, Nova's answer not.
async fn killed_mid_evacuation(r: &Rig, vm: &str) -> String {
    let now = steward::unix_now();
    let h = r.fake.host("a1");
    let i = r
        .store
        .open_incident(
            &NewIncident {
                host: "a1".into(),
                az: "az1".into(),
                service_id: h.service_id.clone(),
                mode: "auto".into(),
                evidence: "{}".into(),
                service_before: "{}".into(),
            },
            Some("test"),
            now,
            None,
        )
        .await
        .unwrap();
    let mut i = i;
    for to in [
        IncidentState::Fencing,
        IncidentState::Fenced,
        IncidentState::ForcedDown,
    ] {
        i = r
            .store
            .incident_transition(&i.id, i.state, to, &[], "replayed", now, None)
            .await
            .unwrap();
    }
    r.fake
        .state
        .lock()
        .unwrap()
        .hosts
        .iter_mut()
        .find(|x| x.name == "a1")
        .unwrap()
        .forced_down = true;
    std::fs::write(marker(&r.dir), "a1\n").unwrap();
    let new = NewVm {
        vm: vm.into(),
        vm_name: "web-1".into(),
        az: "az1".into(),
        role: None,
        flavor: None,
        before_image: r#"{"status": "ACTIVE"}"#.into(),
    };
    r.store
        .start_evacuating(&i.id, &[new], "replayed", now, None)
        .await
        .unwrap();
    let row = r.store.incident_vms(&i.id).await.unwrap().remove(0);
    r.store
        .vm_transition(&row, VmState::Evacuating, &[], "replayed", now, None)
        .await
        .unwrap();
    i.id
}

#[tokio::test]
async fn a_resumed_evacuation_nova_already_took_is_not_sent_again() {
    let r = rig(&["a1"], FENCE_OK, |_| {}).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    let id = killed_mid_evacuation(&r, &vm).await;
    // Nova got the first request; steward died before writing its answer.
    {
        let mut st = r.fake.state.lock().unwrap();
        st.rebuild_polls = 3;
    }
    let client = Nova::new(session(cloud(&r.nova.uri(), "steward", &[])));
    client.evacuate(&vm).await.unwrap();
    assert_eq!(r.fake.evacuations_of(&vm), 1);
    settle(&r).await;
    assert_eq!(r.fake.evacuations_of(&vm), 1, "evacuated twice");
    assert_eq!(
        r.store.incident(&id).await.unwrap().unwrap().state,
        IncidentState::Done
    );
    assert_ne!(r.fake.server(&vm).host, "a1");
}

#[tokio::test]
async fn a_resumed_evacuation_nova_never_got_is_sent_once() {
    let r = rig(&["a1"], FENCE_OK, |_| {}).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    let id = killed_mid_evacuation(&r, &vm).await;
    settle(&r).await;
    assert_eq!(r.fake.evacuations_of(&vm), 1);
    assert_eq!(
        r.store.incident(&id).await.unwrap().unwrap().state,
        IncidentState::Done
    );
}

#[tokio::test]
async fn approve_mode_waits_for_an_admin_then_release_unforces() {
    let r = rig(&["a1"], FENCE_OK, |s| s.mode = Mode::Approve).await;
    let vm = r.fake.add_server(1, "web-1", "a1", &[]);
    settle(&r).await;
    let i = r.store.incidents(&[], 10).await.unwrap().remove(0);
    assert_eq!(i.state, IncidentState::Suspected);
    assert!(!marker(&r.dir).exists());
    assert_eq!(r.fake.evacuations_of(&vm), 0);
    // Release is refused while the incident is open.
    let refused = r.recovery.release("a1", "test").await.unwrap_err();
    assert!(refused.to_string().contains("still suspected"), "{refused}");
    r.store
        .approve_incident(&i.id, "admin", steward::unix_now())
        .await
        .unwrap();
    settle(&r).await;
    assert_eq!(
        r.store.incident(&i.id).await.unwrap().unwrap().state,
        IncidentState::Done
    );
    assert!(r.fake.host("a1").forced_down);
    let released = r.recovery.release("a1", "ops").await.unwrap();
    assert_eq!(released.released_by.as_deref(), Some("ops"));
    assert!(!r.fake.host("a1").forced_down);
    let puts = r.fake.state.lock().unwrap().service_puts.clone();
    assert_eq!(
        puts.last().unwrap().1,
        serde_json::json!({"forced_down": false})
    );
    // Released: the host is eligible again (it would need to die again to be recovered).
    let again = r.recovery.release("a1", "ops").await.unwrap_err();
    assert!(
        again
            .to_string()
            .contains("no recovery incident awaiting release"),
        "{again}"
    );
}

#[tokio::test]
async fn a_witness_that_sees_the_host_alive_vetoes_and_a_bmc_off_confirms() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let consul = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/health/node/a1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"Node": "a1", "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing",
             "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": ""}
        ])))
        .mount(&consul)
        .await;
    let bmc = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/redfish/v1/Systems/a1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "@odata.id": "/redfish/v1/Systems/a1", "Id": "a1", "PowerState": "Off"
        })))
        .mount(&bmc)
        .await;
    let (c, b) = (consul.uri(), bmc.uri());
    let r = rig(&["a1"], FENCE_OK, |s| {
        s.witnesses.consul = Some(steward::recover::ConsulWitnessSettings {
            url: c,
            ..Default::default()
        });
        s.witnesses.bmc = Some(steward::recover::BmcWitnessSettings {
            url: format!("{b}/redfish/v1/Systems/{{host}}"),
            ..Default::default()
        });
        s.min_confirmations = 1;
    })
    .await;
    let report = r.recovery.plan(steward::unix_now()).await.unwrap();
    let a1 = report
        .observed
        .findings
        .iter()
        .find(|f| f.host() == "a1")
        .unwrap();
    match a1 {
        steward::recover::suspect::Finding::Clear {
            reason, evidence, ..
        } => {
            assert!(reason.contains("consul"), "{reason}");
            assert!(evidence
                .iter()
                .any(|e| e.witness == "bmc" && e.detail.contains("Off")));
        }
        f => panic!("{f:?}"),
    }
    // Without the Consul veto the BMC's "Off" is the confirmation min_confirmations asks for.
    consul.reset().await;
    let report = r.recovery.plan(steward::unix_now()).await.unwrap();
    let s = report
        .observed
        .findings
        .iter()
        .find_map(|f| f.suspicion().filter(|s| s.host == "a1"));
    let s = s.expect("suspected with the BMC's confirmation");
    assert!(
        s.evidence
            .iter()
            .any(|e| e.witness == "consul"
                && e.verdict == steward::recover::suspect::Verdict::Unknown)
    );
}

/// A lease taken at `at` for `ttl` seconds by `holder`, and its fence as the holder sees it
/// (`valid_for` seconds left by its own clock).
async fn lease(
    r: &Rig,
    holder: &str,
    at: f64,
    ttl: f64,
    valid_for: f64,
) -> steward::store::lease::Fence {
    let name = steward::rebalance::leader::NAME;
    let epoch = r.store.take_lease(name, holder, at, ttl).await.unwrap();
    let mut f = steward::store::lease::Fence {
        name: name.into(),
        holder: holder.into(),
        epoch: epoch.expect("the lease is free"),
        valid_until: std::time::Instant::now(),
    };
    if valid_for > 0.0 {
        f.valid_until += Duration::from_secs_f64(valid_for);
    } else {
        f.valid_until -= Duration::from_secs_f64(-valid_for);
    }
    f
}

#[tokio::test]
async fn a_leader_paused_past_its_lease_writes_nothing_and_acts_on_nothing() {
    let r = rig(&["a1"], FENCE_OK, |_| {}).await;
    let vm = r
        .fake
        .add_server(1, "web-1", "a1", &[("steward_role", "web")]);
    let now = steward::unix_now();
    // "old" led until 10 s ago; "new" took over since. Old still believes it leads (its own
    // clock says so: it was stopped, as by SIGSTOP, and has not looked yet).
    let old = lease(&r, "old", now - 20.0, 10.0, 30.0).await;
    let new = lease(&r, "new", now, 60.0, 60.0).await;
    assert_eq!(new.epoch, old.epoch + 1);
    r.recovery.set_leadership(Some(old.clone()));
    let report = r.recovery.round(steward::unix_now()).await;
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains(&format!("epoch {}", old.epoch))),
        "{:?}",
        report.errors
    );
    assert!(r.store.incidents(&[], 10).await.unwrap().is_empty());
    assert!(!marker(&r.dir).exists(), "the deposed leader fenced a host");
    assert!(!r.fake.host("a1").forced_down);
    assert_eq!(r.fake.evacuations_of(&vm), 0);
    // A leader whose own clock says its lease ran out starts no side effect, even where the
    // store (say, a clock step on the database) still takes its writes.
    let stale = steward::store::lease::Fence {
        valid_until: std::time::Instant::now() - Duration::from_secs(1),
        ..new.clone()
    };
    r.recovery.set_leadership(Some(stale));
    let report = r.recovery.round(steward::unix_now()).await;
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("fencing host a1 was not started")),
        "{:?}",
        report.errors
    );
    assert!(
        !marker(&r.dir).exists(),
        "fenced under a lease that ran out"
    );
    assert!(!r.fake.host("a1").forced_down);
    // The control: the current leader carries the same incident to the end, once.
    r.recovery.set_leadership(Some(new));
    let report = settle(&r).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let incidents = r.store.incidents(&[], 10).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].state, IncidentState::Done);
    assert_eq!(r.fake.evacuations_of(&vm), 1);
    assert!(r.fake.host("a1").forced_down);
}
