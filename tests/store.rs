//! Steward's store on both backends: every test runs on SQLite and on MariaDB.
//! MariaDB comes from `STEWARD_TEST_MYSQL_URL` (default `mysql://root@127.0.0.1:3306`); each
//! test makes and drops its own database. No server is a failure, not a skip: the test script
//! starts a private one where none runs.

mod common;

use common::scratch::on_both;
use steward::model::{HostFacts, Source, VmFacts, WeeklyProfile};
use steward::store::DatabaseUrl;
use steward::store::Store;
use steward::store::TelemetryRows;
use steward::telemetry::{HostSample, VmSample};

fn host(name: &str, az: Option<&str>, steal: Option<f64>, at: f64) -> HostSample {
    HostSample {
        host: name.into(),
        facts: HostFacts {
            az: az.map(Into::into),
            steal,
            load5: Some(1.5),
            cpu_use: Some(0.4),
            vcpus: Some(64.0),
            observed_at: at,
            source: Source::Prometheus,
        },
    }
}

fn vm(uuid: &str, host: Option<&str>, role: Option<&str>, at: f64) -> VmSample {
    VmSample {
        uuid: uuid.into(),
        facts: VmFacts {
            host: host.map(Into::into),
            role: role.map(Into::into),
            steal: Some(0.1),
            observed_at: at,
            ..Default::default()
        },
    }
}

/// The versions of sql/sqlite/NNNN_*.sql (the MySQL folder has the same numbers).
fn migration_versions() -> Vec<i64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/sqlite");
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.split('_').next()?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn migrations_apply_once_and_report_status() {
    on_both(|store| async move {
        let before = store.status().await.unwrap();
        assert!(before.applied.is_empty());
        let versions = migration_versions();
        assert_eq!(before.pending.len(), versions.len());
        assert!(store
            .check_current()
            .await
            .unwrap_err()
            .to_string()
            .contains("steward db upgrade"));
        let after = store.upgrade().await.unwrap();
        assert_eq!(after.applied, versions);
        assert!(after.pending.is_empty());
        assert_eq!(
            store.upgrade().await.unwrap(),
            after,
            "a second upgrade changes nothing"
        );
        store.check_current().await.unwrap();
    });
}

#[test]
fn telemetry_round_trips() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        store
            .save_telemetry(
                &[
                    host("a", Some("az1"), Some(0.25), 100.0),
                    host("b", None, None, 100.0),
                ],
                &[vm("u1", Some("a"), Some("web"), 100.0)],
                101.0,
            )
            .await
            .unwrap();
        let v = store.load_view().await.unwrap();
        assert_eq!(
            v.hosts["a"],
            host("a", Some("az1"), Some(0.25), 100.0).facts
        );
        assert_eq!(v.hosts["b"].az, None);
        assert_eq!(v.hosts["b"].steal, None);
        assert_eq!(v.vms["u1"].role.as_deref(), Some("web"));
        assert_eq!(v.vms["u1"].host.as_deref(), Some("a"));
    });
}

#[test]
fn an_older_sample_never_overwrites_a_newer_one_and_membership_is_sticky() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        store
            .save_telemetry(
                &[host("a", Some("az1"), Some(0.3), 200.0)],
                &[vm("u", Some("a"), Some("web"), 200.0)],
                1.0,
            )
            .await
            .unwrap();
        store
            .save_telemetry(
                &[host("a", Some("az9"), Some(0.0), 100.0)],
                &[vm("u", Some("b"), Some("db"), 100.0)],
                2.0,
            )
            .await
            .unwrap();
        let v = store.load_view().await.unwrap();
        assert_eq!(v.hosts["a"].steal, Some(0.3));
        assert_eq!(v.hosts["a"].az.as_deref(), Some("az1"));
        assert_eq!(v.hosts["a"].observed_at, 200.0);
        assert_eq!(v.vms["u"].host.as_deref(), Some("a"));
        // Newer without AZ or role: measurements replaced, membership kept.
        store
            .save_telemetry(
                &[host("a", None, Some(0.05), 300.0)],
                &[vm("u", None, None, 300.0)],
                3.0,
            )
            .await
            .unwrap();
        let v = store.load_view().await.unwrap();
        assert_eq!(v.hosts["a"].steal, Some(0.05));
        assert_eq!(v.hosts["a"].az.as_deref(), Some("az1"));
        assert_eq!(v.vms["u"].role.as_deref(), Some("web"));
        assert_eq!(v.vms["u"].host.as_deref(), Some("a"));
    });
}

#[test]
fn pushes_sharing_one_statement_are_applied_in_order_as_if_written_one_by_one() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        // One host and one VM in every push of the batch: the same keys, several times, in
        // one multi-row upsert.
        let pushes = [
            (
                host("a", Some("az1"), Some(0.3), 200.0),
                vm("u", Some("a"), Some("web"), 200.0),
            ),
            (
                host("a", Some("az9"), Some(0.0), 100.0),
                vm("u", Some("b"), Some("db"), 100.0),
            ),
            (
                host("a", None, Some(0.05), 300.0),
                vm("u", None, None, 300.0),
            ),
            (
                host("b", Some("az2"), Some(0.2), 50.0),
                vm("w", Some("b"), None, 50.0),
            ),
        ];
        let rows: Vec<TelemetryRows<'_>> = pushes
            .iter()
            .enumerate()
            .map(|(i, (h, v))| TelemetryRows {
                hosts: std::slice::from_ref(h),
                vms: std::slice::from_ref(v),
                now: i as f64,
            })
            .collect();
        store.save_telemetry_batch(&rows).await.unwrap();
        let v = store.load_view().await.unwrap();
        assert_eq!(v.hosts["a"].steal, Some(0.05), "the newest reading wins");
        assert_eq!(v.hosts["a"].observed_at, 300.0);
        assert_eq!(
            v.hosts["a"].az.as_deref(),
            Some("az1"),
            "the older az9 never applied"
        );
        assert_eq!(v.vms["u"].host.as_deref(), Some("a"));
        assert_eq!(
            v.vms["u"].role.as_deref(),
            Some("web"),
            "membership is sticky"
        );
        assert_eq!(v.hosts["b"].az.as_deref(), Some("az2"));
        assert_eq!(v.vms["w"].host.as_deref(), Some("b"));
    });
}

#[test]
fn large_pushes_span_several_statements() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let hosts: Vec<HostSample> = (0..1_234)
            .map(|i| host(&format!("h{i:05}"), Some("az1"), Some(0.01), 10.0))
            .collect();
        let vms: Vec<VmSample> = (0..2_345)
            .map(|i| vm(&format!("vm-{i}"), Some("h00001"), Some("web"), 10.0))
            .collect();
        store.save_telemetry(&hosts, &vms, 11.0).await.unwrap();
        let v = store.load_view().await.unwrap();
        assert_eq!(v.hosts.len(), 1_234);
        assert_eq!(v.vms.len(), 2_345);
    });
}

#[test]
fn weekly_profiles_are_replaced_whole_and_survive_a_reload() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        let mut values = vec![0.01; 168];
        values[20] = 0.31;
        values[5] = f64::NAN; // an hour with no history
        let profile = WeeklyProfile {
            values,
            weeks: 4,
            computed_at: 1_795_000_000.0,
        };
        let first = [
            ("cmp-a".to_string(), profile.clone()),
            ("gone".to_string(), profile.clone()),
        ]
        .into();
        store.save_weekly("host_steal", &first).await.unwrap();
        let second = [("cmp-a".to_string(), profile.clone())].into();
        store.save_weekly("host_steal", &second).await.unwrap();
        store
            .save_weekly(
                "role_demand",
                &[("web".to_string(), profile.clone())].into(),
            )
            .await
            .unwrap();
        let w = store.load_view().await.unwrap().weekly;
        assert_eq!(
            w.host_steal.keys().collect::<Vec<_>>(),
            ["cmp-a"],
            "the old rollup is gone"
        );
        let got = &w.host_steal["cmp-a"];
        assert_eq!(got.at(20), Some(0.31));
        assert_eq!(got.at(5), None);
        assert_eq!((got.weeks, got.computed_at), (4, 1_795_000_000.0));
        assert!(w.role_demand.contains_key("web"));
    });
}

#[test]
fn an_unreachable_database_is_named_without_its_password() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(Store::connect(
            &DatabaseUrl("mysql://steward:hunter2@127.0.0.1:1/steward".into()),
            1,
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mysql://steward:***@127.0.0.1:1/steward"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn the_repair_journal_keeps_before_images_and_runs() {
    on_both(|store| async move {
        store.upgrade().await.unwrap();
        assert!(store.repair_unfinished_run().await.unwrap().is_none());
        store
            .repair_run_start("repair-1", 100.0, "{\"nodes\":[]}")
            .await
            .unwrap();
        // A flavor text as Nova wrote it, larger than a VARCHAR page and with non-ASCII.
        let before = format!(
            "{{\"cur\": {{\"name\": \"Fußball\", \"pad\": \"{}\"}}}}",
            "x".repeat(70_000)
        );
        let a = store
            .repair_journal_before(
                "repair-1",
                "node-a",
                "rewrite_instance_flavor",
                "instance i1",
                Some(before.as_bytes()),
                Some(b"meant"),
                101.0,
            )
            .await
            .unwrap();
        let b = store
            .repair_journal_before(
                "repair-1",
                "node-b",
                "set_custom_only_inventory",
                "provider p1",
                Some(b"{}"),
                None,
                102.0,
            )
            .await
            .unwrap();
        assert_ne!(a, b);
        store
            .repair_journal_mark(&a, "done", Some(b"after"), None)
            .await
            .unwrap();
        // Before it is marked, an entry holds what the write meant to leave.
        let j = store.repair_journal("repair-1").await.unwrap();
        assert_eq!(j[0].after_image.as_deref(), Some(&b"after"[..]));
        assert_eq!(
            (j[1].state.as_str(), j[1].after_image.as_deref()),
            ("pending", None)
        );
        store
            .repair_journal_fail(&b, "409 placement.concurrent_update")
            .await
            .unwrap();
        // A killed run is still running: the next apply resumes it.
        assert_eq!(
            store.repair_unfinished_run().await.unwrap().unwrap().id,
            "repair-1"
        );
        let j = store.repair_journal("repair-1").await.unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(
            (j[0].entry.as_str(), j[0].state.as_str()),
            (a.as_str(), "done")
        );
        assert_eq!(j[0].before_image.as_deref(), Some(before.as_bytes()));
        assert_eq!(j[0].after_image.as_deref(), Some(&b"after"[..]));
        assert_eq!(j[1].state, "failed");
        assert_eq!(
            j[1].message.as_deref(),
            Some("409 placement.concurrent_update")
        );
        assert!(j[0].id < j[1].id, "journal order is write order");
        // The report of a 2,000-node run: one entry per node.
        let node = r#"{"node":"4f1c2d3e-0000-4000-8000-000000000000","result":"repaired","steps_done":5,"error":null},"#;
        let summary = format!("{{\"nodes\":[{}{{}}]}}", node.repeat(2_000));
        store
            .repair_run_finish("repair-1", "ok", 103.0, &summary)
            .await
            .unwrap();
        let run = store.repair_run("repair-1").await.unwrap().unwrap();
        assert_eq!((run.status.as_str(), run.finished_at), ("ok", Some(103.0)));
        assert_eq!(run.summary.as_deref(), Some(summary.as_str()));
        assert!(store.repair_unfinished_run().await.unwrap().is_none());
        assert!(store.repair_run("repair-2").await.unwrap().is_none());
    });
}
