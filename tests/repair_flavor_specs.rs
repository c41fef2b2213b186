//! A rollback of a flavor's extra specs: the values go back through Nova's API (wiremock
//! answering as Nova does), then the rows of `nova_api.flavor_extra_specs` (MariaDB, the
//! columns and types of Nova's schema) get their `created_at` and `updated_at` back, guarded by
//! the values. A journal without the rows (an older steward, or no access to the table)
//! restores the values alone and says which flavor kept new timestamps.

mod openstack_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use openstack_support::*;
use serde_json::json;
use sqlx::{Connection, Row};
use steward::novadb::{ExtraSpecRow, NovaDb};
use steward::openstack::ironic::Ironic;
use steward::openstack::nova::Nova;
use steward::openstack::placement::Placement;
use steward::peerclock::PeerClock;
use steward::repair::rollback::restore;
use steward::repair::steps::{parse_flavor_specs_image, FlavorSpecsImage};
use steward::repair::{Clients, RepairError};
use steward::store::JournalEntry;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FLAVOR: &str = "7c2a0e5e-3b1c-4a0e-9d5f-0b1e2c3d4f50";
const CREATED: &str = "2021-03-04 05:06:07";
const UPDATED: &str = "2022-08-09 10:11:12";

fn server() -> String {
    std::env::var("STEWARD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// A private `nova_api` with one flavor: CUSTOM_GOLD=1 (never updated) and DISK_GB=371
/// (updated once), as Nova's schema holds them.
struct ApiDb {
    name: String,
}

impl ApiDb {
    async fn create() -> ApiDb {
        let name = format!("steward_test_{}_api", uuid::Uuid::new_v4().simple());
        let db = ApiDb { name };
        let mut c = db.root("mysql").await;
        sqlx::query(&format!("CREATE DATABASE {}", db.name))
            .execute(&mut c)
            .await
            .unwrap();
        for s in [
            "CREATE TABLE cell_mappings (id INT AUTO_INCREMENT PRIMARY KEY, \
             uuid VARCHAR(36) NOT NULL, name VARCHAR(255), database_connection TEXT)"
                .to_string(),
            "CREATE TABLE request_specs (id INT AUTO_INCREMENT PRIMARY KEY, \
             instance_uuid VARCHAR(36) NOT NULL, spec MEDIUMTEXT NOT NULL, updated_at DATETIME)"
                .to_string(),
            "CREATE TABLE flavors (created_at DATETIME, updated_at DATETIME, \
             id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NOT NULL, \
             flavorid VARCHAR(255) NOT NULL, UNIQUE (flavorid))"
                .to_string(),
            "CREATE TABLE flavor_extra_specs (created_at DATETIME, updated_at DATETIME, \
             id INT AUTO_INCREMENT PRIMARY KEY, flavor_id INT NOT NULL, \
             `key` VARCHAR(255) NOT NULL, value VARCHAR(255), \
             UNIQUE (flavor_id, `key`), FOREIGN KEY (flavor_id) REFERENCES flavors (id)) \
             CHARSET=utf8"
                .to_string(),
            format!(
                "INSERT INTO flavors (created_at, name, flavorid) VALUES \
                 ('{CREATED}', 'bm.other', 'other'), ('{CREATED}', 'bm.gold', '{FLAVOR}')"
            ),
            format!(
                "INSERT INTO flavor_extra_specs (created_at, updated_at, flavor_id, `key`, value) \
                 VALUES ('{CREATED}', NULL, 2, 'resources:CUSTOM_GOLD', '1'), \
                 ('{CREATED}', '{UPDATED}', 2, 'resources:DISK_GB', '371'), \
                 ('{CREATED}', NULL, 1, 'resources:DISK_GB', '371')"
            ),
        ] {
            sqlx::query(&s).execute(&mut db.conn().await).await.unwrap();
        }
        db
    }

    async fn root(&self, db: &str) -> sqlx::MySqlConnection {
        sqlx::MySqlConnection::connect(&format!("{}/{db}", server()))
            .await
            .unwrap_or_else(|e| panic!("MariaDB at {} is needed ({e})", server()))
    }

    async fn conn(&self) -> sqlx::MySqlConnection {
        self.root(&self.name).await
    }

    fn url(&self) -> String {
        format!("{}/{}", server(), self.name)
    }

    async fn exec(&self, q: &str) {
        sqlx::query(q)
            .execute(&mut self.conn().await)
            .await
            .unwrap();
    }

    /// Every column of every row, as text, in id order.
    async fn rows(&self) -> Vec<Vec<Option<String>>> {
        sqlx::query(
            "SELECT CAST(created_at AS CHAR), CAST(updated_at AS CHAR), CAST(id AS CHAR), \
             CAST(flavor_id AS CHAR), `key`, value FROM flavor_extra_specs ORDER BY id",
        )
        .fetch_all(&mut self.conn().await)
        .await
        .unwrap()
        .iter()
        .map(|r| (0..6).map(|i| r.get::<Option<String>, _>(i)).collect())
        .collect()
    }

    /// What Nova's API does to the rows: a repair sets DISK_GB=0 and adds VCPU=0, its rollback
    /// sets DISK_GB=371 again and deletes VCPU; each write stamps `updated_at`.
    async fn repaired_then_values_restored(&self) {
        self.exec(
            "UPDATE flavor_extra_specs SET value = '0', updated_at = UTC_TIMESTAMP() \
             WHERE flavor_id = 2 AND `key` = 'resources:DISK_GB'",
        )
        .await;
        self.exec(
            "INSERT INTO flavor_extra_specs (created_at, flavor_id, `key`, value) \
             VALUES (UTC_TIMESTAMP(), 2, 'resources:VCPU', '0')",
        )
        .await;
        self.exec(
            "UPDATE flavor_extra_specs SET value = '371', updated_at = '2030-01-01 00:00:00' \
             WHERE flavor_id = 2 AND `key` = 'resources:DISK_GB'",
        )
        .await;
        self.exec("DELETE FROM flavor_extra_specs WHERE `key` = 'resources:VCPU'")
            .await;
    }

    async fn drop(self) {
        let mut c = self.root("mysql").await;
        sqlx::query(&format!("DROP DATABASE {}", self.name))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

/// The keys the repair set and what they held before (VCPU: no such key).
fn before_values() -> BTreeMap<String, Option<String>> {
    BTreeMap::from([
        ("resources:DISK_GB".to_string(), Some("371".to_string())),
        ("resources:VCPU".to_string(), None),
    ])
}

async fn clients(mock: &MockServer, db: NovaDb) -> Clients {
    mount_keystone(mock, &[TOKEN_1]).await;
    let s = session(cloud(&mock.uri(), "steward", &[]));
    Clients {
        ironic: Ironic::new(s.clone()),
        placement: Placement::new(s.clone()),
        nova: Nova::new(s),
        db,
        concurrency: 1,
        clock: Arc::new(PeerClock::new()),
    }
}

/// Nova's API answering the rollback's two calls.
async fn mount_nova(mock: &MockServer) {
    let specs = format!("/v2.1/flavors/{FLAVOR}/os-extra_specs");
    Mock::given(method("POST"))
        .and(path(specs.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"extra_specs": {"resources:DISK_GB": "371"}})),
        )
        .mount(mock)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{specs}/resources:VCPU")))
        .respond_with(ResponseTemplate::new(200))
        .mount(mock)
        .await;
}

fn entry(image: &FlavorSpecsImage) -> JournalEntry {
    JournalEntry {
        id: 1,
        entry: "e-1".into(),
        run_id: "repair-1".into(),
        node: "-".into(),
        action: "set_flavor_extra_specs".into(),
        object: format!("flavor {FLAVOR}"),
        before_image: Some(serde_json::to_vec(image).unwrap()),
        after_image: Some(br#"{"resources:DISK_GB":"0","resources:VCPU":"0"}"#.to_vec()),
        state: "done".into(),
        at: 0.0,
        message: None,
    }
}

async fn image(db: &NovaDb) -> FlavorSpecsImage {
    let rows = db
        .flavor_extra_spec_rows(FLAVOR, &["resources:DISK_GB", "resources:VCPU"])
        .await
        .unwrap();
    FlavorSpecsImage {
        flavor_id: FLAVOR.into(),
        extra_specs: before_values(),
        rows: Some(rows.into_values().collect()),
    }
}

#[tokio::test]
async fn the_rows_are_read_for_the_keys_asked_and_restamped_only_while_their_values_hold() {
    let api = ApiDb::create().await;
    let db = NovaDb::connect(&api.url(), &BTreeMap::new(), None, 2)
        .await
        .unwrap();
    let rows = db
        .flavor_extra_spec_rows(FLAVOR, &["resources:DISK_GB", "resources:VCPU"])
        .await
        .unwrap();
    assert_eq!(
        rows,
        BTreeMap::from([(
            "resources:DISK_GB".to_string(),
            ExtraSpecRow {
                key: "resources:DISK_GB".into(),
                value: "371".into(),
                created_at: Some(CREATED.into()),
                updated_at: Some(UPDATED.into()),
            }
        )]),
        "the flavor's own row only (not bm.other's), VCPU has none"
    );
    let stamps: Vec<ExtraSpecRow> = rows.into_values().collect();
    let seeded = api.rows().await;
    api.repaired_then_values_restored().await;
    assert_ne!(api.rows().await, seeded);

    // Another writer changed a value since the API restored it: nothing written.
    api.exec("UPDATE flavor_extra_specs SET value = '370' WHERE id = 2")
        .await;
    let changed = api.rows().await;
    assert!(!db
        .restamp_flavor_extra_specs(FLAVOR, &before_values(), &stamps)
        .await
        .unwrap());
    assert_eq!(api.rows().await, changed);
    api.exec("UPDATE flavor_extra_specs SET value = '371' WHERE id = 2")
        .await;
    // A key that had no row has one again: nothing written either.
    api.exec(
        "INSERT INTO flavor_extra_specs (created_at, flavor_id, `key`, value) \
         VALUES (UTC_TIMESTAMP(), 2, 'resources:VCPU', '0')",
    )
    .await;
    assert!(!db
        .restamp_flavor_extra_specs(FLAVOR, &before_values(), &stamps)
        .await
        .unwrap());
    api.exec("DELETE FROM flavor_extra_specs WHERE `key` = 'resources:VCPU'")
        .await;

    // The values as before: every row byte-equal, timestamps included (NULL too).
    assert!(db
        .restamp_flavor_extra_specs(FLAVOR, &before_values(), &stamps)
        .await
        .unwrap());
    assert_eq!(api.rows().await, seeded);
    db.close().await;
    api.drop().await;
}

#[tokio::test]
async fn a_rollback_puts_the_values_back_through_nova_then_the_timestamps() {
    let api = ApiDb::create().await;
    let db = NovaDb::connect(&api.url(), &BTreeMap::new(), None, 2)
        .await
        .unwrap();
    let mock = MockServer::start().await;
    mount_nova(&mock).await;
    let c = clients(&mock, db.clone()).await;
    let before = entry(&image(&db).await);
    let seeded = api.rows().await;
    api.repaired_then_values_restored().await;

    let done = restore(&c, &before, &before).await.unwrap();
    assert_eq!((done.result, done.note), ("restored", None));
    assert_eq!(api.rows().await, seeded, "byte-equal, updated_at included");
    // The values went through Nova's API: DISK_GB set, VCPU deleted.
    let posted = requests_to(&mock, &format!("/v2.1/flavors/{FLAVOR}/os-extra_specs")).await;
    assert_eq!(posted.len(), 1);
    assert_eq!(
        json(&posted[0]),
        json!({"extra_specs": {"resources:DISK_GB": "371"}})
    );
    assert_eq!(
        requests_to(
            &mock,
            &format!("/v2.1/flavors/{FLAVOR}/os-extra_specs/resources:VCPU")
        )
        .await
        .len(),
        1
    );

    // Run again (idempotent): still restored, still byte-equal.
    let again = restore(&c, &before, &before).await.unwrap();
    assert_eq!(again.result, "restored");
    assert_eq!(api.rows().await, seeded);

    // Someone changed the value between Nova's answer and the timestamps: not restored, and
    // the error says to run the rollback again.
    api.exec("UPDATE flavor_extra_specs SET value = '1' WHERE id = 2")
        .await;
    match restore(&c, &before, &before).await {
        Err(RepairError::Gone(m)) => assert!(m.contains("run it again"), "{m}"),
        other => panic!("expected Gone, got {other:?}"),
    }
    db.close().await;
    api.drop().await;
}

#[tokio::test]
async fn without_the_rows_the_values_go_back_and_the_note_names_the_flavor() {
    let api = ApiDb::create().await;
    let db = NovaDb::connect(&api.url(), &BTreeMap::new(), None, 2)
        .await
        .unwrap();
    let mock = MockServer::start().await;
    mount_nova(&mock).await;
    let c = clients(&mock, db.clone()).await;
    // A journal written before the rows were kept: flavor id and values only.
    let old = FlavorSpecsImage {
        flavor_id: FLAVOR.into(),
        extra_specs: before_values(),
        rows: None,
    };
    let bytes = serde_json::to_vec(&old).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        json!({"flavor_id": FLAVOR,
               "extra_specs": {"resources:DISK_GB": "371", "resources:VCPU": null}}),
        "the shape older stewards journaled"
    );
    assert_eq!(parse_flavor_specs_image(&bytes), Some(old.clone()));
    api.repaired_then_values_restored().await;
    let after_api = api.rows().await;
    let done = restore(&c, &entry(&old), &entry(&old)).await.unwrap();
    assert_eq!(done.result, "restored");
    let note = done.note.expect("a note, not an error");
    assert!(
        note.contains(FLAVOR) && note.contains("keep new created_at/updated_at"),
        "{note}"
    );
    assert_eq!(
        api.rows().await,
        after_api,
        "timestamps left as Nova wrote them"
    );
    assert_eq!(
        requests_to(&mock, &format!("/v2.1/flavors/{FLAVOR}/os-extra_specs"))
            .await
            .len(),
        1,
        "the values still went back"
    );

    // An account without a grant on flavor_extra_specs: reading the rows is refused as
    // "no access" (the repair then journals the values alone), not as an outage.
    let user = format!("stw_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut root = api.root("mysql").await;
    for host in ["%", "localhost"] {
        for q in [
            format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'"),
            format!(
                "GRANT SELECT ON {}.cell_mappings TO '{user}'@'{host}'",
                api.name
            ),
            format!(
                "GRANT SELECT, UPDATE ON {}.request_specs TO '{user}'@'{host}'",
                api.name
            ),
        ] {
            sqlx::query(&q).execute(&mut root).await.unwrap();
        }
    }
    let hostport = server()
        .trim_start_matches("mysql://")
        .rsplit('@')
        .next()
        .unwrap()
        .to_string();
    let limited = NovaDb::connect(
        &format!("mysql://{user}:pw@{hostport}/{}", api.name),
        &BTreeMap::new(),
        None,
        2,
    )
    .await
    .unwrap();
    let refused = limited
        .flavor_extra_spec_rows(FLAVOR, &["resources:DISK_GB"])
        .await
        .unwrap_err();
    assert!(refused.is_no_access(), "{refused}");
    // And a journal with rows, rolled back by that account: values back, a note.
    let c = clients(&mock, limited.clone()).await;
    let with_rows = entry(&image(&db).await);
    let done = restore(&c, &with_rows, &with_rows).await.unwrap();
    assert_eq!(done.result, "restored");
    assert!(
        done.note
            .as_deref()
            .is_some_and(|n| n.contains("may not write")),
        "{:?}",
        done.note
    );
    limited.close().await;
    for host in ["%", "localhost"] {
        sqlx::query(&format!("DROP USER '{user}'@'{host}'"))
            .execute(&mut root)
            .await
            .unwrap();
    }
    db.close().await;
    api.drop().await;
}
