//! Leases in steward's store: a row per name, taken and renewed by conditional UPDATE, with an
//! epoch raised at every change of holder. The epoch is the fencing token: a write fenced by
//! [`Fence`] touches the lease row in its own transaction and goes through only while that
//! holder still holds the lease at that epoch. The same SQL on SQLite, MySQL, MariaDB and
//! Galera; on Galera the touched row makes the certification refuse a write that races a
//! takeover on another node.

use std::time::Instant;

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// A holder's claim on a lease, handed to whoever journals on its behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name (`steward-rebalance`).
    pub name: String,
    /// Who holds it (host, pid and a random id).
    pub holder: String,
    /// The fencing token: raised by one at every change of holder.
    pub epoch: i64,
    /// Until when this process may act on it, by its own monotonic clock (a process that was
    /// stopped past this sees it at once when it runs again).
    pub valid_until: Instant,
}

impl Fence {
    /// Whether this process may still act (start a side effect) under the lease.
    pub fn is_current(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// Why a fenced write was refused.
pub fn fence_refusal(f: &Fence) -> String {
    format!(
        "the leadership this replica held ({} epoch {}, holder {}) has passed to another \
         replica or run out; nothing was written, and the current leader carries on",
        f.name, f.epoch, f.holder
    )
}

/// A write that lost Galera's certification or InnoDB's deadlock detection (MySQL 1213,
/// SQLSTATE 40001): nothing was written, and the same write may be tried again.
pub fn is_write_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if d.code().as_deref().is_some_and(|c| c == "40001" || c == "1213"))
}

impl Store {
    /// Take the lease `name` for `holder` until `now + ttl` when it is free or has run out
    /// (raising its epoch). The new epoch when taken, `None` when another holder has it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: f64,
        ttl: f64,
    ) -> Result<Option<i64>, StoreError> {
        let insert = match self.backend {
            Backend::Sqlite => {
                "INSERT OR IGNORE INTO leader_lease (name, holder, expires_at, epoch) \
                 VALUES (?, '', 0, 0)"
            }
            Backend::MySql => {
                "INSERT IGNORE INTO leader_lease (name, holder, expires_at, epoch) \
                 VALUES (?, '', 0, 0)"
            }
        };
        let attempt = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(insert)
                .bind(name.to_string())
                .execute(&mut *tx)
                .await?;
            let taken = sqlx::query(
                "UPDATE leader_lease SET holder = ?, expires_at = ?, epoch = epoch + 1 \
                 WHERE name = ? AND (holder = '' OR expires_at < ?)",
            )
            .bind(holder.to_string())
            .bind(now + ttl)
            .bind(name.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if taken != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            let row = sqlx::query("SELECT epoch FROM leader_lease WHERE name = ?")
                .bind(name.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            // On Galera a transaction that another node's takeover aborts (brute-force abort)
            // can read nothing where its own UPDATE just matched: it did not take the lease.
            let Some(row) = row else {
                tx.rollback().await?;
                tracing::debug!(
                    lease = name,
                    holder,
                    "the takeover lost a race on the lease row"
                );
                return Ok(None);
            };
            let epoch: i64 = row.try_get("epoch")?;
            tx.commit().await?;
            // Read back what was committed: on Galera a transaction another node's takeover
            // aborted may have been rolled back under it, its later statements and COMMIT then
            // running outside it (a row of another holder, or none, where it expected its own).
            let now_held = sqlx::query("SELECT holder, epoch FROM leader_lease WHERE name = ?")
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await?;
            let ours = match &now_held {
                Some(r) => {
                    r.try_get::<String, _>("holder")? == holder
                        && r.try_get::<i64, _>("epoch")? == epoch
                }
                None => false,
            };
            if !ours {
                tracing::debug!(
                    lease = name,
                    holder,
                    epoch,
                    "the takeover did not hold; another replica has the lease"
                );
                return Ok(None);
            }
            Ok::<_, sqlx::Error>(Some(epoch))
        };
        match attempt.await {
            // Another replica's takeover won the race (Galera certification, a deadlock).
            Err(e) if is_write_conflict(&e) => Ok(None),
            r => Ok(r?),
        }
    }

    /// Extend the lease `f` holds to `now + ttl`; false when it is no longer `f`'s.
    pub async fn renew_lease(&self, f: &Fence, now: f64, ttl: f64) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE leader_lease SET expires_at = ? WHERE name = ? AND holder = ? AND epoch = ?",
        )
        .bind(now + ttl)
        .bind(f.name.clone())
        .bind(f.holder.clone())
        .bind(f.epoch)
        .execute(&self.pool)
        .await;
        match r {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(e) if is_write_conflict(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Give the lease up (on shutdown, at the end of a cycle), if `f` still has it; the epoch
    /// stays, so the next holder's is higher.
    pub async fn release_lease(&self, f: &Fence) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE leader_lease SET holder = '', expires_at = 0 \
             WHERE name = ? AND holder = ? AND epoch = ?",
        )
        .bind(f.name.clone())
        .bind(f.holder.clone())
        .bind(f.epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who holds `name` (empty when released), at which epoch, until when.
    pub async fn lease(&self, name: &str) -> Result<Option<(String, i64, f64)>, StoreError> {
        let row = sqlx::query("SELECT holder, epoch, expires_at FROM leader_lease WHERE name = ?")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((
                r.try_get("holder")?,
                r.try_get("epoch")?,
                r.try_get("expires_at")?,
            )),
            None => None,
        })
    }

    /// Whether steward's database is a Galera node (`wsrep_on` = ON).
    pub async fn wsrep_on(&self) -> Result<bool, StoreError> {
        if self.backend != Backend::MySql {
            return Ok(false);
        }
        let row = sqlx::query("SHOW VARIABLES LIKE 'wsrep_on'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => super::journal::text(&r, "Value")?.eq_ignore_ascii_case("ON"),
            None => false,
        })
    }
}

/// In a fenced write's transaction, before its own statements: touch the lease row while `f`
/// holds it, unexpired at `now`. False (and nothing written) when it does not.
pub(super) async fn check_fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    f: &Fence,
    now: f64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE leader_lease SET writes = writes + 1 \
         WHERE name = ? AND holder = ? AND epoch = ? AND expires_at >= ?",
    )
    .bind(f.name.clone())
    .bind(f.holder.clone())
    .bind(f.epoch)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
