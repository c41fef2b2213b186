//! The inventory repair's Nova database adapter over several cells, on MariaDB: the cells come
//! from the API database's `cell_mappings` (cell0 left out, `mysql+pymysql://` read as
//! `mysql://`), every node and instance is found in its own cell, and a flavor rewrite touches
//! only the cell that holds the instance. The tables carry the columns and types of Nova's
//! schema that steward reads and writes (the full schemas are exercised by
//! tox-compat/tests_functional/test_repair.py, with one cell).

use std::collections::BTreeMap;

use sqlx::Connection;
use steward::novadb::{NovaDb, NovaDbError, Stamp};

const CELL0: &str = "00000000-0000-0000-0000-000000000000";
const CELL1: &str = "6f4a1c7e-1b7a-4b8e-9a1e-0c5d1e2f3a41";
const CELL2: &str = "9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e52";
const N1: &str = "d9d2f6d1-aad4-4c43-ba13-8f64d612d50a";
const N2: &str = "e0a8c7b2-1f3d-4c5e-9a7b-6d5c4b3a2f10";
const I1: &str = "11111111-2222-3333-4444-555555555551";
const I2: &str = "11111111-2222-3333-4444-555555555552";
const GONE: &str = "11111111-2222-3333-4444-555555555553";

fn server() -> String {
    std::env::var("STEWARD_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

struct Dbs {
    names: Vec<String>,
}

impl Dbs {
    async fn create(&mut self, purpose: &str, ddl: &[&str]) -> String {
        let name = format!("steward_test_{}_{purpose}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::MySqlConnection::connect(&format!("{}/mysql", server()))
            .await
            .unwrap_or_else(|e| panic!("MariaDB at {} is needed ({e})", server()));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .unwrap();
        self.names.push(name.clone());
        let mut db = sqlx::MySqlConnection::connect(&format!("{}/{name}", server()))
            .await
            .unwrap();
        for s in ddl {
            sqlx::query(s).execute(&mut db).await.unwrap();
        }
        name
    }

    async fn drop_all(self) {
        let mut c = sqlx::MySqlConnection::connect(&format!("{}/mysql", server()))
            .await
            .unwrap();
        for n in self.names {
            sqlx::query(&format!("DROP DATABASE {n}"))
                .execute(&mut c)
                .await
                .unwrap();
        }
    }
}

const CELL_DDL: &[&str] = &[
    "CREATE TABLE compute_nodes (id INT AUTO_INCREMENT PRIMARY KEY, \
     hypervisor_hostname VARCHAR(255), deleted INT DEFAULT 0)",
    "CREATE TABLE instances (id INT AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(36) NOT NULL, \
     node VARCHAR(255), vm_state VARCHAR(255), task_state VARCHAR(255), deleted INT DEFAULT 0)",
    "CREATE TABLE instance_extra (id INT AUTO_INCREMENT PRIMARY KEY, \
     instance_uuid VARCHAR(36) NOT NULL, flavor TEXT, updated_at DATETIME, deleted INT DEFAULT 0)",
];

async fn seed_cell(db: &str, node: &str, instance: &str, flavor: &str, extra: &[&str]) {
    let mut c = sqlx::MySqlConnection::connect(&format!("{}/{db}", server()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO compute_nodes (hypervisor_hostname) VALUES (?)")
        .bind(node)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO instances (uuid, node, vm_state) VALUES (?, ?, 'active')")
        .bind(instance)
        .bind(node)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO instance_extra (instance_uuid, flavor) VALUES (?, ?)")
        .bind(instance)
        .bind(flavor)
        .execute(&mut c)
        .await
        .unwrap();
    for s in extra {
        sqlx::query(s).execute(&mut c).await.unwrap();
    }
}

async fn flavor_in(db: &str, instance: &str) -> Option<String> {
    let mut c = sqlx::MySqlConnection::connect(&format!("{}/{db}", server()))
        .await
        .unwrap();
    sqlx::query_scalar("SELECT flavor FROM instance_extra WHERE instance_uuid = ?")
        .bind(instance)
        .fetch_optional(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_cells_each_node_and_instance_in_its_own() {
    let mut dbs = Dbs { names: vec![] };
    let a = dbs.create("cell1", CELL_DDL).await;
    let b = dbs.create("cell2", CELL_DDL).await;
    seed_cell(&a, N1, I1, r#"{"cur": "one"}"#, &[]).await;
    // A deleted instance on N2 (its instance_extra row kept, as Nova's soft delete does).
    let deleted = [
        format!("INSERT INTO instances (uuid, node, vm_state, deleted) VALUES ('{GONE}', '{N2}', 'deleted', 3)"),
        format!("INSERT INTO instance_extra (instance_uuid, flavor, deleted) VALUES ('{GONE}', 'old', 3)"),
    ];
    let deleted: Vec<&str> = deleted.iter().map(String::as_str).collect();
    seed_cell(&b, N2, I2, r#"{"cur": "two"}"#, &deleted).await;
    let host = server().trim_start_matches("mysql://").to_string();
    let mapping = |db: &str| format!("mysql+pymysql://{host}/{db}?charset=utf8");
    let api_ddl = [
        "CREATE TABLE cell_mappings (id INT AUTO_INCREMENT PRIMARY KEY, uuid VARCHAR(36) NOT NULL, \
         name VARCHAR(255), transport_url TEXT, database_connection TEXT)".to_string(),
        "CREATE TABLE request_specs (id INT AUTO_INCREMENT PRIMARY KEY, \
         instance_uuid VARCHAR(36) NOT NULL, spec MEDIUMTEXT NOT NULL)".to_string(),
        // cell0 points nowhere steward could connect: it must be left out.
        format!("INSERT INTO cell_mappings (uuid, name, database_connection) VALUES \
                 ('{CELL0}', 'cell0', 'mysql+pymysql://nobody@127.0.0.1:1/nova_cell0'), \
                 ('{CELL1}', 'cell1', '{}'), ('{CELL2}', 'cell2', '{}')", mapping(&a), mapping(&b)),
    ];
    let api_ddl: Vec<&str> = api_ddl.iter().map(String::as_str).collect();
    let api = dbs.create("api", &api_ddl).await;
    let api_url = format!("{}/{api}", server());

    let nova = NovaDb::connect(&api_url, &BTreeMap::new(), None, 2)
        .await
        .unwrap();
    let cells: Vec<(&str, &str)> = nova
        .cells()
        .iter()
        .map(|c| (c.uuid.as_str(), c.name.as_str()))
        .collect();
    assert_eq!(cells, [(CELL1, "cell1"), (CELL2, "cell2")]);
    let node_cells = nova.node_cells().await.unwrap();
    assert_eq!(
        node_cells,
        BTreeMap::from([
            (N1.to_string(), CELL1.to_string()),
            (N2.to_string(), CELL2.to_string())
        ])
    );
    let found: Vec<(String, String, String)> = nova
        .instances_on_nodes(&[N1.into(), N2.into()])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.cell, r.uuid, r.node))
        .collect();
    assert_eq!(
        found,
        [
            (CELL1.into(), I1.into(), N1.into()),
            (CELL2.into(), I2.into(), N2.into())
        ],
        "each instance in its own cell, the deleted one left out"
    );
    // An instance is read and rewritten in its own cell only.
    assert_eq!(
        nova.instance_flavor(CELL2, I2).await.unwrap().as_deref(),
        Some(r#"{"cur": "two"}"#)
    );
    assert_eq!(nova.instance_flavor(CELL1, I2).await.unwrap(), None);
    assert!(nova
        .swap_instance_flavor(
            CELL2,
            I2,
            r#"{"cur": "two"}"#,
            r#"{"cur": "TWO"}"#,
            &Stamp::Now
        )
        .await
        .unwrap());
    let row = nova.instance_flavor_row(CELL2, I2).await.unwrap().unwrap();
    assert!(
        row.updated_at.is_some(),
        "a repair's write stamps updated_at"
    );
    // A rollback puts updated_at back exactly, NULL included.
    for stamp in [Some("2020-01-02 03:04:05".to_string()), None] {
        assert!(nova
            .swap_instance_flavor(
                CELL2,
                I2,
                r#"{"cur": "TWO"}"#,
                r#"{"cur": "TWO"}"#,
                &Stamp::Exactly(stamp.clone())
            )
            .await
            .unwrap());
        let row = nova.instance_flavor_row(CELL2, I2).await.unwrap().unwrap();
        assert_eq!(row.updated_at, stamp);
    }
    assert_eq!(
        flavor_in(&b, I2).await.as_deref(),
        Some(r#"{"cur": "TWO"}"#)
    );
    assert_eq!(
        flavor_in(&a, I1).await.as_deref(),
        Some(r#"{"cur": "one"}"#)
    );
    assert_eq!(flavor_in(&b, GONE).await.as_deref(), Some("old"));
    nova.close().await;

    // --cell by name connects to that cell only; an unknown cell names the known ones.
    let only = NovaDb::connect(&api_url, &BTreeMap::new(), Some("cell2"), 2)
        .await
        .unwrap();
    assert_eq!(only.cells().len(), 1);
    assert_eq!(only.cells()[0].uuid, CELL2);
    assert_eq!(
        only.node_cells().await.unwrap(),
        BTreeMap::from([(N2.to_string(), CELL2.to_string())])
    );
    only.close().await;
    match NovaDb::connect(&api_url, &BTreeMap::new(), Some("cell9"), 2).await {
        Err(NovaDbError::UnknownCell(c, known)) => {
            assert_eq!(c, "cell9");
            assert!(
                known.contains("cell1") && known.contains("cell2"),
                "{known}"
            );
        }
        other => panic!("cell9 is not a cell: {:?}", other.map(|_| ())),
    }
    dbs.drop_all().await;
}
