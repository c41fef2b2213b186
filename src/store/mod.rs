//! Steward's own database (sqlx): SQLite for the embedded default, MySQL/MariaDB (Galera) in
//! production. Holds the latest telemetry and the rebalancer's journal (`journal.rs`).

pub mod cross_az;
pub mod detector;
pub mod journal;
pub mod lease;
pub mod recovery;
pub mod settings;
pub mod telemetry_writer;

mod repair;

use std::collections::HashSet;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use crate::model::{ClusterView, HostFacts, Source, VmFacts, WeeklyProfile, WeeklyProfiles};
use crate::telemetry::{HostSample, VmSample};

pub use repair::{JournalEntry, RepairRun};
pub use settings::{redact_url, DatabaseSettings, DatabaseUrl};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("sql/sqlite");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("sql/mysql");
/// The same for a Galera node: sqlx serializes migrations with `GET_LOCK`, which Galera
/// refuses under wsrep (error 1235); there `steward db upgrade` runs once, unlocked.
static GALERA_MIGRATIONS: std::sync::LazyLock<Migrator> = std::sync::LazyLock::new(|| {
    let mut m = sqlx::migrate!("sql/mysql");
    m.set_locking(false);
    m
});

/// One push's samples, stamped with when steward received them.
#[derive(Debug, Clone, Copy)]
pub struct TelemetryRows<'a> {
    pub hosts: &'a [HostSample],
    pub vms: &'a [VmSample],
    pub now: f64,
}

/// Rows per multi-row INSERT: well under MySQL's 65,535 placeholders.
const CHUNK: usize = 500;
/// Most rows in one telemetry upsert (a power of two below [`CHUNK`]).
const TELEMETRY_ROWS: usize = 256;

/// `rows` split for multi-row statements: [`TELEMETRY_ROWS`] at a time, then the rest by its
/// binary digits (300 rows: 256, 32, 8, 4), so every statement has one of nine sizes.
fn statement_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let take = if rest.len() >= TELEMETRY_ROWS {
            TELEMETRY_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(take);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to steward's database {url}: {source}; check [database] url and that the server runs")]
    Connect { url: String, source: sqlx::Error },
    #[error("steward's database schema is behind by {0} migration(s); run `steward db upgrade`")]
    Behind(usize),
    #[error("schema migration failed: {0}; the database is left at the last applied migration")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// The database stayed out of reach longer than a caller would wait it out.
    #[error("steward's database was out of reach for {seconds:.0} s ({source}); check [database] url and that the server runs; the journal is as it was before and the next cycle resumes")]
    Unreachable {
        seconds: f64,
        source: Box<StoreError>,
    },
    /// The task that commits pushed telemetry is gone (steward is shutting down).
    #[error("steward's telemetry writer has stopped (steward is shutting down); push again to another replica or after the restart")]
    WriterStopped,
}

/// A database error that says the server is out of reach (connection refused or cut, a server
/// shutting down, no connection within the pool's timeout) rather than something wrong with the
/// statement: the same statement may succeed once the server is back.
pub fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => {
            // SQLSTATE class 08: connection exception (08S01: server shutdown, link lost);
            // MySQL 1053 server shutdown in progress, 1927 connection killed, 2006 server gone
            // away, 2013 lost connection during query.
            d.code().as_deref().is_some_and(|c| {
                c.starts_with("08") || ["1053", "1927", "2006", "2013"].contains(&c)
            })
        }
        _ => false,
    }
}

impl StoreError {
    /// True when the database is out of reach (see [`is_connection_lost`]), not when a
    /// statement or the schema is wrong.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            StoreError::Sql(e) => is_connection_lost(e),
            StoreError::Connect { .. } | StoreError::Unreachable { .. } => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// Applied and pending schema migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    pub applied: Vec<i64>,
    pub pending: Vec<(i64, String)>,
}

impl Store {
    pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let raw = url.expose();
        let (backend, raw) = match raw.strip_prefix("mariadb://") {
            Some(rest) => (Backend::MySql, format!("mysql://{rest}")),
            None if raw.starts_with("mysql://") => (Backend::MySql, raw.to_string()),
            None => (Backend::Sqlite, raw.to_string()),
        };
        // SQLite takes one writer at a time; more connections only queue on its lock.
        let max = if backend == Backend::Sqlite {
            1
        } else {
            max_connections
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&raw)
            .await
            .map_err(|source| StoreError::Connect {
                url: url.redacted(),
                source,
            })?;
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::MySql => &MYSQL_MIGRATIONS,
        }
    }

    pub async fn status(&self) -> Result<SchemaStatus, StoreError> {
        let applied: Vec<i64> = match sqlx::query(
            "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(rows) => rows
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?,
            // No bookkeeping table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let done: HashSet<i64> = applied.iter().copied().collect();
        let pending = self
            .migrator()
            .iter()
            .filter(|m| !done.contains(&m.version))
            .map(|m| (m.version, m.description.to_string()))
            .collect();
        Ok(SchemaStatus { applied, pending })
    }

    /// Apply every pending migration (idempotent).
    pub async fn upgrade(&self) -> Result<SchemaStatus, StoreError> {
        let migrator = if self.wsrep_on().await? {
            &*GALERA_MIGRATIONS
        } else {
            self.migrator()
        };
        migrator.run(&self.pool).await?;
        self.status().await
    }

    /// Fail unless the schema is current.
    pub async fn check_current(&self) -> Result<(), StoreError> {
        let s = self.status().await?;
        if s.pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Behind(s.pending.len()))
        }
    }

    /// Keep the newest sample per host and VM (an older one never overwrites a newer one).
    pub async fn save_telemetry(
        &self,
        hosts: &[HostSample],
        vms: &[VmSample],
        now: f64,
    ) -> Result<(), StoreError> {
        self.save_telemetry_batch(&[TelemetryRows { hosts, vms, now }])
            .await
    }

    /// Several pushes in one transaction (one commit, one sync to disk), their rows in push
    /// order, as [`Store::save_telemetry`] writes each: all of them are kept or none. The
    /// batch's rows go in a few multi-row statements whose sizes are powers of two (few
    /// distinct statements for the database to prepare, whatever the batch), not two per push.
    pub async fn save_telemetry_batch(
        &self,
        batch: &[TelemetryRows<'_>],
    ) -> Result<(), StoreError> {
        let hosts: Vec<(&HostSample, f64)> = batch
            .iter()
            .flat_map(|r| r.hosts.iter().map(move |h| (h, r.now)))
            .collect();
        let vms: Vec<(&VmSample, f64)> = batch
            .iter()
            .flat_map(|r| r.vms.iter().map(move |v| (v, r.now)))
            .collect();
        let mut tx = self.pool.begin().await?;
        for chunk in statement_chunks(&hosts) {
            let sql = self.upsert_sql(
                "host_telemetry",
                "host",
                &["az"],
                &["steal", "load5", "cpu_use", "vcpus", "source"],
                chunk.len(),
            );
            let mut q = sqlx::query(&sql);
            for (s, now) in chunk {
                q = q
                    .bind(s.host.clone())
                    .bind(s.facts.az.clone())
                    .bind(s.facts.steal)
                    .bind(s.facts.load5)
                    .bind(s.facts.cpu_use)
                    .bind(s.facts.vcpus)
                    .bind(s.facts.source.as_str())
                    .bind(s.facts.observed_at)
                    .bind(*now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in statement_chunks(&vms) {
            let sql = self.upsert_sql(
                "vm_telemetry",
                "uuid",
                &["host", "role"],
                &["steal", "load5", "vcpus", "source"],
                chunk.len(),
            );
            let mut q = sqlx::query(&sql);
            for (s, now) in chunk {
                q = q
                    .bind(s.uuid.clone())
                    .bind(s.facts.host.clone())
                    .bind(s.facts.role.clone())
                    .bind(s.facts.steal)
                    .bind(s.facts.load5)
                    .bind(s.facts.vcpus)
                    .bind(s.facts.source.as_str())
                    .bind(s.facts.observed_at)
                    .bind(*now);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A multi-row upsert keyed by `key`, where `sticky` columns keep their old value when the
    /// new one is NULL and nothing changes unless the new row is at least as recent.
    fn upsert_sql(
        &self,
        table: &str,
        key: &str,
        sticky: &[&str],
        measured: &[&str],
        rows: usize,
    ) -> String {
        let mut cols: Vec<&str> = vec![key];
        cols.extend_from_slice(sticky);
        cols.extend_from_slice(measured);
        cols.extend_from_slice(&["observed_at", "updated_at"]);
        let one = format!("({})", vec!["?"; cols.len()].join(", "));
        let values = vec![one; rows].join(", ");
        let head = format!("INSERT INTO {table} ({}) VALUES {values}", cols.join(", "));
        match self.backend {
            Backend::Sqlite => {
                let mut sets: Vec<String> = sticky
                    .iter()
                    .map(|c| format!("{c} = COALESCE(excluded.{c}, {table}.{c})"))
                    .collect();
                sets.extend(
                    measured
                        .iter()
                        .chain(&["observed_at", "updated_at"])
                        .map(|c| format!("{c} = excluded.{c}")),
                );
                format!(
                    "{head} ON CONFLICT({key}) DO UPDATE SET {} WHERE excluded.observed_at >= {table}.observed_at",
                    sets.join(", ")
                )
            }
            Backend::MySql => {
                // Assignments run left to right: observed_at must be updated last.
                let newer = "VALUES(observed_at) >= observed_at";
                let mut sets: Vec<String> = sticky
                    .iter()
                    .map(|c| format!("{c} = IF({newer}, COALESCE(VALUES({c}), {c}), {c})"))
                    .collect();
                sets.extend(
                    measured
                        .iter()
                        .chain(&["updated_at"])
                        .map(|c| format!("{c} = IF({newer}, VALUES({c}), {c})")),
                );
                sets.push("observed_at = GREATEST(observed_at, VALUES(observed_at))".into());
                format!("{head} ON DUPLICATE KEY UPDATE {}", sets.join(", "))
            }
        }
    }

    /// Everything steward knew when it stopped.
    pub async fn load_view(&self) -> Result<ClusterView, StoreError> {
        let mut view = ClusterView::default();
        let rows = sqlx::query(
            "SELECT host, az, steal, load5, cpu_use, vcpus, observed_at, source FROM host_telemetry",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            view.hosts.insert(r.try_get("host")?, host_facts(&r)?);
        }
        let rows = sqlx::query(
            "SELECT uuid, host, role, steal, load5, vcpus, observed_at, source FROM vm_telemetry",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            view.vms.insert(r.try_get("uuid")?, vm_facts(&r)?);
        }
        view.weekly = std::sync::Arc::new(self.load_weekly().await?);
        Ok(view)
    }

    /// Replace every profile of one kind (`host_steal` or `role_demand`) in one transaction,
    /// so a reader never sees half of a rollup.
    pub async fn save_weekly(
        &self,
        kind: &str,
        profiles: &std::collections::HashMap<String, WeeklyProfile>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM weekly_profile WHERE kind = ?")
            .bind(kind.to_string())
            .execute(&mut *tx)
            .await?;
        let mut rows: Vec<(&String, &WeeklyProfile)> = profiles.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        for chunk in rows.chunks(CHUNK) {
            let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO weekly_profile (kind, subject, hours, weeks, computed_at) VALUES {values}"
            );
            let mut q = sqlx::query(&sql);
            for (subject, p) in chunk {
                // JSON has no NaN: hours without data are written as null.
                let hours: Vec<Option<f64>> = p
                    .values
                    .iter()
                    .map(|v| v.is_finite().then_some(*v))
                    .collect();
                q = q
                    .bind(kind.to_string())
                    .bind((*subject).clone())
                    .bind(serde_json::to_string(&hours).expect("numbers serialise"))
                    .bind(i64::from(p.weeks))
                    .bind(p.computed_at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn load_weekly(&self) -> Result<WeeklyProfiles, StoreError> {
        let mut out = WeeklyProfiles::default();
        let rows =
            sqlx::query("SELECT kind, subject, hours, weeks, computed_at FROM weekly_profile")
                .fetch_all(&self.pool)
                .await?;
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let subject: String = r.try_get("subject")?;
            let hours: String = r.try_get("hours")?;
            let values: Vec<Option<f64>> = serde_json::from_str(&hours).map_err(|e| {
                sqlx::Error::Decode(format!("weekly_profile {kind}/{subject}: {e}").into())
            })?;
            let profile = WeeklyProfile {
                values: values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect(),
                weeks: u32::try_from(r.try_get::<i64, _>("weeks")?).unwrap_or(0),
                computed_at: r.try_get("computed_at")?,
            };
            match kind.as_str() {
                "host_steal" => out.host_steal.insert(subject, profile),
                "role_demand" => out.role_demand.insert(subject, profile),
                _ => None, // a kind from a newer steward: not ours to read
            };
        }
        Ok(out)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn host_facts(r: &AnyRow) -> Result<HostFacts, sqlx::Error> {
    Ok(HostFacts {
        az: r.try_get("az")?,
        steal: r.try_get("steal")?,
        load5: r.try_get("load5")?,
        cpu_use: r.try_get("cpu_use")?,
        vcpus: r.try_get("vcpus")?,
        observed_at: r.try_get("observed_at")?,
        source: source_of(r)?,
    })
}

fn source_of(r: &AnyRow) -> Result<Source, sqlx::Error> {
    let s: String = r.try_get("source")?;
    Source::parse(&s).ok_or_else(|| sqlx::Error::Decode(format!("unknown source {s:?}").into()))
}

fn vm_facts(r: &AnyRow) -> Result<VmFacts, sqlx::Error> {
    Ok(VmFacts {
        host: r.try_get("host")?,
        role: r.try_get("role")?,
        steal: r.try_get("steal")?,
        load5: r.try_get("load5")?,
        vcpus: r.try_get("vcpus")?,
        observed_at: r.try_get("observed_at")?,
        source: source_of(r)?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_chunks_cover_every_row_in_order_in_nine_sizes_at_most() {
        let mut sizes = HashSet::new();
        for n in 0..1_200usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks = statement_chunks(&rows);
            let joined: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(joined, rows, "{n} rows");
            for c in &chunks {
                assert!(
                    c.len().is_power_of_two() && c.len() <= TELEMETRY_ROWS,
                    "{n}: {}",
                    c.len()
                );
                sizes.insert(c.len());
            }
        }
        assert_eq!(sizes.len(), 9, "{sizes:?}");
    }
}
