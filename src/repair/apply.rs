//! Executing a repair plan: global steps first (custom classes, flavors), then node by node with
//! bounded concurrency. Every write to Nova's data or Placement is journaled with its
//! before-image BEFORE it is made; each step re-reads what it changes right before writing
//! (generations, current JSON), so a step that already happened is a no-op and a run killed
//! anywhere finishes when started again. Also `rollback` from the journal.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::peerclock::{Peer, Timings};
use crate::store::Store;

use super::facts::Clients;
use super::plan::{NodePlan, NodeStatus, Plan, Step};
use super::RepairError;

pub use super::rollback::{rollback, RollbackItem, RollbackOptions};

/// What to do after a run-wide step (a resource class, a flavor) failed for another reason than
/// an outage.
const GLOBAL_HINT: &str = "no node was started and the journal holds every write made so far; \
     fix what the error names, then run `steward repair apply` with the same selection to finish \
     (or `steward repair rollback RUN_ID` to undo it)";

/// How a run goes.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Attempts of one write that keeps losing races (`placement.concurrent_update`, a flavor
    /// row changed between read and write).
    pub max_attempts: u32,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Where `steward_repair_runs_total` is counted (the server's registry; a one-shot CLI
    /// run has none and leaves its record in the journal's `repair_run`).
    pub metrics: Option<crate::metrics::Metrics>,
}

/// What happened to one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeResult {
    pub node: String,
    /// `repaired`, `failed`, `not_started`, `blocked`, `skipped` or `clean`.
    pub result: String,
    pub steps_done: usize,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub run_id: String,
    /// True when the run picked up a run that had been interrupted.
    pub resumed: bool,
    /// False when a step failed or a node was not started (a blocked node is not a failure).
    pub ok: bool,
    /// `ok`, `blocked` (nothing failed, a node is blocked) or `failed`.
    pub status: String,
    /// The `pending` journal entries of the interrupted run settled on resuming it.
    pub settled: usize,
    pub global_error: Option<String>,
    pub nodes: Vec<NodeResult>,
    /// Where the wall time went, from connecting to the peers (so gathering the facts and
    /// planning included) to the end of the last node: time waited on each peer, as the union
    /// of the intervals with a call outstanding, and steward's own share.
    pub timings: Option<Timings>,
}

/// One executor shared by the node tasks.
pub(super) struct Exec {
    pub(super) clients: Clients,
    pub(super) store: Store,
    pub(super) run_id: String,
    pub(super) max_attempts: u32,
    /// Writes landed so far, for [`CRASH_AFTER_WRITES`].
    writes: AtomicU32,
    crash_after: Option<u32>,
}

/// A crash test's hook: the process aborts (as a kill would stop it) right after its N-th write
/// landed and before the journal marks it done, so resuming meets a `pending` entry whose write
/// happened. Not for operators.
pub const CRASH_AFTER_WRITES: &str = "STEWARD_REPAIR_CRASH_AFTER_WRITES";

fn now() -> f64 {
    crate::unix_now()
}

pub(super) fn to_json_bytes(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Run `plan`: under a new run id, or under the id of an interrupted run (status `running`)
/// so that one rollback covers everything the two did.
pub async fn apply(
    clients: Clients,
    store: Store,
    plan: &Plan,
    selection: &str,
    options: &ApplyOptions,
) -> Result<RunReport, RepairError> {
    let journal = clients.clock.start(Peer::Journal);
    let (run_id, resumed) = begin(&store, selection).await?;
    drop(journal);
    apply_run(clients, store, plan, run_id, resumed, options).await
}

/// The run to write under: the interrupted one (status `running`), else a new one.
pub async fn begin(store: &Store, selection: &str) -> Result<(String, bool), RepairError> {
    Ok(match store.repair_unfinished_run().await? {
        Some(run) => (run.id, true),
        None => {
            let id = format!("repair-{}", uuid::Uuid::new_v4());
            store.repair_run_start(&id, now(), selection).await?;
            (id, false)
        }
    })
}

/// Execute `plan` under a run [`begin`] gave. A resumed run first settles the journal entries
/// the killed process left `pending`, and puts back what it wrote on nodes the plan now blocks
/// or skips.
pub async fn apply_run(
    clients: Clients,
    store: Store,
    plan: &Plan,
    run_id: String,
    resumed: bool,
    options: &ApplyOptions,
) -> Result<RunReport, RepairError> {
    let exec = Arc::new(Exec {
        clients,
        store: store.clone(),
        run_id: run_id.clone(),
        max_attempts: options.max_attempts.max(1),
        writes: AtomicU32::new(0),
        crash_after: std::env::var(CRASH_AFTER_WRITES)
            .ok()
            .and_then(|v| v.parse().ok()),
    });
    let mut report = RunReport {
        run_id: run_id.clone(),
        resumed,
        ok: true,
        status: "ok".into(),
        settled: 0,
        global_error: None,
        nodes: Vec::new(),
        timings: None,
    };
    if resumed {
        tracing::info!(run = %run_id, "resuming an interrupted repair run");
        report.settled = exec.resume(plan).await?;
    }
    report.global_error = exec.global(plan).await;
    if report.global_error.is_none() {
        report.nodes = run_nodes(&exec, plan, options).await;
    }
    report.status = run_status(&report).into();
    report.ok = report.status != "failed";
    report.timings = Some(exec.clients.clock.timings());
    if let Some(m) = &options.metrics {
        m.repair_runs.with_label_values(&[&report.status]).inc();
    }
    store
        .repair_run_finish(
            &run_id,
            &report.status,
            now(),
            &serde_json::to_string(&report)?,
        )
        .await?;
    Ok(report)
}

/// `failed` when a step failed or a node was not started, else `blocked` when a node is
/// blocked, else `ok`.
fn run_status(report: &RunReport) -> &'static str {
    let failed = report.global_error.is_some()
        || report
            .nodes
            .iter()
            .any(|n| n.result == "failed" || n.result == "not_started");
    if failed {
        "failed"
    } else if report.nodes.iter().any(|n| n.result == "blocked") {
        "blocked"
    } else {
        "ok"
    }
}

/// A progress bar on stderr, or a hidden one.
fn progress_bar(show: bool, len: usize) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(len as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} repair [{elapsed_precise}] {bar:40} {pos}/{len} nodes, eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    b
}

/// The result of a node with nothing to run: clean, skipped or blocked.
fn idle_result(n: &NodePlan) -> NodeResult {
    NodeResult {
        node: n.node.clone(),
        result: match n.status {
            NodeStatus::Skipped => "skipped".into(),
            NodeStatus::Blocked => "blocked".into(),
            _ => "clean".into(),
        },
        steps_done: 0,
        error: n.problems.first().cloned(),
    }
}

async fn run_nodes(exec: &Arc<Exec>, plan: &Plan, options: &ApplyOptions) -> Vec<NodeResult> {
    let work: Vec<&NodePlan> = plan.nodes.iter().filter(|n| !n.steps.is_empty()).collect();
    let bar = progress_bar(options.progress, work.len());
    let gate = Arc::new(Semaphore::new(exec.clients.concurrency.max(1)));
    // Set by the first node that finds a peer down (Placement 5xx or silent, a Nova database
    // gone): the nodes not started yet are left alone, the run ends failed and the next apply
    // picks them up.
    let halted: Arc<Mutex<Option<String>>> = Arc::default();
    let mut set = JoinSet::new();
    for n in &work {
        let exec = exec.clone();
        let node = (*n).clone();
        let gate = gate.clone();
        let halted = halted.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            exec.node_unless_halted(&node, &halted).await
        });
    }
    let mut out: Vec<NodeResult> = plan
        .nodes
        .iter()
        .filter(|n| n.steps.is_empty())
        .map(idle_result)
        .collect();
    while let Some(done) = set.join_next().await {
        let r = done.unwrap_or_else(|e| NodeResult {
            node: "?".into(),
            result: "failed".into(),
            steps_done: 0,
            error: Some(format!("a node task stopped: {e}")),
        });
        if r.error.is_some() {
            bar.set_message(format!("node {} failed", r.node));
        }
        out.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

impl Exec {
    /// Settle the killed process's `pending` entries, then put back what the run wrote on the
    /// nodes the plan no longer goes ahead with. Returns how many entries were settled.
    async fn resume(&self, plan: &Plan) -> Result<usize, RepairError> {
        let settled =
            super::reconcile::settle_pending(&self.clients, &self.store, &self.run_id).await?;
        for n in plan
            .nodes
            .iter()
            .filter(|n| matches!(n.status, NodeStatus::Blocked | NodeStatus::Skipped))
        {
            let (undone, stopped) =
                super::rollback::undo_node(&self.clients, &self.store, &self.run_id, &n.node)
                    .await?;
            if undone > 0 || stopped.is_some() {
                tracing::warn!(node = %n.node, undone, stopped = ?stopped, "resumed run: a node it had started is now {:?}; its writes were put back", n.status);
            }
        }
        Ok(settled.len())
    }

    /// The run-wide steps (classes, flavors); the error that stopped them, if any.
    async fn global(&self, plan: &Plan) -> Option<String> {
        for step in &plan.global {
            if let Err(e) = self.step("-", step).await {
                let hint = if e.is_outage() {
                    super::RESUME_HINT
                } else {
                    GLOBAL_HINT
                };
                let object = match step {
                    Step::SetFlavorExtraSpecs {
                        flavor_id,
                        flavor_name,
                        ..
                    } => format!("flavor {flavor_id} ({flavor_name})"),
                    _ => step.object(),
                };
                return Some(format!("{} {object}: {e}; {hint}", step.action()));
            }
        }
        None
    }

    /// One node, unless an earlier node found a peer down; a node that meets an outage halts
    /// the nodes not started yet.
    async fn node_unless_halted(
        &self,
        node: &NodePlan,
        halted: &Mutex<Option<String>>,
    ) -> NodeResult {
        let why = halted.lock().map(|h| h.clone()).unwrap_or(None);
        if let Some(why) = why {
            return NodeResult {
                node: node.node.clone(),
                result: "not_started".into(),
                steps_done: 0,
                error: Some(format!(
                    "node {} not started: the run stopped because {why}; {}",
                    node.node,
                    super::RESUME_HINT
                )),
            };
        }
        let (r, outage) = self.node(node).await;
        if outage {
            if let Ok(mut h) = halted.lock() {
                h.get_or_insert_with(|| {
                    format!("node {} failed with a service unavailable", node.node)
                });
            }
        }
        r
    }

    /// Run one node's steps; true beside the result when it stopped on an outage. A step that
    /// fails for another reason (a refusal, a race lost, data changed) first has the node's
    /// earlier writes put back, newest first, so its instances' flavors, request specs and
    /// allocations agree again. An outage leaves the node for the next apply (the peer needed to
    /// read back whether the last write landed is the one not answering).
    async fn node(&self, n: &NodePlan) -> (NodeResult, bool) {
        let mut done = 0;
        for step in &n.steps {
            let Err(e) = self.step(&n.node, step).await else {
                done += 1;
                continue;
            };
            tracing::warn!(node = %n.node, step = step.action(), error = %e, "repair step failed; node stopped");
            let outage = e.is_outage();
            let after = if outage {
                format!("; {}", super::RESUME_HINT)
            } else if matches!(step, Step::CheckUsage { .. }) {
                "; every write of the node went through, so nothing was put back".into()
            } else {
                self.undo(&n.node).await
            };
            let error = format!(
                "node {}: {} {}: {e}{after}",
                n.node,
                step.action(),
                step.object()
            );
            let result = NodeResult {
                node: n.node.clone(),
                result: "failed".into(),
                steps_done: done,
                error: Some(error),
            };
            return (result, outage);
        }
        let result = NodeResult {
            node: n.node.clone(),
            result: "repaired".into(),
            steps_done: done,
            error: None,
        };
        (result, false)
    }

    /// Put back what this run wrote on `node`; a sentence on how it went.
    async fn undo(&self, node: &str) -> String {
        match super::rollback::undo_node(&self.clients, &self.store, &self.run_id, node).await {
            Ok((n, None)) => format!(
                "; the node's {n} earlier write(s) were put back from the journal, so it is as before the run"
            ),
            Ok((n, Some(stopped))) => format!(
                "; {n} earlier write(s) were put back, then putting back {stopped} failed: the node is left as an earlier step of the repair leaves it; run `steward repair apply` again to finish it (or `steward repair rollback RUN_ID --node {node} --placement`)"
            ),
            Err(e) => format!(
                "; putting back the node's earlier writes failed ({e}); run `steward repair apply` again to finish it (or `steward repair rollback RUN_ID --node {node} --placement`)"
            ),
        }
    }

    /// A write landed: count it (and stop dead here when a crash test asked for it).
    pub(super) fn landed(&self) {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.crash_after == Some(n) {
            eprintln!("steward: {CRASH_AFTER_WRITES}={n}: aborting after write {n}");
            std::process::abort();
        }
    }

    /// Journal a write about to happen (what it overwrites, what it writes); returns the
    /// entry's key.
    pub(super) async fn before(
        &self,
        node: &str,
        step: &Step,
        image: Option<&[u8]>,
        intended: Option<&[u8]>,
    ) -> Result<String, RepairError> {
        let _wait = self.clients.clock.start(Peer::Journal);
        Ok(self
            .store
            .repair_journal_before(
                &self.run_id,
                node,
                step.action(),
                &step.object(),
                image,
                intended,
                now(),
            )
            .await?)
    }

    pub(super) async fn done(
        &self,
        entry: String,
        after: Option<&[u8]>,
    ) -> Result<(), RepairError> {
        let _wait = self.clients.clock.start(Peer::Journal);
        self.store
            .repair_journal_mark(&entry, "done", after, None)
            .await?;
        Ok(())
    }

    /// The write was refused or its answer lost; the entry keeps its intended after-image, as
    /// a lost answer may hide a write that happened.
    pub(super) async fn failed(&self, entry: String, e: &RepairError) {
        let _wait = self.clients.clock.start(Peer::Journal);
        let _ = self.store.repair_journal_fail(&entry, &e.to_string()).await;
    }

    /// Close the journal entry of a compare-and-swap write of Nova's text: `true` once written,
    /// `false` when the row changed under us (the entry fails; the caller reads again), the
    /// database's error otherwise.
    pub(super) async fn swapped(
        &self,
        entry: String,
        new: &str,
        swap: Result<bool, crate::novadb::NovaDbError>,
    ) -> Result<bool, RepairError> {
        match swap {
            Ok(true) => {
                self.landed();
                self.done(entry, Some(new.as_bytes())).await.map(|()| true)
            }
            Ok(false) => {
                let e = RepairError::Gone("changed under us; reading again".into());
                self.failed(entry, &e).await;
                Ok(false)
            }
            Err(e) => {
                let e = RepairError::from(e);
                self.failed(entry, &e).await;
                Err(e)
            }
        }
    }
}
