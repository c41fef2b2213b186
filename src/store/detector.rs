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
