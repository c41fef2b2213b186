//! The inventory repair's runs and journal in steward's own database (migration 0004).
//! A journal entry is written with the before-image BEFORE the write it describes, then marked
//! done (with the after-image) or failed; rollback reads the before-images back.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};

/// One run of `steward repair apply`.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairRun {
    pub id: String,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub status: String,
    pub selection: String,
    pub summary: Option<String>,
}

/// One journaled write.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub id: i64,
    pub entry: String,
    pub run_id: String,
    pub node: String,
    pub action: String,
    pub object: String,
    pub before_image: Option<Vec<u8>>,
    pub after_image: Option<Vec<u8>>,
    pub state: String,
    pub at: f64,
    pub message: Option<String>,
}

fn run_row(r: &AnyRow) -> Result<RepairRun, sqlx::Error> {
    Ok(RepairRun {
        id: r.try_get(0)?,
        started_at: r.try_get(1)?,
        finished_at: r.try_get(2)?,
        status: r.try_get(3)?,
        selection: r.try_get(4)?,
        summary: super::journal::opt_text(r, "summary")?,
    })
}

const RUN_COLUMNS: &str = "id, started_at, finished_at, status, selection, summary";

impl Store {
    pub async fn repair_run_start(
        &self,
        id: &str,
        now: f64,
        selection: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO repair_run (id, started_at, finished_at, status, selection, summary) \
             VALUES (?, ?, NULL, 'running', ?, NULL)",
        )
        .bind(id.to_string())
        .bind(now)
        .bind(selection.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest run still marked `running` (a run that was killed), if any.
    pub async fn repair_unfinished_run(&self) -> Result<Option<RepairRun>, StoreError> {
        let q = format!(
            "SELECT {RUN_COLUMNS} FROM repair_run WHERE status = 'running' \
             ORDER BY started_at DESC LIMIT 1"
        );
        let row = sqlx::query(&q).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(run_row).transpose()?)
    }

    /// The newest `limit` runs, newest first.
    pub async fn repair_runs(&self, limit: u32) -> Result<Vec<RepairRun>, StoreError> {
        let q = format!("SELECT {RUN_COLUMNS} FROM repair_run ORDER BY started_at DESC LIMIT ?");
        let rows = sqlx::query(&q)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(run_row).collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn repair_run(&self, id: &str) -> Result<Option<RepairRun>, StoreError> {
        let q = format!("SELECT {RUN_COLUMNS} FROM repair_run WHERE id = ?");
        let row = sqlx::query(&q)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(run_row).transpose()?)
    }

    pub async fn repair_run_finish(
        &self,
        id: &str,
        status: &str,
        now: f64,
        summary: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE repair_run SET status = ?, finished_at = ?, summary = ? WHERE id = ?")
            .bind(status.to_string())
            .bind(now)
            .bind(summary.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record a write about to be made, with what it overwrites and what it means to write (the
    /// after-image, replaced by the answer once done): a crash between the write and its mark
    /// leaves an entry rollback can still use. Returns the entry's key (a uuid picked here, so
    /// no driver's last-insert id is trusted).
    #[allow(clippy::too_many_arguments)]
    pub async fn repair_journal_before(
        &self,
        run_id: &str,
        node: &str,
        action: &str,
        object: &str,
        before_image: Option<&[u8]>,
        intended_after: Option<&[u8]>,
        now: f64,
    ) -> Result<String, StoreError> {
        let entry = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO repair_journal \
             (entry, run_id, node, action, object, before_image, after_image, state, at, message) \
             VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, NULL)",
        )
        .bind(entry.clone())
        .bind(run_id.to_string())
        .bind(node.to_string())
        .bind(action.to_string())
        .bind(object.to_string())
        .bind(before_image.map(<[u8]>::to_vec))
        .bind(intended_after.map(<[u8]>::to_vec))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(entry)
    }

    /// Mark a journal entry done / failed / restored, with the after-image when there is one.
    pub async fn repair_journal_mark(
        &self,
        entry: &str,
        state: &str,
        after_image: Option<&[u8]>,
        message: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE repair_journal SET state = ?, after_image = ?, message = ? WHERE entry = ?",
        )
        .bind(state.to_string())
        .bind(after_image.map(<[u8]>::to_vec))
        .bind(message.map(|m| m.chars().take(2000).collect::<String>()))
        .bind(entry.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Mark a journal entry failed, keeping its images.
    pub async fn repair_journal_fail(&self, entry: &str, message: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE repair_journal SET state = 'failed', message = ? WHERE entry = ?")
            .bind(message.chars().take(2000).collect::<String>())
            .bind(entry.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A run's journal, oldest first.
    pub async fn repair_journal(&self, run_id: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, run_id, node, action, object, before_image, after_image, state, at, \
             message, entry FROM repair_journal WHERE run_id = ? ORDER BY id",
        )
        .bind(run_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JournalEntry {
                    id: r.try_get(0)?,
                    run_id: r.try_get(1)?,
                    node: r.try_get(2)?,
                    action: r.try_get(3)?,
                    object: r.try_get(4)?,
                    before_image: r.try_get(5)?,
                    after_image: r.try_get(6)?,
                    state: r.try_get(7)?,
                    at: r.try_get(8)?,
                    message: r.try_get(9)?,
                    entry: r.try_get(10)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
