//! An admin's leave for one move of one VM into another AZ (migration 0009). Steward keeps every
//! moving VM in its AZ; a grant is how an admin says, for one scheduling request, "this VM may
//! go to AZ X" (a VM stock Nova had already moved out of its AZ, a planned evacuation of a
//! whole AZ). The first move callout for the VM takes the grant (one guarded UPDATE, so two
//! replicas never both use it); unused, it lapses at `expires_at`; an admin may revoke it.
//! Moves rows only; what a grant does to a request is `api::cross_az`'s.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::journal::{text, JournalError};
use super::Store;

/// A grant as the store holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossAzGrant {
    pub id: String,
    pub vm: String,
    pub to_az: String,
    pub granted_by: String,
    pub reason: String,
    pub created_at: f64,
    pub expires_at: f64,
    pub used_at: Option<f64>,
    pub revoked_at: Option<f64>,
}

impl CrossAzGrant {
    /// Whether the next move of its VM may take it (not used, not revoked, not lapsed).
    pub fn is_open(&self, now: f64) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }
}

const COLUMNS: &str =
    "id, vm, to_az, granted_by, reason, created_at, expires_at, used_at, revoked_at";

impl Store {
    /// Grant one move of `vm` into `to_az` until `now + ttl`. An open grant for the same VM is
    /// revoked in the same transaction: a VM has at most one.
    pub async fn grant_cross_az(
        &self,
        vm: &str,
        to_az: &str,
        by: &str,
        reason: &str,
        now: f64,
        ttl: f64,
    ) -> Result<CrossAzGrant, JournalError> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE cross_az_grant SET revoked_at = ? \
             WHERE vm = ? AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(vm.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO cross_az_grant (id, vm, to_az, granted_by, reason, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.clone())
        .bind(vm.to_string())
        .bind(to_az.to_string())
        .bind(by.to_string())
        .bind(reason.to_string())
        .bind(now)
        .bind(now + ttl)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.cross_az_grant(&id)
            .await?
            .ok_or_else(|| JournalError::NotFound(format!("cross-AZ grant {id} vanished")))
    }

    pub async fn cross_az_grant(&self, id: &str) -> Result<Option<CrossAzGrant>, JournalError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cross_az_grant WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(grant_row).transpose()
    }

    /// Every grant, newest first, at most `limit`.
    pub async fn cross_az_grants(&self, limit: i64) -> Result<Vec<CrossAzGrant>, JournalError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cross_az_grant ORDER BY created_at DESC, id LIMIT ?"
        ))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant_row).collect()
    }

    /// The VMs with an open grant at `now` (what each replica keeps in memory, so that a move
    /// callout reads the store only for a VM that has one).
    pub async fn open_cross_az_vms(&self, now: f64) -> Result<Vec<String>, JournalError> {
        let rows = sqlx::query(
            "SELECT DISTINCT vm FROM cross_az_grant WHERE used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("vm").map_err(Into::into))
            .collect()
    }

    /// Take the open grant of `vm`, if any, for the move being scheduled at `now`: marked used
    /// in the same guarded write, so one request only (across replicas) moves under it.
    pub async fn take_cross_az(
        &self,
        vm: &str,
        now: f64,
    ) -> Result<Option<CrossAzGrant>, JournalError> {
        let open = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM cross_az_grant WHERE vm = ? AND used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(vm.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(g) = open.as_ref().map(grant_row).transpose()? else {
            return Ok(None);
        };
        let done = sqlx::query(
            "UPDATE cross_az_grant SET used_at = ? \
             WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(g.id.clone())
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(CrossAzGrant {
            used_at: Some(now),
            ..g
        }))
    }

    /// Revoke an open grant; a [`JournalError::Conflict`] when it was used or revoked already.
    pub async fn revoke_cross_az(&self, id: &str, now: f64) -> Result<CrossAzGrant, JournalError> {
        let done = sqlx::query(
            "UPDATE cross_az_grant SET revoked_at = ? \
             WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        let g = self.cross_az_grant(id).await?.ok_or_else(|| {
            JournalError::NotFound(format!(
                "no cross-AZ grant {id}; GET /v1/cross-az-grants lists them"
            ))
        })?;
        if done.rows_affected() == 0 {
            return Err(JournalError::Conflict(format!(
                "cross-AZ grant {id} (server {}) was already {}; nothing to revoke",
                g.vm,
                if g.used_at.is_some() {
                    "used"
                } else {
                    "revoked"
                }
            )));
        }
        Ok(g)
    }
}

fn grant_row(r: &AnyRow) -> Result<CrossAzGrant, JournalError> {
    Ok(CrossAzGrant {
        id: r.try_get("id")?,
        vm: r.try_get("vm")?,
        to_az: r.try_get("to_az")?,
        granted_by: r.try_get("granted_by")?,
        reason: text(r, "reason")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}
