//! sqlx access to Nova's databases: the API database (cell mappings, request specs, the
//! timestamps of flavor extra specs) and each cell database (instances and their
//! `instance_extra.flavor`). Adapter only: it reads rows and writes what it is given, each
//! write a compare-and-swap in one transaction.
//!
//! Cell database URLs come from the API database's `cell_mappings.database_connection` (oslo.db
//! form, `mysql+pymysql://...`, turned into `mysql://...` without its query), unless
//! `[repair] cell_databases` names a URL for the cell (by name or uuid): steward may reach the
//! databases by another address than Nova's own services do.

pub mod extra_specs;
pub mod flavor;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::Row;

use crate::peerclock::{Peer, PeerClock, Wait};

pub use extra_specs::ExtraSpecRow;
pub use flavor::{FlavorPrimitive, InstanceFlavors, RequestSpecPrimitive};

/// Cell0 holds only instances that were never scheduled: none of them is on a node.
pub const CELL0_UUID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, thiserror::Error)]
pub enum NovaDbError {
    #[error("cannot connect to Nova's {what} database {url}: {source}; check [repair] {key} and that the server answers")]
    Connect {
        what: String,
        url: String,
        key: String,
        source: sqlx::Error,
    },
    #[error("cell {cell}: database_connection {url:?} is not a MySQL URL steward can use; set [repair] cell_databases.{cell} = \"mysql://USER:PASSWORD@HOST/DB\"")]
    CellUrl { cell: String, url: String },
    #[error("Nova's {what} database: {source}")]
    Sql { what: String, source: sqlx::Error },
    #[error("unknown cell {0}; cells in cell_mappings: {1}")]
    UnknownCell(String, String),
}

fn sql(what: &str) -> impl FnOnce(sqlx::Error) -> NovaDbError + '_ {
    move |source| NovaDbError::Sql {
        what: what.to_string(),
        source,
    }
}

/// `mysql+pymysql://u:p@h:3306/nova?charset=utf8` -> `mysql://u:p@h:3306/nova`. Only MySQL
/// dialects are accepted (Nova on PostgreSQL or SQLite is not a production setup steward knows).
pub fn cell_url(oslo_db_url: &str) -> Option<String> {
    let (scheme, rest) = oslo_db_url.split_once("://")?;
    let dialect = scheme.split('+').next()?;
    if dialect != "mysql" && dialect != "mariadb" {
        return None;
    }
    let rest = rest.split('?').next()?;
    if rest.is_empty() {
        return None;
    }
    Some(format!("mysql://{rest}"))
}

/// One cell and its pool.
#[derive(Debug, Clone)]
pub struct Cell {
    pub uuid: String,
    pub name: String,
    pub url: String,
    pool: MySqlPool,
}

/// An instance on a node, with its embedded flavors as Nova stored them.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub cell: String,
    pub uuid: String,
    pub node: String,
    pub vm_state: Option<String>,
    pub task_state: Option<String>,
    /// `instance_extra.flavor`, the text Nova wrote (None when the row has none).
    pub flavor: Option<String>,
}

/// A row's text and its `updated_at` (`YYYY-MM-DD HH:MM:SS`, None when NULL).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowImage {
    pub text: String,
    pub updated_at: Option<String>,
}

/// What a write sets `updated_at` to: now (a repair's write, as Nova's own would), or exactly
/// a value read before (a rollback, byte-equal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stamp {
    Now,
    Exactly(Option<String>),
}

type MyQuery<'q> = sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>;

impl Stamp {
    fn sql(&self) -> &'static str {
        match self {
            Stamp::Now => "UTC_TIMESTAMP()",
            Stamp::Exactly(_) => "?",
        }
    }

    fn bind<'q>(&self, q: MyQuery<'q>) -> MyQuery<'q> {
        match self {
            Stamp::Now => q,
            Stamp::Exactly(v) => q.bind(v.clone()),
        }
    }
}

/// A Placement consumer as Nova's databases know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRow {
    /// A live instance (its `node` and `host`, when set).
    Instance {
        node: Option<String>,
        host: Option<String>,
    },
    /// A migration record (`migrations.uuid`), of `instance`.
    Migration {
        instance: String,
        source_node: Option<String>,
        dest_node: Option<String>,
        status: Option<String>,
        migration_type: Option<String>,
    },
}

/// A compare-and-swap of one text column, in one transaction with the row locked: `select`
/// reads it (`FOR UPDATE`), `update` writes it (`{stamp}` stands for what `updated_at` becomes).
struct Swap {
    what: String,
    select: &'static str,
    update: &'static str,
}

impl Swap {
    async fn run(
        &self,
        pool: &MySqlPool,
        instance: &str,
        expected: &str,
        new: &str,
        stamp: &Stamp,
    ) -> Result<bool, NovaDbError> {
        let what = self.what.as_str();
        let mut tx = pool.begin().await.map_err(sql(what))?;
        let row = sqlx::query(self.select)
            .bind(instance)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql(what))?;
        let current: Option<String> = match row {
            Some(r) => r.try_get(0).map_err(sql(what))?,
            None => None,
        };
        if current.as_deref() != Some(expected) {
            tx.rollback().await.map_err(sql(what))?;
            return Ok(false);
        }
        let q = self.update.replace("{stamp}", stamp.sql());
        stamp
            .bind(sqlx::query(&q).bind(new))
            .bind(instance)
            .execute(&mut *tx)
            .await
            .map_err(sql(what))?;
        tx.commit().await.map_err(sql(what))?;
        Ok(true)
    }
}

/// `?, ?, ...`: one placeholder per value of an `IN` list.
fn marks(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// `q` with every value of an `IN` list bound, in order.
fn bind_all<'q>(q: MyQuery<'q>, values: &'q [String]) -> MyQuery<'q> {
    values.iter().fold(q, |q, v| q.bind(v))
}

fn row_image(
    row: Option<sqlx::mysql::MySqlRow>,
    what: &str,
) -> Result<Option<RowImage>, NovaDbError> {
    let Some(r) = row else { return Ok(None) };
    let text: Option<String> = r.try_get(0).map_err(sql(what))?;
    let updated_at: Option<String> = r.try_get(1).map_err(sql(what))?;
    Ok(text.map(|text| RowImage { text, updated_at }))
}

/// Nova's API database and its cells.
#[derive(Debug, Clone)]
pub struct NovaDb {
    api: MySqlPool,
    cells: Vec<Cell>,
    /// Accounts the time each query waits on the database (a repair run's timings).
    clock: Option<Arc<PeerClock>>,
}

async fn pool(url: &str, max: u32) -> Result<MySqlPool, sqlx::Error> {
    MySqlPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
}

impl NovaDb {
    /// Connect to the API database, read `cell_mappings` and connect to every cell but cell0
    /// (or only `only_cell`, by name or uuid). `overrides`: cell name or uuid -> URL.
    pub async fn connect(
        api_url: &str,
        overrides: &BTreeMap<String, String>,
        only_cell: Option<&str>,
        max_connections: u32,
    ) -> Result<NovaDb, NovaDbError> {
        let api = pool(api_url, max_connections)
            .await
            .map_err(|source| NovaDbError::Connect {
                what: "API".into(),
                url: crate::settings::redact_url(api_url),
                key: "api_database".into(),
                source,
            })?;
        let rows =
            sqlx::query("SELECT uuid, name, database_connection FROM cell_mappings ORDER BY id")
                .fetch_all(&api)
                .await
                .map_err(sql("API"))?;
        let mut mappings = Vec::new();
        for r in rows {
            let uuid: String = r.try_get(0).map_err(sql("API"))?;
            let name: Option<String> = r.try_get(1).map_err(sql("API"))?;
            let conn: Option<String> = r.try_get(2).map_err(sql("API"))?;
            mappings.push((uuid, name.unwrap_or_default(), conn.unwrap_or_default()));
        }
        if let Some(want) = only_cell {
            if !mappings.iter().any(|(u, n, _)| u == want || n == want) {
                let known: Vec<String> = mappings
                    .iter()
                    .map(|(u, n, _)| format!("{n} ({u})"))
                    .collect();
                return Err(NovaDbError::UnknownCell(want.into(), known.join(", ")));
            }
        }
        let mut cells = Vec::new();
        for (uuid, name, conn) in mappings {
            if uuid == CELL0_UUID {
                continue;
            }
            if let Some(want) = only_cell {
                if uuid != want && name != want {
                    continue;
                }
            }
            let url = match overrides.get(&name).or_else(|| overrides.get(&uuid)) {
                Some(u) => u.clone(),
                None => cell_url(&conn).ok_or_else(|| NovaDbError::CellUrl {
                    cell: if name.is_empty() {
                        uuid.clone()
                    } else {
                        name.clone()
                    },
                    url: crate::settings::redact_url(&conn),
                })?,
            };
            let p = pool(&url, max_connections)
                .await
                .map_err(|source| NovaDbError::Connect {
                    what: format!("cell {name}"),
                    url: crate::settings::redact_url(&url),
                    key: format!("cell_databases.{name}"),
                    source,
                })?;
            cells.push(Cell {
                uuid,
                name,
                url: crate::settings::redact_url(&url),
                pool: p,
            });
        }
        Ok(NovaDb {
            api,
            cells,
            clock: None,
        })
    }

    /// Account every query's wait on `clock`.
    pub fn with_clock(mut self, clock: Arc<PeerClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    fn wait(&self) -> Option<Wait> {
        crate::peerclock::wait(&self.clock, Peer::NovaDb)
    }

    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    fn cell(&self, uuid: &str) -> Result<&Cell, NovaDbError> {
        self.cells.iter().find(|c| c.uuid == uuid).ok_or_else(|| {
            NovaDbError::UnknownCell(
                uuid.into(),
                self.cells
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
    }

    /// Node name (`compute_nodes.hypervisor_hostname`; an Ironic node's uuid) -> the uuid of
    /// the cell that holds it, for every live compute node.
    pub async fn node_cells(&self) -> Result<BTreeMap<String, String>, NovaDbError> {
        let _wait = self.wait();
        let mut out = BTreeMap::new();
        for cell in &self.cells {
            let what = format!("cell {}", cell.name);
            let rows =
                sqlx::query("SELECT hypervisor_hostname FROM compute_nodes WHERE deleted = 0")
                    .fetch_all(&cell.pool)
                    .await
                    .map_err(sql(&what))?;
            for r in rows {
                let node: Option<String> = r.try_get(0).map_err(sql(&what))?;
                if let Some(node) = node {
                    out.insert(node, cell.uuid.clone());
                }
            }
        }
        Ok(out)
    }

    /// Live (not deleted) instances whose `node` is one of `nodes`, in every cell.
    pub async fn instances_on_nodes(
        &self,
        nodes: &[String],
    ) -> Result<Vec<InstanceRow>, NovaDbError> {
        let _wait = self.wait();
        let mut out = Vec::new();
        for cell in &self.cells {
            for chunk in nodes.chunks(500) {
                if chunk.is_empty() {
                    continue;
                }
                let marks = marks(chunk.len());
                let q = format!(
                    "SELECT i.uuid, i.node, i.vm_state, i.task_state, e.flavor \
                     FROM instances i LEFT JOIN instance_extra e \
                       ON e.instance_uuid = i.uuid AND e.deleted = 0 \
                     WHERE i.deleted = 0 AND i.node IN ({marks}) ORDER BY i.uuid"
                );
                let query = bind_all(sqlx::query(&q), chunk);
                let what = format!("cell {}", cell.name);
                let rows = query.fetch_all(&cell.pool).await.map_err(sql(&what))?;
                for r in rows {
                    out.push(InstanceRow {
                        cell: cell.uuid.clone(),
                        uuid: r.try_get(0).map_err(sql(&what))?,
                        node: r
                            .try_get::<Option<String>, _>(1)
                            .map_err(sql(&what))?
                            .unwrap_or_default(),
                        vm_state: r.try_get(2).map_err(sql(&what))?,
                        task_state: r.try_get(3).map_err(sql(&what))?,
                        flavor: r.try_get(4).map_err(sql(&what))?,
                    });
                }
            }
        }
        Ok(out)
    }

    /// `request_specs.spec` by instance uuid, for the instances that have one.
    pub async fn request_specs(
        &self,
        instances: &[String],
    ) -> Result<BTreeMap<String, String>, NovaDbError> {
        let _wait = self.wait();
        let mut out = BTreeMap::new();
        for chunk in instances.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let marks = marks(chunk.len());
            let q = format!(
                "SELECT instance_uuid, spec FROM request_specs WHERE instance_uuid IN ({marks})"
            );
            let query = bind_all(sqlx::query(&q), chunk);
            for r in query.fetch_all(&self.api).await.map_err(sql("API"))? {
                let uuid: String = r.try_get(0).map_err(sql("API"))?;
                let spec: String = r.try_get(1).map_err(sql("API"))?;
                out.insert(uuid, spec);
            }
        }
        Ok(out)
    }

    /// The current `instance_extra.flavor` of an instance.
    pub async fn instance_flavor(
        &self,
        cell: &str,
        instance: &str,
    ) -> Result<Option<String>, NovaDbError> {
        let row = self.instance_flavor_row(cell, instance).await?;
        Ok(row.map(|r| r.text))
    }

    /// The current `instance_extra.flavor` of an instance with the row's `updated_at` (what a
    /// byte-equal rollback puts back).
    pub async fn instance_flavor_row(
        &self,
        cell: &str,
        instance: &str,
    ) -> Result<Option<RowImage>, NovaDbError> {
        let _wait = self.wait();
        let c = self.cell(cell)?;
        let what = format!("cell {}", c.name);
        let row = sqlx::query(
            "SELECT flavor, CAST(updated_at AS CHAR) FROM instance_extra \
             WHERE instance_uuid = ? AND deleted = 0",
        )
        .bind(instance)
        .fetch_optional(&c.pool)
        .await
        .map_err(sql(&what))?;
        row_image(row, &what)
    }

    /// Write `new` as the instance's `instance_extra.flavor` if it still reads `expected`; in
    /// one transaction with the row locked. False (nothing written) when it changed meanwhile.
    /// `stamp` says what `updated_at` becomes.
    pub async fn swap_instance_flavor(
        &self,
        cell: &str,
        instance: &str,
        expected: &str,
        new: &str,
        stamp: &Stamp,
    ) -> Result<bool, NovaDbError> {
        let _wait = self.wait();
        let c = self.cell(cell)?;
        let swap = Swap {
            what: format!("cell {}", c.name),
            select: "SELECT flavor FROM instance_extra WHERE instance_uuid = ? AND deleted = 0 \
                     FOR UPDATE",
            update: "UPDATE instance_extra SET flavor = ?, updated_at = {stamp} \
                     WHERE instance_uuid = ? AND deleted = 0",
        };
        swap.run(&c.pool, instance, expected, new, stamp).await
    }

    /// The current `request_specs.spec` of an instance.
    pub async fn request_spec(&self, instance: &str) -> Result<Option<String>, NovaDbError> {
        let row = self.request_spec_row(instance).await?;
        Ok(row.map(|r| r.text))
    }

    /// The current `request_specs.spec` with the row's `updated_at`.
    pub async fn request_spec_row(&self, instance: &str) -> Result<Option<RowImage>, NovaDbError> {
        let _wait = self.wait();
        let row = sqlx::query(
            "SELECT spec, CAST(updated_at AS CHAR) FROM request_specs WHERE instance_uuid = ?",
        )
        .bind(instance)
        .fetch_optional(&self.api)
        .await
        .map_err(sql("API"))?;
        row_image(row, "API")
    }

    /// Compare-and-swap of `request_specs.spec`, as [`NovaDb::swap_instance_flavor`].
    pub async fn swap_request_spec(
        &self,
        instance: &str,
        expected: &str,
        new: &str,
        stamp: &Stamp,
    ) -> Result<bool, NovaDbError> {
        let _wait = self.wait();
        let swap = Swap {
            what: "API".into(),
            select: "SELECT spec FROM request_specs WHERE instance_uuid = ? FOR UPDATE",
            update: "UPDATE request_specs SET spec = ?, updated_at = {stamp} \
                     WHERE instance_uuid = ?",
        };
        swap.run(&self.api, instance, expected, new, stamp).await
    }

    /// What Nova's databases know of consumer uuids found in Placement: live instances (any
    /// cell) and migration records, by uuid. A uuid in neither is absent from the answer.
    pub async fn consumers(
        &self,
        uuids: &[String],
    ) -> Result<BTreeMap<String, ConsumerRow>, NovaDbError> {
        let _wait = self.wait();
        let mut out = BTreeMap::new();
        for cell in &self.cells {
            let what = format!("cell {}", cell.name);
            for chunk in uuids.chunks(500).filter(|c| !c.is_empty()) {
                let marks = marks(chunk.len());
                let q = format!(
                    "SELECT uuid, node, host FROM instances WHERE deleted = 0 AND uuid IN ({marks})"
                );
                let query = bind_all(sqlx::query(&q), chunk);
                for r in query.fetch_all(&cell.pool).await.map_err(sql(&what))? {
                    let uuid: String = r.try_get(0).map_err(sql(&what))?;
                    out.insert(
                        uuid,
                        ConsumerRow::Instance {
                            node: r.try_get(1).map_err(sql(&what))?,
                            host: r.try_get(2).map_err(sql(&what))?,
                        },
                    );
                }
                let q = format!(
                    "SELECT uuid, instance_uuid, source_node, dest_node, status, migration_type \
                     FROM migrations WHERE deleted = 0 AND uuid IN ({marks})"
                );
                let query = bind_all(sqlx::query(&q), chunk);
                for r in query.fetch_all(&cell.pool).await.map_err(sql(&what))? {
                    let uuid: String = r.try_get(0).map_err(sql(&what))?;
                    out.insert(
                        uuid,
                        ConsumerRow::Migration {
                            instance: r
                                .try_get::<Option<String>, _>(1)
                                .map_err(sql(&what))?
                                .unwrap_or_default(),
                            source_node: r.try_get(2).map_err(sql(&what))?,
                            dest_node: r.try_get(3).map_err(sql(&what))?,
                            status: r.try_get(4).map_err(sql(&what))?,
                            migration_type: r.try_get(5).map_err(sql(&what))?,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    pub async fn close(&self) {
        self.api.close().await;
        for c in &self.cells {
            c.pool.close().await;
        }
    }
}
