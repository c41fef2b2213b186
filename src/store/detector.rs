//! The rebalancer's planner state between cycles (`rebalance_detector`, migration 0005): one
//! JSON document per name. Moves text only; what the document holds is `rebalance::cycle`'s.

use super::{Backend, Store, StoreError};

impl Store {
    /// The stored document `name`, if any.
    pub async fn load_detector(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT state FROM rebalance_detector WHERE name = ?")
            .bind(name.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            // MySQL's protocol types TEXT as a BLOB: the journal's reader takes both.
            Some(r) => Some(super::journal::text(&r, "state")?),
            None => None,
        })
    }

    /// Write (or replace) the document `name`.
    pub async fn save_detector(&self, name: &str, state: &str, now: f64) -> Result<(), StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "INSERT INTO rebalance_detector (name, state, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT(name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
            }
            Backend::MySql => {
                "INSERT INTO rebalance_detector (name, state, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE state = VALUES(state), updated_at = VALUES(updated_at)"
            }
        };
        sqlx::query(sql)
            .bind(name.to_string())
            .bind(state.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Every document named `prefix` or `prefix/...`, by name.
    pub async fn load_detector_set(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, state FROM rebalance_detector WHERE name = ? OR name LIKE ? ORDER BY name",
        )
        .bind(prefix.to_string())
        .bind(format!("{prefix}/%"))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((
                super::journal::text(&r, "name")?,
                super::journal::text(&r, "state")?,
            ));
        }
        Ok(out)
    }

    /// Replace every document named `prefix` or `prefix/...` by `docs`, in one transaction:
    /// a reader sees the old set or the new one, never a mix.
    pub async fn replace_detector_set(
        &self,
        prefix: &str,
        docs: &[(String, String)],
        now: f64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM rebalance_detector WHERE name = ? OR name LIKE ?")
            .bind(prefix.to_string())
            .bind(format!("{prefix}/%"))
            .execute(&mut *tx)
            .await?;
        for (name, state) in docs {
            sqlx::query(
                "INSERT INTO rebalance_detector (name, state, updated_at) VALUES (?, ?, ?)",
            )
            .bind(name.clone())
            .bind(state.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
