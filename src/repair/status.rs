//! A repair run's state from the journal: `steward repair status [RUN]` and
//! `GET /v1/repair/runs/{id}` read the same.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::store::{RepairRun, Store, StoreError};

/// One run: its record, its journaled writes by state, and its report once finished.
#[derive(Debug, Clone, Serialize)]
pub struct RunState {
    pub id: String,
    /// running, ok, blocked, failed, rolled_back or partly_rolled_back.
    pub status: String,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    /// The selection the run was started with (JSON).
    pub selection: String,
    /// Journaled writes by state (pending, done, failed, undone, restored).
    pub writes: BTreeMap<String, usize>,
    /// Nodes with at least one journaled write.
    pub nodes_touched: usize,
    /// The run's report once finished (or a rollback's items), else null.
    pub result: Value,
}

/// The state of run `id`, None when there is no such run.
pub async fn run_state(store: &Store, id: &str) -> Result<Option<RunState>, StoreError> {
    let Some(run) = store.repair_run(id).await? else {
        return Ok(None);
    };
    Ok(Some(state_of(store, run).await?))
}

/// The newest `limit` runs, newest first.
pub async fn runs(store: &Store, limit: u32) -> Result<Vec<RunState>, StoreError> {
    let mut out = Vec::new();
    for run in store.repair_runs(limit).await? {
        out.push(state_of(store, run).await?);
    }
    Ok(out)
}

async fn state_of(store: &Store, run: RepairRun) -> Result<RunState, StoreError> {
    let journal = store.repair_journal(&run.id).await?;
    let mut writes = BTreeMap::<String, usize>::new();
    let mut nodes = BTreeSet::new();
    for e in &journal {
        *writes.entry(e.state.clone()).or_default() += 1;
        if e.node != "-" {
            nodes.insert(e.node.clone());
        }
    }
    let result = run
        .summary
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    Ok(RunState {
        id: run.id,
        status: run.status,
        started_at: run.started_at,
        finished_at: run.finished_at,
        selection: run.selection,
        writes,
        nodes_touched: nodes.len(),
        result,
    })
}
