//! The telemetry writer on both backends: concurrent pushes share commits, each push is
//! answered only once its own samples are in the database, and a push the database refuses
//! fails alone (its neighbours in the same commit are written without it).

mod common;

use std::sync::Arc;

use common::scratch::on_both_with_url;
use sqlx::Connection;
use steward::model::{HostFacts, VmFacts};
use steward::store::telemetry_writer::{Push, TelemetryWriter};
use steward::store::Backend;
use steward::telemetry::{HostSample, VmSample};

fn push(host: &str, vms: &[&str], now: f64) -> Arc<Push> {
    Arc::new(Push {
        hosts: vec![HostSample {
            host: host.into(),
            facts: HostFacts {
                az: Some("az1".into()),
                steal: Some(0.2),
                observed_at: now,
                ..Default::default()
            },
        }],
        vms: vms
            .iter()
            .map(|uuid| VmSample {
                uuid: (*uuid).into(),
                facts: VmFacts {
                    host: Some(host.into()),
                    steal: Some(0.1),
                    observed_at: now,
                    ..Default::default()
                },
            })
            .collect(),
        now,
    })
}

#[test]
fn concurrent_pushes_are_all_kept() {
    on_both_with_url(|store, _, _| async move {
        store.upgrade().await.unwrap();
        let writer = TelemetryWriter::spawn(store.clone());
        let pushes: Vec<Arc<Push>> = (0..60)
            .map(|i| {
                let a = format!("vm-{i}-a");
                let b = format!("vm-{i}-b");
                push(&format!("cmp-{i:02}"), &[&a, &b], 100.0 + f64::from(i))
            })
            .collect();
        let mut saves = tokio::task::JoinSet::new();
        for p in &pushes {
            let (writer, p) = (writer.clone(), p.clone());
            saves.spawn(async move { writer.save(p).await });
        }
        while let Some(answer) = saves.join_next().await {
            let answer = answer.unwrap();
            assert!(answer.is_ok(), "{answer:?}");
        }
        let view = store.load_view().await.unwrap();
        assert_eq!(view.hosts.len(), 60);
        assert_eq!(view.vms.len(), 120);
        assert_eq!(view.vms["vm-59-b"].host.as_deref(), Some("cmp-59"));
    });
}

/// A trigger that refuses one VM's sample, as a database refuses a row it cannot take.
async fn refuse_vm(backend: Backend, url: &str, uuid: &str) {
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query(&format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON vm_telemetry WHEN NEW.uuid = '{uuid}' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            ))
            .execute(&mut c)
            .await
            .unwrap();
        }
        Backend::MySql => {
            let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
            sqlx::raw_sql(&format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON vm_telemetry FOR EACH ROW \
                 IF NEW.uuid = '{uuid}' THEN \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF"
            ))
            .execute(&mut c)
            .await
            .unwrap();
        }
    }
}

#[test]
fn a_refused_push_fails_alone_and_its_neighbours_are_kept() {
    on_both_with_url(|store, backend, url| async move {
        store.upgrade().await.unwrap();
        refuse_vm(backend, &url, "vm-bad").await;
        let writer = TelemetryWriter::spawn(store.clone());
        let (good1, bad, good2) = (
            push("cmp-1", &["vm-1"], 10.0),
            push("cmp-2", &["vm-bad"], 10.0),
            push("cmp-3", &["vm-3"], 10.0),
        );
        // Queued together before the writer runs: one commit would hold all three.
        let (a, b, c) = tokio::join!(writer.save(good1), writer.save(bad), writer.save(good2));
        assert!(a.is_ok(), "{a:?}");
        assert!(c.is_ok(), "{c:?}");
        let refused = b.expect_err("the refused push fails").to_string();
        assert!(refused.contains("refused by the test"), "{refused}");
        let view = store.load_view().await.unwrap();
        let mut hosts: Vec<&str> = view.hosts.keys().collect();
        hosts.sort_unstable();
        assert_eq!(
            hosts,
            ["cmp-1", "cmp-3"],
            "nothing of the refused push is kept"
        );
        assert!(view.vms.contains_key("vm-1") && view.vms.contains_key("vm-3"));
        assert!(!view.vms.contains_key("vm-bad"));
    });
}
